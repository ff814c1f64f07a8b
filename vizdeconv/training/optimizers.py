"""Optimizers Keras does not have, from the CIFAR-10 speedrun literature (Jordan 2024, airbench): Muon (momentum
whose update of each kernel is orthogonalized by a Newton-Schulz iteration) and Lookahead (Zhang et al. 2019:
slow weights pulled towards the fast ones every k steps). Both are Keras optimizers: the trainer's step,
`model.fit` and a `tf.train.Checkpoint` use them as any other."""

import keras
from keras import ops

# The quintic iteration's coefficients (Jordan 2024): they push every singular value of a matrix scaled to
# norm 1 towards 1 in five steps, without converging exactly (0.7-1.2), which the method does not need.
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)


def orthogonalize(matrix, steps: int = 5, epsilon: float = 1e-7):
    """The nearest semi-orthogonal matrix U V^T of `matrix` [rows, cols] = U S V^T, approximately: `steps`
    quintic Newton-Schulz iterations on the matrix scaled to Frobenius norm 1. Float32 [rows, cols]."""
    a, b, c = NEWTON_SCHULZ
    x = ops.cast(matrix, "float32")
    tall = x.shape[0] > x.shape[1]
    if tall:  # iterate on the smaller Gram matrix
        x = ops.transpose(x)
    x = x / (ops.sqrt(ops.sum(ops.square(x))) + epsilon)
    for _ in range(steps):
        gram = ops.matmul(x, ops.transpose(x))
        x = a * x + ops.matmul(b * gram + c * ops.matmul(gram, gram), x)
    return ops.transpose(x) if tall else x


class Muon(keras.optimizers.Optimizer):
    """Momentum orthogonalized per kernel (Jordan et al. 2024, "Muon"; airbench's CIFAR-10 speedrun).

    For a kernel (rank >= 2; a convolution's [kh, kw, in, out] is read as the matrix [out, kh * kw * in]) the
    update is orthogonalize(m) * sqrt(max(1, rows / cols)), with m the Nesterov momentum of the gradient;
    other variables (biases, BatchNormalization's scale and offset) take plain Nesterov momentum steps.

    Args:
      learning_rate: a float or a schedule of the step.
      momentum: the momentum coefficient (0.9 in airbench, 0.95 in the original).
      nesterov: look ahead along the momentum, as both use.
      steps: Newton-Schulz iterations.
      **kwargs: what `keras.optimizers.Optimizer` takes (name, weight_decay, clipnorm, ...).
    """

    def __init__(self, learning_rate=0.02, momentum: float = 0.9, nesterov: bool = True, steps: int = 5,
                 name: str = "muon", **kwargs):  # fmt: skip
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum, self.nesterov, self.steps = momentum, nesterov, steps

    def build(self, variables):
        """Creates one momentum buffer per variable."""
        if self.built:
            return
        super().build(variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        """One step of `variable` along `gradient` at `learning_rate`."""
        gradient = ops.cast(gradient, variable.dtype)
        buffer = self.momentums[self._get_variable_index(variable)]
        self.assign(buffer, ops.add(ops.multiply(buffer, self.momentum), gradient))
        update = ops.add(gradient, ops.multiply(buffer, self.momentum)) if self.nesterov else buffer
        if len(variable.shape) >= 2:
            shape = variable.shape
            # [..., out] -> [out, everything else], as PyTorch lays out a kernel
            matrix = ops.transpose(ops.reshape(update, (-1, shape[-1])))
            rows, cols = matrix.shape
            ortho = orthogonalize(matrix, self.steps) * max(1.0, rows / cols) ** 0.5
            update = ops.reshape(ops.transpose(ortho), shape)
        self.assign_sub(
            variable, ops.multiply(ops.cast(update, variable.dtype), ops.cast(learning_rate, variable.dtype))
        )

    def get_config(self):
        """The optimizer's settings, as Keras saves them."""
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov, "steps": self.steps}


class Lookahead(keras.optimizers.Optimizer):
    """Lookahead (Zhang et al. 2019) around any Keras optimizer: every `sync_every` steps the slow weights move
    `alpha` of the way to the fast ones, and the fast ones restart from there.

    With `power` p > 0 the pull grows over training as airbench's weight averaging does: at step t of
    `total_steps` T the slow weights move 1 - (1 - alpha) (t / T)^p of the way, nearly all of it early
    (little averaging while the rate is high) and `alpha` at the end; and at step T the fast weights take
    the slow ones whether or not a synchronization is due (airbench ends on its average, dropping the steps
    since the last one).

    `statistics` are variables the optimizer does not train but averages with the weights (airbench
    averages batch normalization's moving statistics too, so that they stay those of the averaged weights).

    Args:
      inner: the optimizer of the fast weights (its learning rate is this one's).
      sync_every: k, the steps between synchronizations.
      alpha: how far the slow weights move towards the fast ones at a synchronization (at the end, with power).
      power: p, 0 for a constant alpha.
      total_steps: T, the training's length (with power).
      statistics: non-trainable variables averaged at each synchronization as the weights are.
      **kwargs: what `keras.optimizers.Optimizer` takes.
    """

    def __init__(self, inner: keras.optimizers.Optimizer, sync_every: int = 5, alpha: float = 0.5,
                 power: float = 0.0, total_steps: int = 1, statistics=(), name: str = "lookahead",
                 **kwargs):  # fmt: skip
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.inner, self.sync_every, self.alpha = inner, int(sync_every), float(alpha)
        self.power, self.total_steps = float(power), max(int(total_steps), 1)
        self.statistics = list(statistics)

    def pull(self, step):
        """How far the slow weights move at a synchronization after `step` steps (a float32 scalar)."""
        if not self.power:
            return ops.convert_to_tensor(self.alpha, "float32")
        progress = ops.minimum(ops.cast(step, "float32") / self.total_steps, 1.0)
        return 1.0 - (1.0 - self.alpha) * ops.power(progress, self.power)

    @property
    def learning_rate(self):
        """The inner optimizer's learning rate (a variable, or the schedule's value at its step)."""
        return self.inner.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):  # e.g. a LearningRateScheduler callback: the rate is the inner optimizer's
        self.inner.learning_rate = value

    def build(self, variables):
        """Builds the inner optimizer and one slow copy per variable, starting at the variable's value."""
        if self.built:
            return
        super().build(variables)
        self.inner.build(variables)
        self.slow = self.add_optimizer_variables(variables, "slow")
        self.slow_statistics = self.add_optimizer_variables(self.statistics, "slow") if self.statistics else []
        for slow, variable in zip(self.slow + self.slow_statistics, list(variables) + self.statistics):
            slow.assign(variable)

    def apply(self, grads, trainable_variables=None):
        """The inner optimizer's step, then, every `sync_every` steps, the synchronization."""
        if not self.built:
            self.build(trainable_variables)
        self.inner.apply(grads, trainable_variables)
        variables = trainable_variables if trainable_variables is not None else self._trainable_variables
        self.iterations.assign_add(1)
        due = ops.equal(ops.mod(self.iterations, self.sync_every), 0)
        # with the pull's schedule the run ends on the slow weights (airbench's last update, at decay 1)
        last = ops.equal(self.iterations, self.total_steps) if self.power else False
        alpha = self.pull(self.iterations)
        for slow, fast in zip(self.slow + self.slow_statistics, list(variables) + self.statistics):
            moved = ops.add(
                slow, ops.multiply(ops.subtract(ops.cast(fast, slow.dtype), slow), ops.cast(alpha, slow.dtype))
            )
            slow.assign(ops.where(due, moved, slow))
            fast.assign(ops.where(ops.logical_or(due, last), ops.cast(slow, fast.dtype), fast))

    def get_config(self):
        """The settings, the inner optimizer's included."""
        return {**super().get_config(), "inner": keras.optimizers.serialize(self.inner),
                "sync_every": self.sync_every, "alpha": self.alpha, "power": self.power,
                "total_steps": self.total_steps}  # fmt: skip
