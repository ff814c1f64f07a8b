"""Compiled training and evaluation steps, written once for any tf.distribute strategy.

Several optimizer steps run inside one `tf.function` call (a `tf.range` loop over the dataset
iterator), so the Python loop is entered only to log, evaluate or checkpoint.
"""

import tensorflow as tf

from vizdeconv.nn import ops
from vizdeconv.nn.convnet import ConvNet
from vizdeconv.training import losses

SUMS = ("loss", "cross_entropy", "weight_penalty", "correct", "examples")


# 7 parameters: the step needs the model, its optimizer and strategy, and four numbers that shape the update.
def make_train_steps(
    model: ConvNet,
    optimizer,
    strategy: tf.distribute.Strategy,
    loss_config,
    global_batch_size: int,
    compute_dtype=tf.float32,
    norm_bias_scale: float = 1.0,
):
    """Returns `train_steps(iterator, num_steps) -> dict of float32 scalars` over those steps.

    Each variable's gradient is multiplied by its factor in `model.gradient_scales(norm_bias_scale)`, all
    but the weight penalty's share, so that a scaled rate leaves the decay as it is: airbench's parameter
    groups set weight_decay = wd / lr, so every parameter decays by the same wd per step whatever its rate
    (its head, 1/9 of a raw weight, learns at 1/81 of the rate and decays at the full rate).
    `loss_config.decay_offsets` puts batch normalization's offsets in the penalty too. A layer's
    `bias_steps` N stops its bias's gradient from step N on (`model.gradient_horizons()`).

    The sums (loss, cross_entropy, weight_penalty, correct, examples) are reduced over replicas;
    divide loss terms by num_steps for per-step means and correct by examples for accuracy.
    `weights_finite` is 1.0 when every weight is finite after the last step.
    """
    replicas = strategy.num_replicas_in_sync
    penalized = [kernel for kernel in model.kernels if kernel.trainable]  # a frozen whitening kernel is data
    if loss_config.get("decay_offsets", False):
        penalized += [norm.beta for norm in model.norms.values()]
    scales = model.gradient_scales(norm_bias_scale)
    horizons = model.gradient_horizons()
    penalized_refs = {variable.ref() for variable in penalized}
    # the penalty's gradient weight_decay * v / replicas, to be kept at factor 1 where the rest is scaled
    decay = [
        (1.0 - scale) * loss_config.weight_decay / replicas if variable.ref() in penalized_refs else 0.0
        for variable, scale in zip(model.trainable_variables, scales)
    ]

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, compute_dtype, training=True)
            terms = losses.objective(
                logits,
                labels,
                penalized,
                loss_config.reduction,
                loss_config.weight_decay,
                global_batch_size,
                replicas,
                loss_config.get("label_smoothing", 0.0),
            )
        gradients = tape.gradient(terms["loss"], model.trainable_variables)
        gradients = [
            g if scale == 1.0 else g * scale + keep * v
            for g, scale, keep, v in zip(gradients, scales, decay, model.trainable_variables)
        ]
        # a bias trained for its first N steps only (airbench's whitening bias) gets no gradient after them;
        # its momentum's tail still carries it a few steps further, as it would any stopped parameter
        gradients = [
            g if not horizon else g * tf.cast(optimizer.iterations < horizon, g.dtype)
            for g, horizon in zip(gradients, horizons)
        ]
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        correct = tf.reduce_sum(
            tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), tf.cast(labels, tf.int32)), tf.float32)
        )
        return dict(terms, correct=correct, examples=tf.cast(tf.shape(labels)[0], tf.float32))

    def train_steps(iterator, num_steps):
        totals = {name: tf.constant(0.0) for name in SUMS}
        for _ in tf.range(num_steps):
            images, labels = next(iterator)
            per_replica = strategy.run(replica_step, args=(images, labels))
            totals = {
                name: totals[name] + strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica[name], axis=None)
                for name in SUMS
            }
        # The last update can overflow the weights even when every loss it saw was finite.
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in model.trainable_variables])
        return dict(totals, weights_finite=tf.cast(finite, tf.float32))

    return ops.compiled(train_steps)  # a process training several networks warns of no retracing


def mirror(logits_of, images) -> tf.Tensor:
    """The mean of the logits of images [N, H, W, C] and of their mirror images (left-right)."""
    return 0.5 * (logits_of(images) + logits_of(tf.reverse(images, axis=[2])))


def tta_logits(logits_of, images, level: int = 0) -> tf.Tensor:
    """Logits [N, classes] of images [N, H, W, C] under test-time augmentation (airbench's levels):
    0 the images alone; 1 the mean with their mirror images; 2 half that, plus a quarter each of the same
    for the images moved by one pixel up-left and down-right (reflect-padded): six views in all."""
    if level == 0:
        return logits_of(images)
    logits = mirror(logits_of, images)
    if level == 1:
        return logits
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    shifted = [padded[:, :height, :width], padded[:, 2 : height + 2, 2 : width + 2]]
    return 0.5 * logits + 0.25 * (mirror(logits_of, shifted[0]) + mirror(logits_of, shifted[1]))


def make_eval_step(model: ConvNet, strategy: tf.distribute.Strategy, compute_dtype=tf.float32, tta: int = 0):
    """Returns `eval_step(images, labels) -> (correct, examples)` float32, reduced over replicas; `tta` is the
    test-time augmentation level of `tta_logits`."""

    def replica_step(images, labels):
        logits = tta_logits(lambda x: model(x, compute_dtype), images, tta)
        predictions = tf.argmax(logits, 1, output_type=tf.int32)
        correct = tf.reduce_sum(tf.cast(tf.equal(predictions, tf.cast(labels, tf.int32)), tf.float32))
        return correct, tf.cast(tf.shape(labels)[0], tf.float32)

    def eval_step(images, labels):
        correct, examples = strategy.run(replica_step, args=(images, labels))
        return (
            strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.SUM, examples, axis=None),
        )

    return ops.compiled(eval_step)


def evaluate(eval_step, distributed_dataset) -> tuple[float, int]:
    """Accuracy over a whole (distributed) dataset and the number of examples it held."""
    correct = examples = 0.0
    for images, labels in distributed_dataset:
        batch_correct, batch_examples = eval_step(images, labels)
        correct += float(batch_correct)
        examples += float(batch_examples)
    return correct / max(examples, 1.0), int(examples)


def recompute_statistics(model: ConvNet, strategy: tf.distribute.Strategy, batches, compute_dtype=tf.float32) -> int:
    """Replaces every batch normalization's moving mean and variance by the mean of its batch statistics over
    `batches`, the weights as they are ("precise BN", Wu and Johnson 2021, "Rethinking 'Batch' in BatchNorm").

    A run ends on weights whose moving statistics were collected along the way (and, with Lookahead, averaged
    with the weights): after large late steps, or Muon's, they no longer describe the network. Each batch is
    normalized as in training, by its own mean and biased variance over N, H, W (of the pooled map where the
    layer collects them there), and the moving statistics become their plain means.

    Args:
      model: the network; strategy: the one it was built under.
      batches: a distributed dataset of (images [b, H, W, C] float32, labels [b]); each batch counts once.
      compute_dtype: the dtype the network computes in (the statistics are float32 whatever it is).
    Returns:
      the number of batches used (0: no batch normalization or no batches, and nothing changed). If a batch
      fails, the statistics are put back as they were before raising.
    """
    norms = list(model.norms.values())
    moving = [v for norm in norms for v in (norm.moving_mean, norm.moving_variance)]
    if not norms:
        return 0
    with strategy.scope():
        totals = [
            tf.Variable(
                tf.zeros(v.shape),
                trainable=False,
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=tf.VariableAggregation.MEAN,
            )
            for v in moving
        ]
    # a new function, traced at momentum 0 (the training step's traces keep the configured momentum)
    step = ops.compiled(_statistics_step, model, strategy, compute_dtype, moving, totals)
    before, saved = [tf.convert_to_tensor(v) for v in moving], [norm.momentum for norm in norms]
    count = 0
    try:
        for norm in norms:
            norm.momentum = 0.0
        for images, _ in batches:
            step(images)
            count += 1
    except BaseException:
        for v, value in zip(moving, before):
            v.assign(value)
        raise
    finally:
        for norm, momentum in zip(norms, saved):
            norm.momentum = momentum
    if count:  # none: the statistics were never touched
        for total, v in zip(totals, moving):
            v.assign(tf.convert_to_tensor(total) / count)
    return count


# 6 parameters: the model and how it runs, then the variables read and summed.
def _statistics_step(model, strategy, compute_dtype, moving, totals, images) -> None:
    """One batch in training mode on every replica; at momentum 0 each moving statistic is then the batch's
    own, added to its total."""

    def replica_step(x):
        model(x, compute_dtype, training=True)
        for total, v in zip(totals, moving):
            total.assign_add(v)

    strategy.run(replica_step, args=(images,))
