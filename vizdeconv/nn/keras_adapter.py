"""Model surgery in one place: a Keras model (Sequential or functional, nested models included) as a Graph.

The adapter walks the model's own graph of layer calls from its outputs back to its input, expands every
nested model into its layers (their tensors are named `outer/inner`, and the bare layer name is kept as
an alias when it is unique), and turns each layer into ops of `graph.KINDS`. Weights are the layers'
variables themselves, so a Graph follows a model that is still training. A layer outside the supported
set raises one ValueError naming it, its class and what to do.
"""

import keras

from vizdeconv.nn.graph import Graph, Op

ACTIVATIONS = {"linear": None, "relu": "relu", "softmax": "softmax"}


def _activation_name(layer) -> str:
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", str(activation))
    if name not in ACTIVATIONS:
        raise ValueError(
            f"layer {layer.name!r} ({type(layer).__name__}) has activation {name!r}; "
            f"the deconvnet supports {', '.join(ACTIVATIONS)}: use a separate ReLU layer "
            "or a linear activation"
        )
    return name


def _padding(layer) -> str:
    padding = getattr(layer, "padding", "valid")
    if padding not in ("same", "valid"):
        raise ValueError(
            f"layer {layer.name!r} ({type(layer).__name__}) has padding {padding!r}; "
            "only 'same' and 'valid' are supported"
        )
    return padding.upper()


def _check_channels_last(layer) -> None:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise ValueError(
            f"layer {layer.name!r} ({type(layer).__name__}) uses channels_first; vizdeconv reads NHWC models only"
        )


def _unsupported(layer, hint: str = "") -> ValueError:
    return ValueError(
        f"layer {layer.name!r} of class {type(layer).__name__} is not supported by the "
        f"deconvnet{': ' + hint if hint else ''}; supported layers: Conv2D, ReLU, "
        "Activation('relu'), MaxPooling2D, AveragePooling2D, Global{Average,Max}Pooling2D, "
        "BatchNormalization, Dropout, Flatten, Dense, ZeroPadding2D, Rescaling, "
        "Normalization, Add, Concatenate, nested models"
    )


def layer_ops(layer, name: str, inputs: tuple[str, ...]) -> list[Op]:
    """The ops of one (non-model) Keras layer whose output tensor is `name`."""
    source = f"{type(layer).__name__} {layer.name!r}"
    L = keras.layers
    if isinstance(layer, L.InputLayer):
        return [Op(name, "input", (), {}, source)]
    if isinstance(layer, (L.Dropout, L.SpatialDropout2D, L.GaussianNoise, L.GaussianDropout)):
        return [Op(name, "identity", inputs, {}, source)]
    if type(layer) is L.Conv2D or type(layer) is L.Dense:
        if type(layer) is L.Conv2D:
            _check_channels_last(layer)
        activation = _activation_name(layer)
        kind = "conv" if type(layer) is L.Conv2D else "dense"
        params = {"kernel": layer.kernel, "bias": layer.bias if layer.use_bias else None}
        if kind == "conv":
            if layer.groups != 1:
                raise _unsupported(layer, "grouped convolutions are not supported")
            params.update(stride=tuple(layer.strides), padding=_padding(layer), dilation=tuple(layer.dilation_rate))
        if activation == "linear":
            return [Op(name, kind, inputs, params, source)]
        linear = f"{name}/linear"
        return [Op(linear, kind, inputs, params, source), Op(name, ACTIVATIONS[activation], (linear,), {}, source)]
    if isinstance(layer, L.ReLU):
        if float(layer.negative_slope) != 0 or float(layer.threshold) != 0 or layer.max_value is not None:
            raise _unsupported(layer, "only a plain ReLU (no max_value, negative_slope or threshold)")
        return [Op(name, "relu", inputs, {}, source)]
    if isinstance(layer, L.Activation):
        activation = _activation_name(layer)
        return [Op(name, ACTIVATIONS[activation] or "identity", inputs, {}, source)]
    if isinstance(layer, (L.MaxPooling2D, L.AveragePooling2D)):
        _check_channels_last(layer)
        kind = "max_pool" if isinstance(layer, L.MaxPooling2D) else "avg_pool"
        return [
            Op(
                name,
                kind,
                inputs,
                {"pool": tuple(layer.pool_size), "stride": tuple(layer.strides), "padding": _padding(layer)},
                source,
            )
        ]
    if isinstance(layer, (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D)):
        _check_channels_last(layer)
        kind = "global_avg_pool" if isinstance(layer, L.GlobalAveragePooling2D) else "global_max_pool"
        return [Op(name, kind, inputs, {"keepdims": bool(layer.keepdims)}, source)]
    if isinstance(layer, L.BatchNormalization):
        if layer.axis not in (-1, 3) and layer.axis != [3] and layer.axis != [-1]:
            raise _unsupported(layer, "only BatchNormalization over the channel axis")
        return [Op(name, "affine", inputs, _batch_norm(layer), source)]
    if isinstance(layer, L.Rescaling):
        return [Op(name, "affine", inputs, {"scale": lambda: layer.scale, "offset": lambda: layer.offset}, source)]
    if isinstance(layer, L.Normalization):
        if layer.invert:
            raise _unsupported(layer, "Normalization(invert=True) is not supported")
        return [Op(name, "affine", inputs, _normalization(layer), source)]
    if isinstance(layer, L.Flatten):
        return [Op(name, "flatten", inputs, {}, source)]
    if isinstance(layer, L.ZeroPadding2D):
        _check_channels_last(layer)
        (top, bottom), (left, right) = layer.padding
        return [Op(name, "zero_pad", inputs, {"padding": (top, bottom, left, right)}, source)]
    if isinstance(layer, L.Add):
        return [Op(name, "add", inputs, {}, source)]
    if isinstance(layer, L.Concatenate):
        return [Op(name, "concat", inputs, {"axis": int(layer.axis)}, source)]
    if isinstance(layer, L.Softmax):
        return [Op(name, "softmax", inputs, {}, source)]
    raise _unsupported(layer, "replace it, or pick a layer below it")


def _batch_norm(layer) -> dict:
    """Inference-mode BatchNormalization as x * scale + offset."""
    import tensorflow as tf

    def scale():
        inverse = tf.math.rsqrt(tf.convert_to_tensor(layer.moving_variance) + layer.epsilon)
        return inverse * layer.gamma if layer.scale else inverse

    def offset():
        shift = -tf.convert_to_tensor(layer.moving_mean) * scale()
        return shift + layer.beta if layer.center else shift

    return {"scale": scale, "offset": offset}


def _normalization(layer) -> dict:
    import tensorflow as tf

    def scale():
        return 1.0 / tf.maximum(tf.sqrt(tf.convert_to_tensor(layer.variance)), keras.backend.epsilon())

    return {
        "scale": lambda: tf.reshape(scale(), [-1]),
        "offset": lambda: tf.reshape(-tf.convert_to_tensor(layer.mean) * scale(), [-1]),
    }


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
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"model {model.name!r} has {len(inputs)} inputs and {len(outputs)} outputs; "
            "vizdeconv needs one image input and one output"
        )
    walker = _Walker()
    walker.ops.append(Op("input", "input", (), {}, "input"))
    output = walker.model(model, ["input"], prefix="")  # names an unsupported layer first
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
    return Graph(walker.ops, output, shape, aliases)


class _Walker:
    """Expands a model's layer calls into ops, recursing into nested models."""

    def __init__(self):
        self.ops: list[Op] = []
        self.model_outputs: dict[str, str] = {}  # nested model name -> its output tensor
        self.calls: dict[tuple[int, int], str] = {}  # (layer, node) -> the name its output got

    def model(self, model, input_names: list[str], prefix: str) -> str:
        """Adds the ops of `model` reading `input_names`; returns the name of its output tensor."""
        known = {id(t): name for t, name in zip(model.inputs, input_names)}
        return self._tensor(model.outputs[0], known, prefix)

    def _tensor(self, tensor, known: dict, prefix: str) -> str:
        if id(tensor) in known:
            return known[id(tensor)]
        layer, node_index, tensor_index = tensor._keras_history
        node = layer._inbound_nodes[node_index]
        inputs = [self._tensor(t, known, prefix) for t in node.input_tensors]
        # A layer is named by its own name. Only a layer called twice in this graph (a shared layer) gets
        # `@node` on its later calls: a reloaded Sequential has extra inbound nodes from its rebuilding,
        # which must not rename its layers.
        taken = {name for (layer_id, _), name in self.calls.items() if layer_id == id(layer)}
        suffix = f"@{node_index}" if taken and (id(layer), node_index) not in self.calls else ""
        self.calls.setdefault((id(layer), node_index), f"{prefix}{layer.name}{suffix}")
        if isinstance(layer, keras.Model):
            if len(layer.outputs) != 1 or tensor_index:
                raise ValueError(f"nested model {layer.name!r} has several outputs; not supported")
            name = self.model(layer, inputs, f"{prefix}{layer.name}{suffix}/")
            self.model_outputs[layer.name] = name
        else:
            name = f"{prefix}{layer.name}{suffix}"
            if name not in {op.name for op in self.ops}:
                self.ops.extend(layer_ops(layer, name, tuple(inputs)))
        known[id(tensor)] = name
        return name
