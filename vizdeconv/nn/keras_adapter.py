"""Model surgery in one place: a Keras model (Sequential or functional, nested models included) as a Graph.

The adapter walks the model's own graph of layer calls from its outputs back to its input, expands every
nested model into its layers (their tensors are named `outer/inner`, and the bare layer name is kept as
an alias when it is unique), and turns each layer into ops of `graph.KINDS`. Weights are the layers'
variables themselves, so a Graph follows a model that is still training. A layer that no kind of
`nn.registry` claims becomes a `layer` op: it runs as it is and passes the signal back through its own
gradient.
"""

import keras

from vizdeconv.nn.graph import Graph, Op


def _activation_ops(function, name: str, inputs: tuple[str, ...], source: str) -> list[Op]:
    """The op of an activation function applied to `inputs` (none for a linear one)."""
    label = getattr(function, "__name__", str(function))
    if label == "linear":
        return [Op(name, "identity", inputs, {}, source)]
    if label in ("relu", "relu6"):
        return [Op(name, "relu", inputs, {"max_value": 6.0} if label == "relu6" else {}, source)]
    if label == "softmax":
        return [Op(name, "softmax", inputs, {}, source)]
    return [Op(name, "activation", inputs, {"fn": function, "label": label}, source)]


def _with_activation(layer, kind: str, name: str, inputs, params: dict, source: str) -> list[Op]:
    """A layer's linear op, then its activation (named after the layer, the linear part `<name>/linear`)."""
    label = getattr(layer.activation, "__name__", "")
    if label == "linear":
        return [Op(name, kind, inputs, params, source)]
    linear = f"{name}/linear"
    return [Op(linear, kind, inputs, params, source), *_activation_ops(layer.activation, name, (linear,), source)]


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


def _own_call(layer, base) -> bool:
    """Whether a subclass keeps the base class's computation (a Conv2D subclass that overrides `call`, say
    to standardize its kernel, is run as it is instead)."""
    return type(layer).call is base.call


def _conv_params(layer, kernel) -> dict:
    """The params of a convolution op from a Keras convolution layer (its geometry and bias)."""
    return {
        "kernel": kernel,
        "bias": layer.bias if layer.use_bias else None,
        "stride": tuple(layer.strides),
        "padding": _padding(layer),
        "dilation": tuple(layer.dilation_rate),
    }


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
    """The ops of one (non-model) Keras layer whose output tensor is `name` (see `nn.registry` for what
    each kind means; a layer no kind claims is a `layer` op)."""
    source = f"{type(layer).__name__} {layer.name!r}"
    L = keras.layers
    _check_channels_last(layer)
    if not isinstance(layer, L.Layer):  # a Keras operation in a functional model (x + y, ops.mean(...))
        return _generic(layer, name, inputs, source, node)
    if isinstance(layer, L.InputLayer):
        return [Op(name, "input", (), {}, source)]
    if isinstance(layer, (L.Dropout, L.SpatialDropout2D, L.GaussianNoise, L.GaussianDropout)):
        return [Op(name, "identity", inputs, {}, source)]
    if isinstance(layer, L.Conv2D) and _own_call(layer, L.Conv2D) and layer.groups == 1:
        return _with_activation(layer, "conv", name, inputs, _conv_params(layer, layer.kernel), source)
    if isinstance(layer, L.Conv2D) and _own_call(layer, L.Conv2D) and layer.kernel.shape[2] == 1:
        # Grouped with one input channel per group (ConvNeXt): a depthwise convolution (Keras runs grouped
        # convolutions on CPU through XLA, several times slower than the native depthwise kernels).
        return _with_activation(layer, "depthwise_conv", name, inputs, _conv_params(layer, layer.kernel), source)
    if isinstance(layer, L.DepthwiseConv2D) and _own_call(layer, L.DepthwiseConv2D):
        return _with_activation(layer, "depthwise_conv", name, inputs, _conv_params(layer, layer.kernel), source)
    if isinstance(layer, L.SeparableConv2D) and _own_call(layer, L.SeparableConv2D):
        depthwise = f"{name}/depthwise"  # a depthwise convolution, then a 1x1 one with the bias
        pointwise = dict(_conv_params(layer, layer.pointwise_kernel), stride=1, padding="VALID", dilation=1)
        depthwise_op = Op(depthwise, "depthwise_conv", inputs, dict(_conv_params(layer, layer.depthwise_kernel),
                                                                     bias=None), source)  # fmt: skip
        return [depthwise_op, *_with_activation(layer, "conv", name, (depthwise,), pointwise, source)]
    transpose = isinstance(layer, L.Conv2DTranspose) and _own_call(layer, L.Conv2DTranspose)
    if transpose and layer.output_padding is None and tuple(layer.dilation_rate) == (1, 1):
        return _with_activation(layer, "conv_transpose", name, inputs, _conv_params(layer, layer.kernel), source)
    if isinstance(layer, L.Dense) and _own_call(layer, L.Dense) and len(layer.input.shape) == 2:
        params = {"kernel": layer.kernel, "bias": layer.bias if layer.use_bias else None}
        return _with_activation(layer, "dense", name, inputs, params, source)
    if isinstance(layer, L.ReLU) and float(layer.negative_slope) == 0:
        params = {"threshold": float(layer.threshold)} if float(layer.threshold) else {}
        if layer.max_value is not None:
            params["max_value"] = float(layer.max_value)
        return [Op(name, "relu", inputs, params, source)]
    if isinstance(layer, (L.ReLU, L.LeakyReLU, L.PReLU, L.ELU)):
        return [Op(name, "activation", inputs, {"fn": layer.__call__, "label": type(layer).__name__}, source)]
    if isinstance(layer, L.Activation):
        return _activation_ops(layer.activation, name, inputs, source)
    if isinstance(layer, (L.MaxPooling2D, L.AveragePooling2D)):
        kind = "max_pool" if isinstance(layer, L.MaxPooling2D) else "avg_pool"
        params = {"pool": tuple(layer.pool_size), "stride": tuple(layer.strides), "padding": _padding(layer)}
        return [Op(name, kind, inputs, params, source)]
    if isinstance(layer, (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D)):
        kind = "global_avg_pool" if isinstance(layer, L.GlobalAveragePooling2D) else "global_max_pool"
        return [Op(name, kind, inputs, {"keepdims": bool(layer.keepdims)}, source)]
    if isinstance(layer, L.BatchNormalization) and layer.axis in (-1, 3, [-1], [3]):
        return [Op(name, "affine", inputs, _batch_norm(layer), source)]
    if isinstance(layer, L.Rescaling):
        return [Op(name, "affine", inputs, _rescaling(layer), source)]
    if isinstance(layer, L.Normalization) and not layer.invert:
        return [Op(name, "affine", inputs, _normalization(layer), source)]
    if isinstance(layer, L.Flatten):
        return [Op(name, "flatten", inputs, {}, source)]
    if isinstance(layer, L.ZeroPadding2D):
        (top, bottom), (left, right) = layer.padding
        return [Op(name, "zero_pad", inputs, {"padding": (top, bottom, left, right)}, source)]
    if isinstance(layer, L.Cropping2D):
        (top, bottom), (left, right) = layer.cropping
        return [Op(name, "crop", inputs, {"cropping": (top, bottom, left, right)}, source)]
    if isinstance(layer, L.UpSampling2D) and layer.interpolation == "nearest":
        return [Op(name, "upsample", inputs, {"size": tuple(int(s) for s in layer.size)}, source)]
    if isinstance(layer, L.Add):
        return [Op(name, "add", inputs, {}, source)]
    if isinstance(layer, L.Multiply):
        return [Op(name, "multiply", inputs, {}, source)]
    if isinstance(layer, L.Concatenate):
        return [Op(name, "concat", inputs, {"axis": int(layer.axis)}, source)]
    if isinstance(layer, L.Softmax):
        return [Op(name, "softmax", inputs, {}, source)]
    return _generic(layer, name, inputs, source, node)


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


def _rescaling(layer) -> dict:
    def scale():
        return layer.scale

    def offset():
        return layer.offset

    return {"scale": scale, "offset": offset}


def _normalization(layer) -> dict:
    import tensorflow as tf

    def scale():
        return 1.0 / tf.maximum(tf.sqrt(tf.convert_to_tensor(layer.variance)), keras.backend.epsilon())

    def flat_scale():
        return tf.reshape(scale(), [-1])

    def offset():
        return tf.reshape(-tf.convert_to_tensor(layer.mean) * scale(), [-1])

    return {"scale": flat_scale, "offset": offset}


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
