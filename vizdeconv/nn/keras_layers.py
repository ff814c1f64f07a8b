"""Which Keras layers each op kind claims, and the params it reads from them: the `match` hook of every entry
of `nn.registry.KINDS` (`match(layer) -> params`, None where the kind does not claim the layer). The kinds'
hooks claim disjoint sets of layers, so the order in which the adapter asks them does not matter.

Weights are read lazily (params hold the variables, or functions of them), so a Graph follows a model that
is still training.
"""

import keras
import tensorflow as tf

L = keras.layers
_DROPOUTS = (L.Dropout, L.SpatialDropout2D, L.GaussianNoise, L.GaussianDropout)


def activation_kind(function) -> tuple[str, dict]:
    """(kind, params) of an activation function: linear -> identity, relu / relu6 -> relu, softmax ->
    softmax, any other -> activation (it passes its own gradient unless rectified)."""
    label = getattr(function, "__name__", str(function))
    if label == "linear":
        return "identity", {}
    if label in ("relu", "relu6"):
        return "relu", {"max_value": 6.0} if label == "relu6" else {}
    if label == "softmax":
        return "softmax", {}
    return "activation", {"fn": function, "label": label}


def _activation_layer(kind: str, layer):
    """The params of an `Activation` layer whose function is of `kind`, else None."""
    if isinstance(layer, L.Activation):
        found, params = activation_kind(layer.activation)
        return params if found == kind else None
    return None


def _own_call(layer, base) -> bool:
    """Whether a subclass keeps the base class's computation (a Conv2D subclass that overrides `call`, say
    to standardize its kernel, is run as it is instead)."""
    return type(layer).call is base.call


def _padding(layer) -> str:
    padding = getattr(layer, "padding", "valid")
    if padding not in ("same", "valid"):
        raise ValueError(
            f"layer {layer.name!r} ({type(layer).__name__}) has padding {padding!r}; "
            "only 'same' and 'valid' are supported"
        )
    return padding.upper()


def _conv_params(layer, kernel) -> dict:
    """The params of a convolution op from a Keras convolution layer (its geometry and bias)."""
    return {
        "kernel": kernel,
        "bias": layer.bias if layer.use_bias else None,
        "stride": tuple(layer.strides),
        "padding": _padding(layer),
        "dilation": tuple(layer.dilation_rate),
    }


def match_input(layer):
    return {} if isinstance(layer, L.InputLayer) else None


def match_conv(layer):
    if isinstance(layer, L.Conv2D) and _own_call(layer, L.Conv2D) and layer.groups == 1:
        return _conv_params(layer, layer.kernel)
    return None


def match_depthwise_conv(layer):
    """DepthwiseConv2D, a grouped Conv2D with one input channel per group (ConvNeXt; Keras runs grouped
    convolutions on CPU through XLA, several times slower than the native depthwise kernels), and the
    depthwise half of SeparableConv2D, whose 1x1 convolution with the bias comes in `params["pointwise"]`
    (the adapter makes it a `conv` op after this one)."""
    grouped = isinstance(layer, L.Conv2D) and _own_call(layer, L.Conv2D) and layer.groups != 1
    if (grouped and layer.kernel.shape[2] == 1) or (
        isinstance(layer, L.DepthwiseConv2D) and _own_call(layer, L.DepthwiseConv2D)
    ):
        return _conv_params(layer, layer.kernel)
    if isinstance(layer, L.SeparableConv2D) and _own_call(layer, L.SeparableConv2D):
        pointwise = dict(_conv_params(layer, layer.pointwise_kernel), stride=1, padding="VALID", dilation=1)
        return dict(_conv_params(layer, layer.depthwise_kernel), bias=None, pointwise=pointwise)
    return None


def match_conv_transpose(layer):
    if isinstance(layer, L.Conv2DTranspose) and _own_call(layer, L.Conv2DTranspose):
        if layer.output_padding is None and tuple(layer.dilation_rate) == (1, 1):
            return _conv_params(layer, layer.kernel)
    return None


def match_dense(layer):
    if isinstance(layer, L.Dense) and _own_call(layer, L.Dense) and len(layer.input.shape) == 2:
        return {"kernel": layer.kernel, "bias": layer.bias if layer.use_bias else None}
    return None


def match_relu(layer):
    if isinstance(layer, L.ReLU) and float(layer.negative_slope) == 0:
        params = {"threshold": float(layer.threshold)} if float(layer.threshold) else {}
        if layer.max_value is not None:
            params["max_value"] = float(layer.max_value)
        return params
    return _activation_layer("relu", layer)


def match_activation(layer):
    if isinstance(layer, (L.ReLU, L.LeakyReLU, L.PReLU, L.ELU)) and match_relu(layer) is None:
        return {"fn": layer.__call__, "label": type(layer).__name__}
    return _activation_layer("activation", layer)


def match_identity(layer):
    return {} if isinstance(layer, _DROPOUTS) else _activation_layer("identity", layer)


def match_softmax(layer):
    return {} if isinstance(layer, L.Softmax) else _activation_layer("softmax", layer)


def _pool(layer_class):
    def match(layer):
        if isinstance(layer, layer_class):
            return {"pool": tuple(layer.pool_size), "stride": tuple(layer.strides), "padding": _padding(layer)}
        return None

    return match


def _global_pool(layer_class):
    def match(layer):
        return {"keepdims": bool(layer.keepdims)} if isinstance(layer, layer_class) else None

    return match


match_max_pool = _pool(L.MaxPooling2D)
match_avg_pool = _pool(L.AveragePooling2D)
match_global_avg_pool = _global_pool(L.GlobalAveragePooling2D)
match_global_max_pool = _global_pool(L.GlobalMaxPooling2D)


def match_affine(layer):
    """Inference-mode BatchNormalization, Rescaling and Normalization as x * scale + offset."""
    if isinstance(layer, L.BatchNormalization) and layer.axis in (-1, 3, [-1], [3]):
        return _batch_norm(layer)
    if isinstance(layer, L.Rescaling):
        return {"scale": lambda: layer.scale, "offset": lambda: layer.offset}
    if isinstance(layer, L.Normalization) and not layer.invert:
        return _normalization(layer)
    return None


def _batch_norm(layer) -> dict:
    def scale():
        inverse = tf.math.rsqrt(tf.convert_to_tensor(layer.moving_variance) + layer.epsilon)
        return inverse * layer.gamma if layer.scale else inverse

    def offset():
        shift = -tf.convert_to_tensor(layer.moving_mean) * scale()
        return shift + layer.beta if layer.center else shift

    return {"scale": scale, "offset": offset}


def _normalization(layer) -> dict:
    def scale():
        return 1.0 / tf.maximum(tf.sqrt(tf.convert_to_tensor(layer.variance)), keras.backend.epsilon())

    def flat_scale():
        return tf.reshape(scale(), [-1])

    def offset():
        return tf.reshape(-tf.convert_to_tensor(layer.mean) * scale(), [-1])

    return {"scale": flat_scale, "offset": offset}


def match_flatten(layer):
    return {} if isinstance(layer, L.Flatten) else None


def match_zero_pad(layer):
    if isinstance(layer, L.ZeroPadding2D):
        (top, bottom), (left, right) = layer.padding
        return {"padding": (top, bottom, left, right)}
    return None


def match_crop(layer):
    if isinstance(layer, L.Cropping2D):
        (top, bottom), (left, right) = layer.cropping
        return {"cropping": (top, bottom, left, right)}
    return None


def match_upsample(layer):
    if isinstance(layer, L.UpSampling2D) and layer.interpolation == "nearest":
        return {"size": tuple(int(s) for s in layer.size)}
    return None


def match_add(layer):
    return {} if isinstance(layer, L.Add) else None


def match_multiply(layer):
    return {} if isinstance(layer, L.Multiply) else None


def match_concat(layer):
    return {"axis": int(layer.axis)} if isinstance(layer, L.Concatenate) else None
