"""The registry's `match` hooks: each Keras layer is claimed by exactly one kind (or none: then it runs as a
`layer` op), with the params the kind reads; the adapter's ops follow from the hooks alone."""

import keras
import numpy as np
import pytest

from vizdeconv.nn import keras_adapter, registry

L = keras.layers


def built(layer, shape=(8, 8, 4)):
    inputs = keras.Input(shape)
    layer(inputs)
    return layer


CASES = [
    (L.Conv2D(3, 3, name="c"), "conv"),
    (L.Conv2D(4, 3, groups=4, name="g"), "depthwise_conv"),
    (L.Conv2D(4, 3, groups=2, name="g2"), None),  # two channels a group: no kind, run as it is
    (L.DepthwiseConv2D(3, name="d"), "depthwise_conv"),
    (L.SeparableConv2D(5, 3, name="s"), "depthwise_conv"),
    (L.Conv2DTranspose(3, 3, strides=2, name="t"), "conv_transpose"),
    (L.ReLU(name="r"), "relu"),
    (L.ReLU(max_value=6.0, name="r6"), "relu"),
    (L.ReLU(negative_slope=0.1, name="lr"), "activation"),
    (L.LeakyReLU(name="leaky"), "activation"),
    (L.Activation("relu6", name="a6"), "relu"),
    (L.Activation("swish", name="sw"), "activation"),
    (L.Activation("linear", name="lin"), "identity"),
    (L.Activation("softmax", name="sm"), "softmax"),
    (L.Softmax(name="softmax"), "softmax"),
    (L.Dropout(0.5, name="drop"), "identity"),
    (L.MaxPooling2D(2, name="mp"), "max_pool"),
    (L.AveragePooling2D(2, name="ap"), "avg_pool"),
    (L.GlobalAveragePooling2D(name="gap"), "global_avg_pool"),
    (L.GlobalMaxPooling2D(keepdims=True, name="gmp"), "global_max_pool"),
    (L.BatchNormalization(name="bn"), "affine"),
    (L.Rescaling(1 / 255.0, name="rs"), "affine"),
    (L.Flatten(name="flat"), "flatten"),
    (L.ZeroPadding2D(((1, 2), (3, 4)), name="zp"), "zero_pad"),
    (L.Cropping2D(((1, 0), (0, 2)), name="cr"), "crop"),
    (L.UpSampling2D(2, name="up"), "upsample"),
    (L.UpSampling2D(2, interpolation="bilinear", name="upb"), None),
    (L.LayerNormalization(name="ln"), None),
]


@pytest.mark.parametrize("layer, expected", CASES, ids=[layer.name for layer, _ in CASES])
def test_exactly_one_kind_claims_each_layer(layer, expected):
    layer = built(layer)
    claims = [kind.name for kind in registry.KINDS.values() if kind.match and kind.match(layer) is not None]
    assert claims == ([expected] if expected else [])


def test_the_hooks_read_the_geometry_the_kind_needs():
    conv = built(L.Conv2D(3, 3, strides=2, padding="same", dilation_rate=1, use_bias=False, name="c"))
    params = registry.KINDS["conv"].match(conv)
    assert params["stride"] == (2, 2) and params["padding"] == "SAME" and params["bias"] is None
    assert params["kernel"] is conv.kernel  # the variable itself: a Graph follows a model still training
    pad = registry.KINDS["zero_pad"].match(built(L.ZeroPadding2D(((1, 2), (3, 4)))))
    assert pad == {"padding": (1, 2, 3, 4)}
    bn = built(L.BatchNormalization(epsilon=0.5))
    bn.moving_variance.assign(np.full(4, 1.5, np.float32))
    bn.moving_mean.assign(np.full(4, 2.0, np.float32))
    affine = registry.KINDS["affine"].match(bn)
    scale = 1 / np.sqrt(1.5 + 0.5)  # gamma 1, beta 0: x * scale - mean * scale
    np.testing.assert_allclose(np.asarray(affine["scale"]()), np.full(4, scale), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(affine["offset"]()), np.full(4, -2.0 * scale), rtol=1e-6)


def test_a_layer_with_a_fused_activation_becomes_its_kind_then_the_activation():
    dense = L.Dense(3, activation="relu", name="fc")
    dense(keras.Input((5,)))
    ops = keras_adapter.layer_ops(dense, "fc", ("x",))
    assert [(op.name, op.kind) for op in ops] == [("fc/linear", "dense"), ("fc", "relu")]
    separable = built(L.SeparableConv2D(5, 3, activation="swish", name="s"))
    ops = keras_adapter.layer_ops(separable, "s", ("x",))
    assert [(op.name, op.kind, op.inputs) for op in ops] == [
        ("s/depthwise", "depthwise_conv", ("x",)),
        ("s/linear", "conv", ("s/depthwise",)),
        ("s", "activation", ("s/linear",)),
    ]
    assert ops[0].params["bias"] is None and ops[1].params["bias"] is separable.bias
    (layer_op,) = keras_adapter.layer_ops(built(L.LayerNormalization(name="ln")), "ln", ("x",))
    assert layer_op.kind == "layer"
