"""The projection engine: map a layer's activations back to pixels through any Graph.

Walking the graph backwards from the chosen tensor, every convolution is undone by a transposed
convolution with its own kernel (same stride, padding, dilation), every max pooling by unpooling through
its recorded switches, and every other linear op by its adjoint (average pooling spreads, batch
normalization scales, an Add hands the signal to each branch, a Concatenate splits it). At each ReLU the
signal passes the mode's rule:

- `deconvnet` (Zeiler & Fergus 2014): ReLU of the signal; biases unused.
- `guided`: guided backpropagation; the deconvnet ReLU masked by where the forward ReLU was active.
- `bias_subtract`: no rectification; each convolution's bias is subtracted before it is undone (the
  TF1 tutorial's rule). Only for plain chains of convolutions, ReLUs and poolings.

In `deconvnet` and `guided` modes a projection of signal s from tensor T is exactly the gradient of
sum(s * T) with respect to the input in a network whose ReLU backward rule is replaced.

Several signals (from several layers) of the same N images travel stacked along the batch axis, slot
after slot: each tensor's running signal holds the first m slots (the later ones are zero), so each op
runs once for all of them.
"""

import tensorflow as tf

from vizdeconv.nn import ops
from vizdeconv.nn.graph import Graph, switches_name

MODES = ("deconvnet", "bias_subtract", "guided")
CHAIN_KINDS = ("input", "conv", "relu", "max_pool", "identity")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"projection mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def check_bias_subtract(graph: Graph, names) -> None:
    """ValueError unless every path from the input to `names` is a plain conv / ReLU / pool chain."""
    below = graph.ancestors(names)
    for op in graph.ops:  # in order, so the message names the lowest offender
        if op.name in below and (op.kind not in CHAIN_KINDS or len(op.inputs) > 1):
            raise ValueError(
                f"mode 'bias_subtract' needs a plain chain of convolutions, ReLUs and max "
                f"poolings below the projected layer, but {op.source or op.name} is an "
                f"'{op.kind}' op; use mode 'deconvnet' or 'guided'"
            )


def project_signals(
    graph: Graph, tensors: dict, signals: dict, mode: str = "deconvnet", compute_dtype=tf.float32
) -> dict:
    """Projects several signals of the same N images down to the input.

    Args:
      graph: the network.
      tensors: `graph.forward(images, compute_dtype, record_switches=True)` for those images.
      signals: tensor name -> [N, *graph.shapes[name]] signal (e.g. the activations, masked).
      mode: one of MODES.
      compute_dtype: tf.float32 (exact) or tf.bfloat16.
    Returns:
      tensor name -> [N, H, W, C] float32, shaped like the input.
    """
    check_mode(mode)
    if mode == "bias_subtract":
        check_bias_subtract(graph, signals)
    dtype = tf.as_dtype(compute_dtype)
    batch = tf.shape(tensors[graph.input])[0]
    needed = graph.ancestors(signals)
    order: list[str] = []
    running: dict[str, tuple[tf.Tensor, int]] = {}  # tensor -> (signal of its first m slots, m)

    def tile(tensor, slots):  # a per-image forward tensor, once for every slot
        return tf.tile(tensor, [slots] + [1] * (len(tensor.shape) - 1)) if slots > 1 else tensor

    def widen(value, slots, target):  # zero slots appended up to `target`
        if slots == target:
            return value
        zeros = tf.zeros(tf.concat([[batch * (target - slots)], tf.shape(value)[1:]], 0), value.dtype)
        return tf.concat([value, zeros], axis=0)

    def accumulate(name, value, slots):
        if name in running:
            previous, had = running[name]
            slots_now = max(had, slots)
            value = widen(previous, had, slots_now) + widen(value, slots, slots_now)
            slots = slots_now
        running[name] = (value, slots)

    for op in reversed(graph.ops):
        if op.name not in needed:
            continue
        if op.name in signals:
            value, slots = running.pop(op.name, (None, 0))
            fresh = tf.cast(signals[op.name], dtype)
            value = (
                fresh
                if value is None and not order
                else tf.concat(
                    [
                        widen(value, slots, len(order))
                        if value is not None
                        else tf.zeros(tf.concat([[batch * len(order)], tf.shape(fresh)[1:]], 0), dtype),
                        fresh,
                    ],
                    axis=0,
                )
            )
            order.append(op.name)
            running[op.name] = (value, len(order))
        if op.kind == "input" or op.name not in running:
            continue
        value, slots = running.pop(op.name)
        for name, contribution in zip(op.inputs, _backward(op, value, slots, tensors, mode, dtype, graph, batch, tile)):
            accumulate(name, contribution, slots)

    value, slots = running[graph.input]
    value = widen(value, slots, len(order))
    pieces = tf.split(tf.cast(value, tf.float32), len(order), axis=0)
    shape = [None, *graph.input_shape]
    return {name: tf.ensure_shape(piece, shape) for name, piece in zip(order, pieces)}


def _backward(op, g, slots, tensors, mode, dtype, graph, batch, tile) -> list:
    """The signals an op hands to each of its inputs, given the signal `g` [slots * N, ...] at its output."""
    kind, p = op.kind, op.params

    def input_shape(index=0):
        return [batch * slots, *graph.shapes[op.inputs[index]]]

    if kind == "relu":
        if mode == "bias_subtract":
            return [g]
        g = tf.nn.relu(g)
        if mode == "guided":
            g *= tile(tf.cast(tensors[op.name] > 0, dtype), slots)
        return [g]
    if kind == "conv":
        if mode == "bias_subtract" and p.get("bias") is not None:
            g = g - op.value("bias", dtype)
        result = ops.conv2d_transpose(
            g, op.value("kernel", dtype), input_shape(), p["stride"], p["padding"], p["dilation"]
        )
        return [tf.ensure_shape(result, [None, *graph.shapes[op.inputs[0]]])]
    if kind == "conv_transpose":
        if mode == "bias_subtract" and p.get("bias") is not None:
            g = g - op.value("bias", dtype)
        return [ops.conv2d(g, op.value("kernel", dtype), p["stride"], p["padding"])]
    if kind == "max_pool":
        result = ops.unpool(
            g, tile(tensors[switches_name(op.name)], slots), input_shape(), p["pool"], p["stride"], p["padding"]
        )
        return [tf.ensure_shape(result, [None, *graph.shapes[op.inputs[0]]])]
    if kind == "avg_pool":
        pool, stride = ops.pair(p["pool"]), ops.pair(p["stride"])
        return [
            tf.raw_ops.AvgPoolGrad(
                orig_input_shape=input_shape(),
                grad=g,
                ksize=[1, *pool, 1],
                strides=[1, *stride, 1],
                padding=p["padding"].upper(),
            )
        ]
    if kind == "global_avg_pool":
        height, width, channels = graph.shapes[op.inputs[0]]
        g = tf.reshape(g, [-1, 1, 1, channels]) / (height * width)
        return [tf.broadcast_to(g, input_shape())]
    if kind == "global_max_pool":
        # As TensorFlow's gradient of reduce_max: shared equally among tied maxima.
        x = tf.cast(tensors[op.inputs[0]], dtype)
        channels = graph.shapes[op.inputs[0]][-1]
        hit = tf.cast(tf.equal(x, tf.reduce_max(x, axis=[1, 2], keepdims=True)), dtype)
        hit /= tf.reduce_sum(hit, axis=[1, 2], keepdims=True)
        return [tile(hit, slots) * tf.reshape(g, [-1, 1, 1, channels])]
    if kind == "affine":
        scale = op.value("scale", dtype)
        return [g * scale]
    if kind == "identity":
        return [g]
    if kind == "flatten":
        return [tf.reshape(g, input_shape())]
    if kind == "dense":
        return [tf.matmul(g, op.value("kernel", dtype), transpose_b=True)]
    if kind == "zero_pad":
        top, bottom, left, right = p["padding"]
        height, width = graph.shapes[op.name][:2]
        return [g[:, top : height - bottom, left : width - right]]
    if kind == "add":
        return [g] * len(op.inputs)
    if kind == "concat":
        axis = p["axis"] % (len(graph.shapes[op.name]) + 1)
        sizes = [graph.shapes[name][axis - 1] for name in op.inputs]
        return tf.split(g, sizes, axis=axis)
    raise ValueError(f"cannot project through {op.source or op.name} ({kind}); pick a layer below it")
