"""The projection engine (`reconstruct`): map a layer's activations back to pixels through any Graph.

Walking the graph backwards from the chosen tensor, every convolution is undone by a transposed
convolution with its own kernel (same stride, padding, dilation), every max pooling by unpooling through
its recorded switches, and every other op by the backward rule of its registry entry
(`nn.registry`), which for most kinds is the op's own vector-Jacobian product. At each rectifier the
signal passes the mode's rule instead of the gradient:

- `deconvnet` (Zeiler & Fergus 2014): ReLU of the signal, relu(g); biases unused.
- `guided`: guided backpropagation, relu(g) * 1[t < x < max_value] at a ReLU of input x (threshold t,
  default 0; max_value, default none, e.g. 6 for ReLU6).
- `bias_subtract`: no rectification; each convolution's bias is subtracted before it is undone (the
  TF1 tutorial's rule). Only for plain chains of convolutions, ReLUs and poolings.

Other activations (silu, gelu, hard_silu, leaky ReLU, elu, sigmoid, ...) pass the signal through their
own gradient by default (`rectify="relu"`, as Xplique and Captum do); `rectify="all"` applies the ReLU
rule at every activation instead (guided: masked by x > 0).

In `deconvnet` and `guided` modes a projection of signal s from tensor T is exactly the gradient of
sum(s * T) with respect to the input in a network whose rectifiers' backward rule is replaced.

Several signals (from several layers) of the same N images travel stacked along the batch axis, slot
after slot: each tensor's running signal holds the first m slots (the later ones are zero), so each op
runs once for all of them.
"""

import tensorflow as tf

from vizdeconv.nn import registry
from vizdeconv.nn.graph import Graph

MODES = ("deconvnet", "bias_subtract", "guided")
"""The projection rules: `deconvnet` (rectify the signal), `bias_subtract` (subtract each convolution's bias, the
classic TF1 tutorial), `guided` (rectify the signal and keep the forward pass's ReLU masks)."""
RECTIFY = ("relu", "all")  # where the mode's rule replaces the gradient: ReLUs only, or every activation


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"projection mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def check_bias_subtract(graph: Graph, names) -> None:
    """ValueError unless every path from the input to `names` is a plain conv / ReLU / pool chain."""
    below = graph.ancestors(names)
    for op in graph.ops:  # in order, so the message names the lowest offender
        if op.name in below and (not registry.KINDS[op.kind].chain or len(op.inputs) > 1):
            raise ValueError(
                f"mode 'bias_subtract' needs a plain chain of convolutions, ReLUs and max "
                f"poolings below the projected layer, but {op.source or op.name} is an "
                f"'{op.kind}' op; use mode 'deconvnet' or 'guided'"
            )


def check_rectify(rectify: str) -> str:
    if rectify not in RECTIFY:
        raise ValueError(f"rectify must be one of {', '.join(RECTIFY)}, got {rectify!r}")
    return rectify


# 79 lines: the engine's one backward walk; every step shares its per-op context (switches, slots, the mode's rule).
def project_signals(
    graph: Graph,
    tensors: dict,
    signals: dict,
    mode: str = "deconvnet",
    compute_dtype=tf.float32,
    rectify: str = "relu",
) -> dict:
    """Projects several signals of the same N images down to the input.

    Args:
      graph: the network.
      tensors: `graph.forward(images, compute_dtype, record_switches=True)` for those images.
      signals: tensor name -> [N, *graph.shapes[name]] signal (e.g. the activations, masked).
      mode: one of MODES.
      compute_dtype: tf.float32 (exact) or tf.bfloat16.
      rectify: "relu" (the mode's rule at ReLUs, other activations pass their gradient) or "all".
    Returns:
      tensor name -> [N, H, W, C] float32, shaped like the input.
    """
    check_mode(mode)
    check_rectify(rectify)
    if mode == "bias_subtract":
        check_bias_subtract(graph, signals)
    dtype = tf.as_dtype(compute_dtype)
    batch = tf.shape(tensors[graph.input])[0]
    needed = graph.ancestors(signals)
    order: list[str] = []
    running: dict[str, tuple[tf.Tensor, int]] = {}  # tensor -> (signal of its first m slots, m)

    def context(slots):
        return registry.Backward(tensors, graph, slots, batch, dtype, mode)

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
        for name, contribution in zip(op.inputs, _backward(op, value, context(slots), rectify)):
            accumulate(name, contribution, slots)

    value, slots = running[graph.input]
    value = widen(value, slots, len(order))
    pieces = tf.split(tf.cast(value, tf.float32), len(order), axis=0)
    shape = [None, *graph.input_shape]
    return {name: tf.ensure_shape(piece, shape) for name, piece in zip(order, pieces)}


def _backward(op, g, ctx: registry.Backward, rectify: str) -> list:
    """The signals an op hands to each of its inputs, given the signal `g` [slots * N, ...] at its output."""
    kind = registry.KINDS[op.kind]
    if kind.rectifier or (rectify == "all" and op.kind == "activation"):
        if ctx.mode == "bias_subtract":
            return [g]
        g = tf.nn.relu(g)
        if ctx.mode == "guided":
            x = ctx.forward_input(op)
            active = x > op.params.get("threshold", 0.0)
            if op.params.get("max_value") is not None:
                active &= x < op.params["max_value"]
            g *= tf.cast(active, ctx.dtype)
        return [g]
    if kind.backward is not None:
        return kind.backward(op, g, ctx)
    return vector_jacobian(op, g, ctx)


def vector_jacobian(op, g, ctx: registry.Backward) -> list:
    """g times the Jacobian of the op at its forward inputs: its own gradient, for kinds without a rule."""
    inputs = [ctx.forward_input(op, index) for index in range(len(op.inputs))]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        output = registry.KINDS[op.kind].forward(op, inputs, ctx.dtype)
    gradients = tape.gradient(output, inputs, output_gradients=tf.cast(g, output.dtype))
    if any(gradient is None for gradient in gradients):
        raise ValueError(
            f"cannot project through {op.source or op.name}: it has no gradient with respect to its input "
            "(e.g. it rounds or casts to integers); pick a layer below it"
        )
    return [tf.cast(gradient, ctx.dtype) for gradient in gradients]
