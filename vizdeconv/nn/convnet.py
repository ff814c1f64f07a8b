"""The argmax-pooling convnet, described as a list of layer specs.

Each layer is `conv (kernel, filters, stride, padding, dilation) -> bias -> [BatchNormalization] -> ReLU ->
optional max pool`.
The last layer has one filter per class and is averaged over space into logits. The reference net:

  conv1 5x5 3->64, pool1 2x2/2 -> conv2 5x5 64->64, pool2 2x2/2 -> conv3 5x5 64->10 -> mean over 6x6

Variables are float32; a forward pass may compute in bfloat16 and casts the logits back to float32.
"""

import dataclasses
from typing import Callable, Iterable, Mapping

import numpy as np
import tensorflow as tf

from vizdeconv.nn.graph import Graph, Op
from vizdeconv.nn.initializers import INITS, identity_partial, whitening_kernel

ACTIVATIONS = ("relu", "gelu")


def gelu(x):
    """GELU, x * Phi(x) with the exact normal CDF (airbench's, PyTorch's and Keras's default): [...] -> [...]."""
    return tf.nn.gelu(x, approximate=False)


# One XLA kernel for GELU and its slope: TensorFlow's own GELU is a dozen elementwise ops forward and back, each
# a pass over memory, which took 40% of the speedrun's training step on a 2-core AMX CPU (scripts/profile_step.py)
@tf.function(jit_compile=True, reduce_retracing=True)
def _gelu_and_slope(x):
    """(x * Phi(x), Phi(x) + x * phi(x)) in x's dtype [...], computed in float32."""
    x32 = tf.cast(x, tf.float32)
    cdf = 0.5 * tf.math.erfc(x32 * -0.7071067811865476)  # Phi(x), as tf.nn.gelu writes it
    density = tf.exp(-0.5 * tf.square(x32)) * 0.3989422804014327  # phi(x)
    return tf.cast(x32 * cdf, x.dtype), tf.cast(cdf + x32 * density, x.dtype)


@tf.custom_gradient
def _gelu_fused(x):
    value, slope = _gelu_and_slope(x)
    return value, lambda upstream: upstream * slope


def gelu_train(x, dtype=None):
    """GELU for training, equal to `gelu` up to rounding, with the slope computed in the forward pass and kept for
    the backward one: [...] -> [...] in x's dtype (`dtype` is the graph's `train` signature's, unused)."""
    return _gelu_fused(x)


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One conv layer and its optional max pool (pool=0 means no pooling)."""

    name: str
    kernel: int
    filters: int
    stride: int = 1
    padding: str = "SAME"
    dilation: int = 1
    pool: int = 0
    pool_stride: int = 0
    pool_padding: str = "SAME"
    init_stddev: float = 0.1  # of the truncated-normal initial kernel (deep stacks want He: sqrt(2/fan_in))
    rectify: bool = True  # the activation after the bias; a deep net's last (class) layer trains better without
    activation: str = "relu"  # relu | gelu (exact, airbench's): the projections pass gelu's own gradient
    batch_norm: bool = False  # normalize the conv's output (batch statistics in training, moving ones after)
    norm_scale: bool = True  # train batch normalization's scale (False: fixed at 1, as airbench)
    norm_momentum: float = 0.9  # of the moving statistics (airbench: 0.6, so they follow its fast steps)
    norm_after_pool: bool = False  # training statistics of the pooled map (airbench's order); inference unchanged
    norm_epsilon: float = 1e-3  # added to the variance (Keras's default; >= 1.001e-5, TF's fused kernel's floor)
    pool_first: bool = False  # conv -> pool -> norm -> activation (airbench's order; with GELU a different map)
    init: str = "normal"  # normal | identity (first filters the identity) | whiten (set from the data's patches)
    trainable: bool = True  # train the kernel (a whitening layer's stays as the data set it)
    rate_scale: float = 1.0  # multiplies the gradients of this layer's kernel and bias (its rate, under SGD)
    bias_init: float = 0.1  # the bias's starting value (airbench's whitening bias: 0)
    bias_steps: int = 0  # train the bias for the first N steps only, then hold it (0: always; airbench: 3 epochs)

    @property
    def pool_name(self) -> str:
        return self.name.replace("conv", "pool") if "conv" in self.name else f"{self.name}_pool"

    @property
    def effective_pool_stride(self) -> int:
        return self.pool_stride or self.pool


def layer_specs(layers: Iterable[Mapping]) -> tuple[LayerSpec, ...]:
    """Builds LayerSpecs from config dicts, with a clear error for unknown or missing fields."""
    fields = {field.name for field in dataclasses.fields(LayerSpec)}
    specs = []
    for index, layer in enumerate(layers):
        layer = dict(layer)
        unknown = sorted(set(layer) - fields)
        if unknown:
            raise ValueError(f"layer {index} has unknown field(s) {unknown}; known: {sorted(fields)}")
        try:
            specs.append(LayerSpec(**layer))
        except TypeError as error:
            raise ValueError(f"layer {index} is incomplete: {error}") from None
    if not specs:
        raise ValueError("the model needs at least one layer")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"layer names must be unique, got {names}")
    for index, spec in enumerate(specs):
        if spec.init not in INITS:
            raise ValueError(f"layer {spec.name!r}: init must be one of {', '.join(INITS)}, got {spec.init!r}")
        if spec.activation not in ACTIVATIONS:
            raise ValueError(
                f"layer {spec.name!r}: activation must be one of {', '.join(ACTIVATIONS)}, got {spec.activation!r}"
            )
        if spec.init == "whiten" and index:
            raise ValueError(f"layer {spec.name!r}: only the first layer can whiten (it sees the images' patches)")
    return tuple(specs)


class ConvNet(tf.Module):
    """A stack of conv / ReLU / argmax-pool layers: variables, and the Graph that runs them.

    The network is described once, as a `Graph` over its live variables (`graph()`); training, the
    projections, receptive fields and FLOP counts all run that description.

    Args:
      specs: the layers, first to last; the last one's `filters` is the number of classes.
      image_size: side of the square input images.
      channels: input channels.
      seed: seeds the truncated-normal kernels (stddev `init_stddev` of each spec, 0.1 by default);
        biases start at `bias_init` (0.1). A spec's `init` "identity" then makes its first
        filters the identity; "whiten" waits for `whiten(images)`.
    """

    def __init__(
        self, specs: Iterable[LayerSpec], image_size: int = 24, channels: int = 3, seed: int = 0, name: str = "convnet"
    ):
        super().__init__(name=name)
        self.specs = tuple(specs)
        self.image_size = image_size
        self.input_channels = channels
        self.kernels, self.biases = [], []
        self.norms = {}  # layer name -> BatchNorm, for the layers with batch_norm
        in_channels = channels
        for index, spec in enumerate(self.specs):
            shape = [spec.kernel, spec.kernel, in_channels, spec.filters]
            initial = tf.random.stateless_truncated_normal(shape, seed=[seed, index], stddev=spec.init_stddev)
            if spec.init == "identity":
                initial = identity_partial(initial)
            elif spec.init == "whiten" and spec.filters != 2 * spec.kernel * spec.kernel * in_channels:
                raise ValueError(
                    f"layer {spec.name!r} whitens {spec.kernel}x{spec.kernel}x{in_channels} patches: it needs "
                    f"{2 * spec.kernel * spec.kernel * in_channels} filters (each direction and its negative)"
                )
            self.kernels.append(tf.Variable(initial, name=f"{spec.name}/kernel", trainable=spec.trainable))
            self.biases.append(tf.Variable(tf.fill([spec.filters], float(spec.bias_init)), name=f"{spec.name}/bias"))
            if spec.batch_norm:
                pooled = (spec.pool, spec.effective_pool_stride, spec.pool_padding) if spec.norm_after_pool else None
                if pooled and not spec.pool:
                    raise ValueError(f"layer {spec.name!r}: norm_after_pool needs a pool")
                if pooled and spec.pool_first:
                    raise ValueError(f"layer {spec.name!r}: pool_first already normalizes the pooled map")
                self.norms[spec.name] = BatchNorm(
                    spec.filters,
                    f"{spec.name}_bn",
                    train_scale=spec.norm_scale,
                    momentum=spec.norm_momentum,
                    statistics_pool=pooled,
                    epsilon=spec.norm_epsilon,
                )
            in_channels = spec.filters
        self._description = _describe(
            self.specs, self.kernels, self.biases, self.norms, (image_size, image_size, channels)
        )

    @property
    def shapes(self) -> dict[str, tuple]:
        """[H, W, C] (or [classes]) of every tensor of the graph, by name."""
        return self._description.shapes

    def whiten(self, images, epsilon: float = 5e-4) -> None:
        """Sets the kernel of a first layer whose `init` is "whiten" from images [N, H, W, C] as the network
        takes them (`initializers.whitening_kernel`); does nothing for other networks."""
        if self.specs[0].init == "whiten":
            self.kernels[0].assign(whitening_kernel(images, self.specs[0].kernel, epsilon))

    def gradient_scales(self, norm_bias_scale: float = 1.0) -> list[float]:
        """One factor per trainable variable, in `trainable_variables` order: each layer's `rate_scale` for
        its kernel and bias, `norm_bias_scale` for batch normalization's offsets (airbench's scaled biases,
        64 there), 1 elsewhere. Multiplying the gradients by them multiplies those rates under (Nesterov)
        momentum SGD, whose step is linear in the gradient."""
        scales = {}
        for spec, kernel, bias in zip(self.specs, self.kernels, self.biases):
            scales[kernel.ref()] = scales[bias.ref()] = float(spec.rate_scale)
        for norm in self.norms.values():
            scales[norm.beta.ref()] = float(norm_bias_scale)
        return [scales.get(variable.ref(), 1.0) for variable in self.trainable_variables]

    def gradient_horizons(self) -> list[int]:
        """One step count per trainable variable, in `trainable_variables` order: a layer's `bias_steps` for
        its bias (its gradient counts only before that step), 0 (always) elsewhere."""
        horizons = {bias.ref(): int(spec.bias_steps) for spec, bias in zip(self.specs, self.biases)}
        return [horizons.get(variable.ref(), 0) for variable in self.trainable_variables]

    @property
    def num_classes(self) -> int:
        return self.specs[-1].filters

    @property
    def layer_names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    def graph(self) -> Graph:
        """The network's operations, reading its live variables (conv `<name>/linear`, ReLU `<name>`,
        pool `<pool name>`, global mean `logits`): the names its Keras twin (`to_keras`) has too."""
        return self._description

    def __call__(self, images, compute_dtype=tf.float32, relu: Callable = tf.nn.relu, training: bool = False):
        """Logits [N, num_classes] float32 for images [N, H, W, C] (`relu`: tests swap the rectifier;
        `training`: batch normalization uses the batch's statistics and updates its moving ones)."""
        return self._description.forward(images, compute_dtype, record_switches=False, relu=relu, training=training)[
            "logits"
        ]


class BatchNorm(tf.Module):
    """Per-channel batch normalization of a conv's output, as Keras' BatchNormalization(momentum=0.9,
    epsilon=1e-3) computes it (or at the given `momentum` and `epsilon`).

    In training, x is normalized with the batch's mean and (biased) variance over N, H, W, and the moving
    statistics move towards them; everywhere else it is the affine map x * scale + offset of the moving
    statistics, which is how the projections see it (a per-channel scale the deconvnet passes back).
    """

    MOMENTUM, EPSILON = 0.9, 1e-3
    MIN_EPSILON = 1.001e-5  # the fused kernel's floor (tf.nn.fused_batch_norm raises smaller values to it)

    # 7 parameters: Keras's BatchNormalization's own settings, and the pooled statistics of airbench's order.
    def __init__(self, channels: int, name: str = "batch_norm", train_scale: bool = True, momentum: float = MOMENTUM,
                 statistics_pool: tuple | None = None, epsilon: float = EPSILON):  # fmt: skip
        super().__init__(name=name)
        if not epsilon >= self.MIN_EPSILON:
            raise ValueError(f"batch normalization's epsilon must be at least {self.MIN_EPSILON}, got {epsilon}")
        self.momentum, self.statistics_pool, self.epsilon = float(momentum), statistics_pool, float(epsilon)
        self.gamma = tf.Variable(tf.ones([channels]), name="gamma", trainable=train_scale)
        self.beta = tf.Variable(tf.zeros([channels]), name="beta")
        # On read, replicas' statistics are averaged; each replica updates its own in training.
        stat = dict(
            trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.MEAN,
        )
        self.moving_mean = tf.Variable(tf.zeros([channels]), name="moving_mean", **stat)
        self.moving_variance = tf.Variable(tf.ones([channels]), name="moving_variance", **stat)

    def scale(self) -> tf.Tensor:
        """[C] float32: gamma / sqrt(moving variance + epsilon)."""
        return self.gamma * tf.math.rsqrt(tf.convert_to_tensor(self.moving_variance) + self.epsilon)

    def offset(self) -> tf.Tensor:
        """[C] float32: beta - moving mean * scale."""
        return self.beta - tf.convert_to_tensor(self.moving_mean) * self.scale()

    def train(self, x, dtype) -> tf.Tensor:
        """[N, H, W, C] normalized with the batch's statistics, in x's dtype; updates the moving statistics.

        One fused kernel (FusedBatchNormV3, float32 statistics for bfloat16 inputs) and its fused gradient:
        separate moments and products took half of a deep net's training step.
        """
        if self.statistics_pool:
            # statistics of the max-pooled map, as if the normalization came after the pool (airbench's order):
            # with a positive scale the map, then rectified and pooled, is exactly that order's output
            pool, stride, padding = self.statistics_pool
            pooled = tf.nn.max_pool2d(tf.cast(x, tf.float32), pool, stride, padding)
            mean, variance = tf.nn.moments(pooled, [0, 1, 2])
            scale = self.gamma * tf.math.rsqrt(variance + self.epsilon)
            y = tf.cast(x, tf.float32) * scale + (self.beta - mean * scale)
        else:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, self.gamma, self.beta, epsilon=self.epsilon)
            # The kernel returns the unbiased variance; Keras moves the moving variance by the biased one.
            count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
            variance = variance * (count - 1) / tf.maximum(count, 2.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1 - self.momentum))
        return tf.cast(y, dtype)


def _describe(specs, kernels, biases, norms, input_shape) -> Graph:
    """The Graph of a spec stack over its variables."""
    operations, below = [Op("input", "input", (), {}, "input")], "input"
    for spec, kernel, bias in zip(specs, kernels, biases):
        linear = f"{spec.name}/linear"
        conv = f"{spec.name}/prenorm" if spec.name in norms else linear
        operations.append(
            Op(
                conv,
                "conv",
                (below,),
                dict(kernel=kernel, bias=bias, stride=spec.stride, padding=spec.padding, dilation=spec.dilation),
                f"conv {spec.name!r}",
            )
        )
        after = conv
        pool_op = None
        if spec.pool:
            pool_op = dict(pool=spec.pool, stride=spec.effective_pool_stride, padding=spec.pool_padding)
        if pool_op and spec.pool_first:  # airbench's order: the pool takes the conv's map itself
            operations.append(Op(spec.pool_name, "max_pool", (after,), pool_op, f"pool {spec.pool_name!r}"))
            after = spec.pool_name
        if spec.name in norms:
            norm = norms[spec.name]
            operations.append(
                Op(
                    linear,
                    "affine",
                    (after,),
                    dict(scale=norm.scale, offset=norm.offset, train=norm.train),
                    f"batch normalization of {spec.name!r}",
                )
            )
            after = linear
        if not spec.rectify:
            operations.append(Op(spec.name, "identity", (after,), {}, f"conv {spec.name!r}"))
        elif spec.activation == "relu":
            operations.append(Op(spec.name, "relu", (after,), {}, f"conv {spec.name!r}"))
        else:  # any other activation passes its own gradient in the projections (nn.registry "activation")
            params = dict(fn=gelu, label="gelu", train=gelu_train)  # training's: the fused kernel
            operations.append(Op(spec.name, "activation", (after,), params, f"conv {spec.name!r}"))
        below = spec.name
        if pool_op and not spec.pool_first:
            operations.append(Op(spec.pool_name, "max_pool", (below,), pool_op, f"pool {spec.pool_name!r}"))
            below = spec.pool_name
    operations.append(Op("logits", "global_avg_pool", (below,), {}, "logits"))
    return Graph(operations, "logits", input_shape)


def build_model(config) -> ConvNet:
    """The network a config describes (`config.model.layers`, `config.data.image_size`, `config.seed`)."""
    return ConvNet(layer_specs(config.model.layers), image_size=config.data.image_size, seed=config.seed)


def count_parameters(model: ConvNet) -> int:
    return sum(int(tf.size(variable)) for variable in model.trainable_variables)


def to_keras(model: ConvNet, weight_decay: float = 0.0, statistics=None):
    """The same network as a plain Keras model (Conv2D + ReLU, MaxPooling2D, GlobalAveragePooling2D),
    holding copies of the current weights; its logits equal `model(images)`. With `weight_decay`, the
    kernels carry the trainer's penalty weight_decay * sum(W**2) / 2 as Keras regularizers. With
    `statistics` (mean [C], deviation [C] of pixels in 0..1: a run normalized by its data set), a first
    Normalization layer takes pixels 0..255 as they are, so the file needs no preprocessing of its own.

    Returns:
      keras.Sequential taking [N, image_size, image_size, channels] float32 (model inputs, or pixels
      0..255 with `statistics`), giving logits [N, classes].
    """
    import keras

    layers = [keras.Input((model.image_size, model.image_size, model.input_channels), name="input")]
    if statistics is not None:
        mean, deviation = (np.asarray(v, np.float64) * 255.0 for v in statistics)
        layers.append(keras.layers.Normalization(mean=mean, variance=deviation**2, name="normalize"))

    def split(spec) -> bool:  # the conv and its activation are separate layers, with others between them
        return spec.batch_norm or bool(spec.pool and spec.pool_first)

    for spec in model.specs:
        activation = spec.activation if spec.rectify else None  # Keras's gelu is the exact one, as ours
        layers.append(
            keras.layers.Conv2D(
                spec.filters,
                spec.kernel,
                strides=spec.stride,
                padding=spec.padding.lower(),
                dilation_rate=spec.dilation,
                activation=None if split(spec) else activation,
                name=f"{spec.name}_conv" if split(spec) else spec.name,
                kernel_regularizer=keras.regularizers.L2(weight_decay / 2) if weight_decay and spec.trainable else None,
                trainable=spec.trainable,
            )
        )
        pool = None
        if spec.pool:
            pool = keras.layers.MaxPooling2D(
                spec.pool, spec.effective_pool_stride, spec.pool_padding.lower(), name=spec.pool_name
            )
        if pool and spec.pool_first:
            layers.append(pool)
        if spec.batch_norm:
            layers.append(
                keras.layers.BatchNormalization(
                    momentum=spec.norm_momentum, epsilon=spec.norm_epsilon, name=f"{spec.name}_bn"
                )
            )
        if split(spec):
            layers.append(keras.layers.Activation(activation or "linear", name=spec.name))
        if pool and not spec.pool_first:
            layers.append(pool)
    layers.append(keras.layers.GlobalAveragePooling2D(name="logits"))
    twin = keras.Sequential(layers, name="vizdeconv_reference")
    for spec, kernel, bias in zip(model.specs, model.kernels, model.biases):
        conv = twin.get_layer(f"{spec.name}_conv" if split(spec) else spec.name)
        conv.set_weights([kernel.numpy(), bias.numpy()])
        if spec.batch_norm:
            norm = model.norms[spec.name]
            statistics = (norm.gamma, norm.beta, norm.moving_mean, norm.moving_variance)
            twin.get_layer(f"{spec.name}_bn").set_weights([np.asarray(tf.convert_to_tensor(v)) for v in statistics])
    return twin
