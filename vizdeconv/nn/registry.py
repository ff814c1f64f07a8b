"""What each operation kind means, written once: its forward computation, its backward rule (None: the
op's own vector-Jacobian product), which input positions an output position reads (receptive fields),
its FLOPs, whether `bias_subtract` may pass it, and which Keras layers map onto it.

Everything that walks a `Graph` asks this table: the forward pass (`graph`), the projection engine
(`methods.reconstruct`), receptive fields, FLOP counts and the Keras adapter, whose error messages list
the kinds from here. Adding a kind is one entry. A Keras layer no entry claims becomes a `layer` op: it
runs the layer itself and passes signals back through its own gradient, so the engine never needs to
know every layer.

Backward rules receive a `Backward` context (the forward tensors, the number of stacked signal slots,
the mode) and return one signal per input. The rectifying kinds (`relu`, and `activation` under
`rectify="all"`) get the mode's rule in the engine, not here: that is the one place the deconvnet and
guided backpropagation differ from a gradient.
"""

import dataclasses
from typing import Callable

import tensorflow as tf

from vizdeconv.nn import keras_layers as kl
from vizdeconv.nn import ops, shapes

ALL = None  # receptive fields: every position of the input is reached (no spatial correspondence)


@dataclasses.dataclass
class Backward:
    """What a backward rule may read.

    Attributes:
      tensors: the forward tensors by name (switches of max pools included).
      graph: the network (its static `shapes`).
      slots: signals stacked along the batch axis, each of `batch` images.
      batch: images per slot (a scalar tensor).
      dtype: the compute dtype; mode: the projection mode.
    """

    tensors: dict
    graph: object
    slots: int
    batch: object
    dtype: object
    mode: str

    def tile(self, tensor):
        """A per-image forward tensor repeated for every slot."""
        return tf.tile(tensor, [self.slots] + [1] * (len(tensor.shape) - 1)) if self.slots > 1 else tensor

    def input_shape(self, op, index: int = 0) -> list:
        return [self.batch * self.slots, *self.graph.shapes[op.inputs[index]]]

    def forward_input(self, op, index: int = 0):
        return self.tile(tf.cast(self.tensors[op.inputs[index]], self.dtype))


@dataclasses.dataclass(frozen=True)
class Kind:
    """One operation kind.

    Attributes:
      name: the kind (`Op.kind`); doc: what it computes and the params it reads.
      forward: (op, inputs, dtype) -> output tensor.
      backward: (op, signal, Backward) -> one signal per input; None: the op's own vector-Jacobian product.
      reach: how output positions map to input positions along one axis, for receptive fields:
        "pointwise", "all", "measured" (found from the op's Jacobian), or (op, positions, axis, length)
        -> positions.
      flops: (op, shapes) -> FLOPs (2 x multiply-adds) for one image, None: not counted.
      chain: `bias_subtract` may project through it (plain conv / ReLU / max-pool chains).
      rectifier: the mode's ReLU rule replaces its gradient.
      keras: the Keras layer classes that map onto this kind (for messages and the README table).
      match: (keras layer) -> the op's params where this kind claims the layer, else None (`nn.keras_layers`;
        the Keras adapter asks every kind; no kind claims a layer twice). None: no Keras layer maps here.
      maximum: (op, maxima, inputs) -> an upper bound [N, 1, 1, C] of each output map's maximum over H, W,
        from `maxima` (each input's, None where not known) and `inputs` (the forward tensors), equal to
        that maximum where the op keeps the order of values within the map: a scan then reads a map only
        where its bound may enter a top-k. None (the field or the result): no bound; the map is read.
    """

    name: str
    doc: str
    forward: Callable
    backward: Callable | None = None
    reach: object = "pointwise"
    flops: Callable | None = None
    chain: bool = False
    rectifier: bool = False
    keras: tuple[str, ...] = ()
    maximum: Callable | None = None
    match: Callable | None = None


def _window_reach(op, here, axis: int, length: int):
    p = op.params
    if op.kind == "conv" or op.kind == "depthwise_conv":
        kernel = int(p["kernel"].shape[axis])
    else:
        kernel = ops.pair(p["pool"])[axis]
    stride, dilation = ops.pair(p["stride"])[axis], ops.pair(p.get("dilation", 1))[axis]
    pad = shapes.padding_before(length, kernel, stride, p["padding"], dilation)
    return {u * stride - pad + tap * dilation for u in here for tap in range(kernel)}


def _transpose_output(op, size: int, axis: int) -> int:
    """The output length of a transposed convolution along `axis` (Keras' rule unless `output` says)."""
    p = op.params
    if p.get("output") is not None:
        return p["output"][axis]
    kernel, stride = int(p["kernel"].shape[axis]), ops.pair(p["stride"])[axis]
    return size * stride if p["padding"].upper() == "SAME" else (size - 1) * stride + kernel


def _transpose_reach(op, here, axis: int, length: int):
    """Input position i feeds outputs i * stride - pad + tap: invert that for the outputs in `here`."""
    p = op.params
    kernel, stride = int(p["kernel"].shape[axis]), ops.pair(p["stride"])[axis]
    out_length = _transpose_output(op, length, axis)
    pad = shapes.padding_before(out_length, kernel, stride, p["padding"])
    return {(u + pad - tap) // stride for u in here for tap in range(kernel) if (u + pad - tap) % stride == 0}


def _conv_forward(op, inputs, dtype):
    p = op.params
    y = ops.conv2d(inputs[0], op.value("kernel", dtype), p["stride"], p["padding"], p["dilation"])
    return tf.nn.bias_add(y, op.value("bias", dtype)) if p.get("bias") is not None else y


def _conv_backward(op, g, ctx):
    p = op.params
    if ctx.mode == "bias_subtract" and p.get("bias") is not None:
        g = g - op.value("bias", ctx.dtype)
    result = ops.conv2d_transpose(
        g, op.value("kernel", ctx.dtype), ctx.input_shape(op), p["stride"], p["padding"], p["dilation"]
    )
    return [tf.ensure_shape(result, [None, *ctx.graph.shapes[op.inputs[0]]])]


def _conv_flops(op, shape_of):
    height, width, filters = shape_of[op.name]
    kernel_h, kernel_w, channels, _ = op.params["kernel"].shape
    return 2 * height * width * filters * kernel_h * kernel_w * channels


def depthwise_kernel(op, channels: int, dtype):
    """[h, w, channels, multiplier]. A grouped Conv2D with one input channel per group (ConvNeXt's) keeps
    the same numbers as [h, w, 1, channels * multiplier]: a reshape makes it a depthwise kernel."""
    kernel = op.value("kernel", dtype)
    return tf.reshape(kernel, [*kernel.shape[:2], channels, -1])


def _depthwise_forward(op, inputs, dtype):
    p = op.params
    stride, dilation = ops.pair(p["stride"]), ops.pair(p["dilation"])
    kernel = depthwise_kernel(op, inputs[0].shape[-1], dtype)
    y = tf.nn.depthwise_conv2d(inputs[0], kernel, [1, *stride, 1], p["padding"], dilations=dilation)
    return tf.nn.bias_add(y, op.value("bias", dtype)) if p.get("bias") is not None else y


def _depthwise_backward(op, g, ctx):
    # The transposed depthwise convolution with the op's own kernel: linear, so no forward input is needed
    # (the vector-Jacobian product would recompute the forward pass to take it).
    p = op.params
    stride, dilation = ops.pair(p["stride"]), ops.pair(p["dilation"])
    kernel = depthwise_kernel(op, ctx.graph.shapes[op.inputs[0]][-1], ctx.dtype)
    result = tf.nn.depthwise_conv2d_backprop_input(
        ctx.input_shape(op), kernel, g, [1, *stride, 1], p["padding"], dilations=dilation
    )
    return [tf.ensure_shape(result, [None, *ctx.graph.shapes[op.inputs[0]]])]


def _depthwise_flops(op, shape_of):
    height, width, filters = shape_of[op.name]
    kernel_h, kernel_w = op.params["kernel"].shape[:2]
    return 2 * height * width * filters * kernel_h * kernel_w


def _transpose_forward(op, inputs, dtype):
    p = op.params
    channels = op.params["kernel"].shape[-2]
    size = [_transpose_output(op, int(inputs[0].shape[1 + axis]), axis) for axis in (0, 1)]
    output = [tf.shape(inputs[0])[0], *size, channels]
    y = ops.conv2d_transpose(inputs[0], op.value("kernel", dtype), output, p["stride"], p["padding"])
    y = tf.ensure_shape(y, [None, *size, channels])
    return tf.nn.bias_add(y, op.value("bias", dtype)) if p.get("bias") is not None else y


def _transpose_backward(op, g, ctx):
    if ctx.mode == "bias_subtract" and op.params.get("bias") is not None:
        g = g - op.value("bias", ctx.dtype)
    return [ops.conv2d(g, op.value("kernel", ctx.dtype), op.params["stride"], op.params["padding"])]


def _transpose_flops(op, shape_of):
    height, width, channels = shape_of[op.inputs[0]]
    kernel_h, kernel_w, filters, _ = op.params["kernel"].shape
    return 2 * height * width * channels * kernel_h * kernel_w * filters


def _relu_forward(op, inputs, dtype):
    x, p = inputs[0], op.params
    threshold = p.get("threshold", 0.0)
    if not threshold and p.get("max_value") == 6.0:
        return tf.nn.relu6(x)  # the same values in one op, which TensorFlow fuses into a convolution before it
    y = tf.nn.relu(x) if not threshold else tf.where(x >= threshold, x, tf.zeros_like(x))
    return y if p.get("max_value") is None else tf.minimum(y, tf.cast(p["max_value"], y.dtype))


# Elementwise functions that never decrease (the maximum of f(x) over a map is f(maximum of x)), and those
# that do not decrease from 0 on and are below f(0) = 0 (where a map's maximum is < 0, 0 bounds it).
_NON_DECREASING = ("sigmoid", "tanh", "elu", "selu", "softplus", "softsign", "hard_sigmoid", "log_sigmoid",
                   "leaky_relu")  # fmt: skip
_NON_DECREASING_FROM_ZERO = ("silu", "gelu", "hard_silu", "mish")


def _relu_maximum(op, maxima, inputs):
    if maxima[0] is None or op.params.get("threshold", 0.0) < 0:  # a negative threshold breaks the order
        return None
    return _relu_forward(op, [maxima[0]], maxima[0].dtype)


def _activation_maximum(op, maxima, inputs):
    label, best = op.params.get("label"), maxima[0]
    if best is None or label not in _NON_DECREASING + _NON_DECREASING_FROM_ZERO:
        return None
    value = tf.cast(op.params["fn"](best), best.dtype)
    return value if label in _NON_DECREASING else tf.where(best >= 0, value, tf.zeros_like(value))


def _affine_maximum(op, maxima, inputs):
    if maxima[0] is None:
        return None
    scale = op.value("scale", maxima[0].dtype)  # a negative one maps the minimum to the maximum: not bounded
    value = maxima[0] * scale + op.value("offset", maxima[0].dtype)
    return tf.where(scale >= 0, value, tf.fill(tf.shape(value), tf.constant(float("inf"), value.dtype)))


def _multiply_maximum(op, maxima, inputs):
    """One map times gates of one value per image and channel (squeeze-and-excitation): where they are
    >= 0, the map's maximum times them."""
    if any(len(x.shape) != 4 for x in inputs):
        return None
    maps = [i for i, x in enumerate(inputs) if tuple(x.shape[1:3]) != (1, 1)]
    if len(maps) != 1 or maxima[maps[0]] is None:
        return None
    gates = [x for i, x in enumerate(inputs) if i != maps[0]]
    value = _product([maxima[maps[0]], *gates])
    ordered = tf.reduce_all(tf.stack([tf.broadcast_to(g >= 0, tf.shape(value)) for g in gates]), axis=0)
    return tf.where(ordered, value, tf.fill(tf.shape(value), tf.constant(float("inf"), value.dtype)))


def _max_pool_backward(op, g, ctx):
    p = op.params
    switches = ctx.tile(ctx.tensors[f"{op.name}:switches"])
    result = ops.unpool(g, switches, ctx.input_shape(op), p["pool"], p["stride"], p["padding"])
    return [tf.ensure_shape(result, [None, *ctx.graph.shapes[op.inputs[0]]])]


def _avg_pool_backward(op, g, ctx):
    pool, stride = ops.pair(op.params["pool"]), ops.pair(op.params["stride"])
    return [
        tf.raw_ops.AvgPoolGrad(
            orig_input_shape=ctx.input_shape(op),
            grad=g,
            ksize=[1, *pool, 1],
            strides=[1, *stride, 1],
            padding=op.params["padding"].upper(),
        )
    ]


def _global_avg_backward(op, g, ctx):
    height, width, channels = ctx.graph.shapes[op.inputs[0]]
    g = tf.reshape(g, [-1, 1, 1, channels]) / (height * width)
    return [tf.broadcast_to(g, ctx.input_shape(op))]


def _global_max_backward(op, g, ctx):
    # As TensorFlow's gradient of reduce_max: shared equally among tied maxima.
    x = tf.cast(ctx.tensors[op.inputs[0]], ctx.dtype)
    channels = ctx.graph.shapes[op.inputs[0]][-1]
    hit = tf.cast(tf.equal(x, tf.reduce_max(x, axis=[1, 2], keepdims=True)), ctx.dtype)
    hit /= tf.reduce_sum(hit, axis=[1, 2], keepdims=True)
    return [ctx.tile(hit) * tf.reshape(g, [-1, 1, 1, channels])]


def _zero_pad_forward(op, inputs, dtype):
    top, bottom, left, right = op.params["padding"]
    return tf.pad(inputs[0], [[0, 0], [top, bottom], [left, right], [0, 0]])


def _zero_pad_backward(op, g, ctx):
    top, bottom, left, right = op.params["padding"]
    height, width = ctx.graph.shapes[op.name][:2]
    return [g[:, top : height - bottom, left : width - right]]


def _shift_reach(sign):
    def reach(op, here, axis, length):
        before = op.params["padding" if op.kind == "zero_pad" else "cropping"][0 if axis == 0 else 2]
        return {u + sign * before for u in here}

    return reach


def _crop_forward(op, inputs, dtype):
    top, bottom, left, right = op.params["cropping"]
    height, width = inputs[0].shape[1:3]
    return inputs[0][:, top : height - bottom, left : width - right]


def _crop_backward(op, g, ctx):
    top, bottom, left, right = op.params["cropping"]
    return [tf.pad(g, [[0, 0], [top, bottom], [left, right], [0, 0]])]


def _upsample_forward(op, inputs, dtype):
    rows, cols = op.params["size"]
    return tf.repeat(tf.repeat(inputs[0], rows, axis=1), cols, axis=2)


def _upsample_backward(op, g, ctx):
    rows, cols = op.params["size"]
    height, width, channels = ctx.graph.shapes[op.inputs[0]]
    blocks = tf.reshape(g, [-1, height, rows, width, cols, channels])
    return [tf.reduce_sum(blocks, axis=[2, 4])]


def _upsample_reach(op, here, axis, length):
    return {u // op.params["size"][axis] for u in here}


def _concat_backward(op, g, ctx):
    axis = op.params["axis"] % (len(ctx.graph.shapes[op.name]) + 1)
    sizes = [ctx.graph.shapes[name][axis - 1] for name in op.inputs]
    return tf.split(g, sizes, axis=axis)


def _concat_reach(op, here, axis, length):
    if op.params["axis"] % 4 in (1, 2):
        raise ValueError(f"receptive fields through a spatial Concatenate ({op.source}) are not supported")
    return set(here)


def _dense_forward(op, inputs, dtype):
    y = tf.matmul(inputs[0], op.value("kernel", dtype))
    return y + op.value("bias", dtype) if op.params.get("bias") is not None else y


def _dense_flops(op, shape_of):
    inputs, outputs = op.params["kernel"].shape
    return 2 * inputs * outputs


def _layer_forward(op, inputs, dtype):
    """A Keras layer (or any callable) run as it is; float32 in and out, like Keras computes it."""
    outputs = op.params["call"](*[tf.cast(x, tf.float32) for x in inputs])
    return tf.cast(outputs, dtype)


_ENTRIES = (
    Kind("input", "the image batch", lambda op, inputs, dtype: inputs[0], chain=True, keras=("InputLayer",),
         match=kl.match_input),
    Kind("conv", "convolution + bias (kernel [h, w, in, out], bias, stride, padding, dilation)", _conv_forward,
         _conv_backward, _window_reach, _conv_flops, chain=True, keras=("Conv2D",), match=kl.match_conv),
    Kind("depthwise_conv", "depthwise convolution + bias (kernel [h, w, in, multiplier], bias, stride, padding, "
         "dilation)", _depthwise_forward, _depthwise_backward, _window_reach, _depthwise_flops,
         keras=("DepthwiseConv2D", "SeparableConv2D (with a 1x1 conv)", "Conv2D(groups=input channels)"),
         match=kl.match_depthwise_conv),
    Kind("conv_transpose",
         "transposed convolution + bias (kernel [h, w, out, in], bias, stride, padding, optional output size)",
         _transpose_forward, _transpose_backward, _transpose_reach, _transpose_flops,
         keras=("Conv2DTranspose",), match=kl.match_conv_transpose),
    Kind("relu", "rectifier: max(x, 0), or with threshold t: x where x >= t else 0; clipped at max_value",
         _relu_forward, reach="pointwise", chain=True, rectifier=True,
         keras=("ReLU", "Activation('relu'/'relu6')", "activation='relu'"), maximum=_relu_maximum, match=kl.match_relu),
    Kind("activation", "any other elementwise activation fn(x) (silu, gelu, hard_silu, leaky ReLU, elu, ...)",
         lambda op, inputs, dtype: tf.cast(op.params["fn"](inputs[0]), dtype),
         keras=("Activation", "LeakyReLU", "PReLU", "ELU", "ReLU(negative_slope)", "activation=..."),
         maximum=_activation_maximum, match=kl.match_activation),
    Kind("max_pool", "max pooling with switches (pool, stride, padding)",
         lambda op, inputs, dtype: tf.nn.max_pool2d(inputs[0], op.params["pool"], op.params["stride"],
                                                    op.params["padding"].upper()),
         _max_pool_backward, _window_reach, chain=True, keras=("MaxPooling2D",), match=kl.match_max_pool),
    Kind("avg_pool", "average pooling (pool, stride, padding)",
         lambda op, inputs, dtype: tf.nn.avg_pool2d(inputs[0], op.params["pool"], op.params["stride"],
                                                    op.params["padding"].upper()),
         _avg_pool_backward, _window_reach, keras=("AveragePooling2D",), match=kl.match_avg_pool),
    Kind("global_avg_pool", "mean over H, W (keepdims)",
         lambda op, inputs, dtype: tf.reduce_mean(inputs[0], [1, 2], keepdims=op.params.get("keepdims", False)),
         _global_avg_backward, "all", keras=("GlobalAveragePooling2D",), match=kl.match_global_avg_pool),
    Kind("global_max_pool", "max over H, W (keepdims)",
         lambda op, inputs, dtype: tf.reduce_max(inputs[0], [1, 2], keepdims=op.params.get("keepdims", False)),
         _global_max_backward, "all", keras=("GlobalMaxPooling2D",), match=kl.match_global_max_pool),
    Kind("affine", "per-channel x * scale + offset: inference BatchNormalization, Rescaling, Normalization",
         lambda op, inputs, dtype: inputs[0] * op.value("scale", dtype) + op.value("offset", dtype),
         lambda op, g, ctx: [g * op.value("scale", ctx.dtype)],
         keras=("BatchNormalization", "Rescaling", "Normalization"), maximum=_affine_maximum, match=kl.match_affine),
    Kind("identity", "x (Dropout, linear activations, input layers)", lambda op, inputs, dtype: inputs[0],
         lambda op, g, ctx: [g], chain=True, keras=("Dropout", "SpatialDropout2D", "GaussianNoise",
                                                     "GaussianDropout", "Activation('linear')"),
         maximum=lambda op, maxima, inputs: maxima[0], match=kl.match_identity),
    Kind("flatten", "reshape to [N, -1]",
         lambda op, inputs, dtype: tf.reshape(inputs[0], [tf.shape(inputs[0])[0], -1]),
         lambda op, g, ctx: [tf.reshape(g, ctx.input_shape(op))], "all", keras=("Flatten",), match=kl.match_flatten),
    Kind("dense", "x @ kernel + bias", _dense_forward,
         lambda op, g, ctx: [tf.matmul(g, op.value("kernel", ctx.dtype), transpose_b=True)], "all", _dense_flops,
         keras=("Dense",), match=kl.match_dense),
    Kind("zero_pad", "zero padding (top, bottom, left, right)", _zero_pad_forward, _zero_pad_backward,
         _shift_reach(-1), keras=("ZeroPadding2D",), match=kl.match_zero_pad),
    Kind("crop", "cropping (top, bottom, left, right)", _crop_forward, _crop_backward, _shift_reach(+1),
         keras=("Cropping2D",), match=kl.match_crop),
    Kind("upsample", "nearest-neighbour upsampling (size rows, cols)", _upsample_forward, _upsample_backward,
         _upsample_reach, keras=("UpSampling2D(interpolation='nearest')",), match=kl.match_upsample),
    Kind("add", "sum of the inputs", lambda op, inputs, dtype: tf.add_n(inputs),
         lambda op, g, ctx: [g] * len(op.inputs), keras=("Add",), match=kl.match_add),
    Kind("multiply", "product of the inputs, broadcast (squeeze-and-excitation gates)",
         lambda op, inputs, dtype: _product(inputs), keras=("Multiply",), maximum=_multiply_maximum,
         match=kl.match_multiply),
    Kind("concat", "concatenation (axis)", lambda op, inputs, dtype: tf.concat(inputs, axis=op.params["axis"]),
         _concat_backward, _concat_reach, keras=("Concatenate",), match=kl.match_concat),
    Kind("softmax", "softmax over the last axis (projections start below it)",
         lambda op, inputs, dtype: tf.nn.softmax(tf.cast(inputs[0], tf.float32)), keras=("Softmax",),
         match=kl.match_softmax),
    Kind("layer", "any other Keras layer, run as it is (call); signals pass back through its own gradient",
         _layer_forward, reach="measured",
         keras=("any other layer: LayerNormalization, GroupNormalization, Reshape, Permute, Lambda, custom "
                "layers, ...",)),
)  # fmt: skip


def _plain(entry: Kind) -> Kind:
    """The entry with its rules marked plain TensorFlow: autograph would otherwise try to convert every rule
    at every trace (parsing lambdas' source, slowly and noisily)."""
    plain = tf.autograph.experimental.do_not_convert
    return dataclasses.replace(entry, forward=plain(entry.forward), backward=entry.backward and plain(entry.backward),
                               maximum=entry.maximum and plain(entry.maximum))  # fmt: skip


KINDS: dict[str, Kind] = {entry.name: _plain(entry) for entry in _ENTRIES}


def _product(inputs):
    result = inputs[0]
    for x in inputs[1:]:
        result = result * x
    return result


def kind(op) -> Kind:
    """The registry entry of an op; ValueError for a kind nobody registered."""
    try:
        return KINDS[op.kind]
    except KeyError:
        raise ValueError(f"operation {op.name!r} has unknown kind {op.kind!r}; known: {', '.join(KINDS)}") from None


def flops(graph) -> list[int]:
    """FLOPs (2 x multiply-adds) of each counted op of a graph, for one image, in graph order."""
    return [KINDS[op.kind].flops(op, graph.shapes) for op in graph.ops if KINDS[op.kind].flops is not None]


def keras_table() -> list[tuple[str, str]]:
    """(kind, the Keras layers that map onto it) for messages and the README."""
    return [(entry.name, ", ".join(entry.keras)) for entry in KINDS.values() if entry.keras]
