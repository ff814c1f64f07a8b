"""The first projection engine (walks ConvNet.specs), kept only as the independent reference the tests
compare the Graph engine with on the reference network; the library has one engine (vizdeconv.deconv).

Walking down from the chosen layer, every conv layer is undone by a transposed convolution with its own
kernel (same stride, padding, dilation) and every pooling by unpooling through the recorded switches.
Before each transposed convolution the signal passes the mode's rule:

- `deconvnet` (Zeiler & Fergus 2014): ReLU of the signal; biases unused.
- `bias_subtract`: no rectification; the layer's bias is subtracted (the TF1 tutorial's rule).
- `guided`: guided backpropagation; the deconvnet ReLU masked by where the forward ReLU was active.

In `deconvnet` and `guided` modes a projection of signal s from layer L is exactly the gradient of
sum(s * activation_L) with respect to the image in a network whose ReLU backward rule is replaced.
"""

import tensorflow as tf

from vizdeconv.nn import ops
from vizdeconv.nn.convnet import ConvNet

MODES = ("deconvnet", "bias_subtract", "guided")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"reconstruction mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def _layer_index(model: ConvNet, layer: str) -> tuple[int, bool]:
    """(index of the conv layer, whether `layer` names its pooled output)."""
    for index, spec in enumerate(model.specs):
        if layer == spec.name:
            return index, False
        if spec.pool and layer == spec.pool_name:
            return index, True
    names = [n for n in model.shapes if n != "input"]
    raise ValueError(f"unknown layer {layer!r}; the model has {', '.join(names)}")


def project(
    model: ConvNet,
    tensors: dict,
    layer: str,
    signal,
    mode: str = "deconvnet",
    unpool=ops.unpool,
    compute_dtype=tf.float32,
):
    """Projects `signal`, shaped like `tensors[layer]`, down to the input.

    Args:
      model: the network whose kernels, biases and layer geometry are used.
      tensors: `model.graph().forward(images)` for the same images (float32).
      layer: a conv name (e.g. 'conv2') or a pool name (e.g. 'pool2').
      signal: [N, h, w, c] float32, e.g. `tensors[layer]` or a masked copy.
      mode: one of MODES.
      unpool: the unpooling function (benchmarks swap in `ops.unpool_scatter_nd`).
      compute_dtype: tf.float32 (exact) or tf.bfloat16 (about 3x faster where the hardware has it).
    Returns:
      [N, H, W, C_in] float32, the shape of `tensors['input']`.
    """
    return project_many(model, tensors, {layer: signal}, mode, unpool, compute_dtype)[layer]


def project_many(
    model: ConvNet, tensors: dict, signals: dict, mode: str = "deconvnet", unpool=ops.unpool, compute_dtype=tf.float32
) -> dict:
    """Projects several signals (layer name -> [N, h, w, c]) of the same N images at once.

    Walking down, the signals that have started so far travel stacked along the batch axis, so each
    layer runs one transposed convolution for all of them instead of one per signal.

    Returns:
      layer name -> [N, H, W, C_in] float32.
    """
    dtype = tf.as_dtype(compute_dtype)
    check_mode(mode)
    starts = {layer: _layer_index(model, layer) for layer in signals}
    batch = tf.shape(tensors["input"])[0]
    stack, order = None, []

    def join(names, stack):
        new = [tf.cast(signals[name], dtype) for name in names]
        order.extend(names)
        return tf.concat(([stack] if stack is not None else []) + new, axis=0) if new else stack

    def repeat(tensor):  # per-image tensors, once for every stacked signal
        return tf.tile(tensor, [len(order), 1, 1, 1]) if len(order) > 1 else tensor

    for i in range(max(index for index, _ in starts.values()), -1, -1):
        spec = model.specs[i]
        stack = join([name for name, start in starts.items() if start == (i, True)], stack)
        if stack is not None and spec.pool:
            unpooled = unpool(
                stack,
                repeat(tensors[f"{spec.pool_name}:switches"]),
                [batch * len(order), *model.shapes[spec.name]],
                spec.pool,
                spec.effective_pool_stride,
                spec.pool_padding,
            )
            stack = tf.ensure_shape(unpooled, [None, *model.shapes[spec.name]])
        stack = join([name for name, start in starts.items() if start == (i, False)], stack)
        if stack is None:
            continue
        if mode == "bias_subtract":
            stack = stack - tf.cast(model.biases[i], dtype)
        else:
            stack = tf.nn.relu(stack)
            if mode == "guided":
                stack *= repeat(tf.cast(tensors[spec.name] > 0, dtype))
        below = "input" if i == 0 else _output_name(model, i - 1)
        stack = ops.conv2d_transpose(
            stack,
            tf.cast(model.kernels[i], dtype),
            [batch * len(order), *model.shapes[below]],
            spec.stride,
            spec.padding,
            spec.dilation,
        )
        stack = tf.ensure_shape(stack, [None, *model.shapes[below]])
    return dict(zip(order, tf.split(tf.cast(stack, tf.float32), len(order), axis=0)))


def _output_name(model: ConvNet, index: int) -> str:
    spec = model.specs[index]
    return spec.pool_name if spec.pool else spec.name
