"""Model surgery in one place: a Keras model (Sequential or functional, nested models included) as a Graph.

The adapter walks the model's own graph of layer calls from its outputs back to its input, expands every
nested model into its layers (their tensors are named `outer/inner`, and the bare layer name is kept as
an alias when it is unique), and turns each layer into ops of `graph.KINDS`. Weights are the layers'
variables themselves, so a Graph follows a model that is still training. A layer that no kind of
`nn.registry` claims becomes a `layer` op: it runs as it is and passes the signal back through its own
gradient.
"""

import keras

from vizdeconv.nn import keras_layers, registry
from vizdeconv.nn.graph import Graph, Op


def _with_activation(layer, kind: str, name: str, inputs, params: dict, source: str) -> list[Op]:
    """A layer's linear op, then its fused activation if it has one (named after the layer, the linear
    part `<name>/linear`)."""
    activation = getattr(layer, "activation", None)
    if activation is None or isinstance(layer, keras.layers.Activation):
        return [Op(name, kind, inputs, params, source)]
    activation_kind, activation_params = keras_layers.activation_kind(activation)
    if activation_kind == "identity":
        return [Op(name, kind, inputs, params, source)]
    linear = f"{name}/linear"
    return [Op(linear, kind, inputs, params, source), Op(name, activation_kind, (linear,), activation_params, source)]


def _check_channels_last(layer) -> None:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise ValueError(
            f"layer {layer.name!r} ({type(layer).__name__}) uses channels_first; vizdeconv reads NHWC models only"
        )


def _generic(layer, name: str, inputs: tuple[str, ...], source: str, node=None) -> list[Op]:
    """Any other layer or Keras operation: run as the model calls it (the node's own arguments, with
    training=False where the layer takes it), its signal passed back through its own gradient."""
    symbolic = list(node.arguments.keras_tensors) if node is not None else []

    def call(*values):
        if node is None:
            return layer(*values)
        args, kwargs = node.arguments.fill_in({id(t): v for t, v in zip(symbolic, values)})
        if "training" in kwargs:
            kwargs["training"] = False
        return layer(*args, **kwargs)

    return [Op(name, "layer", inputs, {"call": call, "label": type(layer).__name__}, source)]


def layer_ops(layer, name: str, inputs: tuple[str, ...], node=None) -> list[Op]:
    """The ops of one (non-model) Keras layer whose output tensor is `name`: the op of the kind of
    `nn.registry.KINDS` whose `match` claims the layer (then the layer's fused activation), or a `layer` op
    where no kind does."""
    source = f"{type(layer).__name__} {layer.name!r}"
    _check_channels_last(layer)
    if not isinstance(layer, keras.layers.Layer):  # a Keras operation in a functional model (x + y, ops.mean(...))
        return _generic(layer, name, inputs, source, node)
    for kind in registry.KINDS.values():
        params = kind.match(layer) if kind.match is not None else None
        if params is None:
            continue
        if "pointwise" in params:  # SeparableConv2D: a depthwise convolution, then a 1x1 one with the bias
            params = dict(params)
            pointwise, depthwise = params.pop("pointwise"), f"{name}/depthwise"
            depthwise_op = Op(depthwise, kind.name, inputs, params, source)
            return [depthwise_op, *_with_activation(layer, "conv", name, (depthwise,), pointwise, source)]
        return _with_activation(layer, kind.name, name, inputs, params, source)
    return _generic(layer, name, inputs, source, node)


def describe(model) -> Graph:
    """The Graph of a built Keras model with one image input.

    Raises:
      ValueError: the model is not built, has several inputs, or contains a layer the deconvnet
        cannot pass (the message names it).
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"expected a keras.Model, got {type(model).__name__}")
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(
            f"model {model.name!r} is not built with a known input shape; call it once "
            "on a batch or start it with keras.Input(shape)"
        )
    if len(inputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(inputs)} inputs; vizdeconv needs one image input")
    walker = _Walker()
    walker.ops.append(Op("input", "input", (), {}, "input"))
    # Every output is described (attribution's targets may read any); projections start from the first.
    output_names = walker.outputs(model, ["input"], prefix="")  # names an unsupported layer first
    shape = inputs[0].shape[1:]
    if len(shape) != 3 or None in shape:
        raise ValueError(
            f"model {model.name!r} takes inputs of shape {tuple(shape)}; vizdeconv needs "
            "images [H, W, C] of a fixed size"
        )
    counts = {}
    for op in walker.ops:
        counts[op.name.rsplit("/", 1)[-1]] = counts.get(op.name.rsplit("/", 1)[-1], 0) + 1
    aliases = {
        op.name.rsplit("/", 1)[-1]: op.name
        for op in walker.ops
        if "/" in op.name and counts[op.name.rsplit("/", 1)[-1]] == 1 and not op.name.endswith("/linear")
    }
    aliases.update(walker.model_outputs)
    return Graph(walker.ops, output_names[0], shape, aliases, outputs=output_names)


class _Walker:
    """Expands a model's layer calls into ops, recursing into nested models."""

    def __init__(self):
        self.ops: list[Op] = []
        self.model_outputs: dict[str, str] = {}  # nested model name -> its output tensor
        self.first_call: dict[int, int] = {}  # layer -> the node of its first call in this graph

    def model(self, model, input_names: list[str], prefix: str) -> str:
        """Adds the ops of `model` reading `input_names`; returns the name of its output tensor."""
        return self.outputs(model, input_names, prefix)[0]

    def outputs(self, model, input_names: list[str], prefix: str) -> list[str]:
        """Adds the ops of `model` reading `input_names`; returns the names of all its output tensors."""
        known = {id(t): name for t, name in zip(model.inputs, input_names)}
        return [self._tensor(tensor, known, prefix) for tensor in model.outputs]

    def _tensor(self, tensor, known: dict, prefix: str) -> str:
        if id(tensor) in known:
            return known[id(tensor)]
        layer, node_index, tensor_index = tensor._keras_history
        node = layer._inbound_nodes[node_index]
        inputs = [self._tensor(t, known, prefix) for t in node.input_tensors]
        # A layer is named by its own name. Only a layer called twice in this graph (a shared layer) gets
        # `@node` on its later calls: a reloaded Sequential has extra inbound nodes from its rebuilding,
        # which must not rename its layers.
        suffix = f"@{node_index}" if self.first_call.setdefault(id(layer), node_index) != node_index else ""
        if isinstance(layer, keras.Model):
            if len(layer.outputs) != 1 or tensor_index:
                raise ValueError(f"nested model {layer.name!r} has several outputs; not supported")
            name = self.model(layer, inputs, f"{prefix}{layer.name}{suffix}/")
            self.model_outputs[layer.name] = name
        else:
            name = f"{prefix}{layer.name}{suffix}"
            if name not in {op.name for op in self.ops}:
                self.ops.extend(layer_ops(layer, name, tuple(inputs), node))
        known[id(tensor)] = name
        return name
