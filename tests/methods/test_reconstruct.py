"""The projection engine on the reference convnet: against gradients of networks whose ReLU backward
rule is replaced, the TF1 tutorial's formula, and the first engine (tests/support/old_engine.py)."""

import numpy as np
import pytest
import tensorflow as tf

from configs import default
from tests.support import old_engine
from tests.support.relu_rules import deconvnet_relu, guided_relu
from vizdeconv.config import speedrun_layers
from vizdeconv.methods import deconvnet, reconstruct
from vizdeconv.methods.deconvnet import Deconvnet
from vizdeconv.nn.convnet import ConvNet, LayerSpec, build_model, layer_specs


def project(model, tensors, layer, signal, mode="deconvnet"):
    """The engine on the model's Graph, for the images `tensors` were computed from."""
    graph = model.graph()
    return reconstruct.project_signals(graph, graph.forward(tensors["input"]), {layer: signal}, mode)[layer]


RANDOM_NETS = {
    "reference": [LayerSpec("conv1", 5, 6, pool=2), LayerSpec("conv2", 5, 5, pool=2), LayerSpec("conv3", 3, 4)],
    "stride2_valid": [
        LayerSpec("conv1", 3, 5, stride=2, padding="VALID"),
        LayerSpec("conv2", 3, 4, pool=3, pool_stride=2),
        LayerSpec("conv3", 2, 3),
    ],
    "dilated": [
        LayerSpec("conv1", 3, 5, pool=2),
        LayerSpec("conv2", 3, 4, dilation=2),
        LayerSpec("conv3", 3, 3, dilation=3, padding="VALID"),
    ],
    "odd_pool": [
        LayerSpec("conv1", 4, 4, stride=2, dilation=2, pool=3, pool_padding="VALID"),
        LayerSpec("conv2", 1, 3),
    ],
}

# The first engine predates batch normalization: these are checked against gradients only.
NORMALIZED_NETS = {
    "batch_norm": [
        LayerSpec("conv1", 3, 5, pool=2, batch_norm=True),
        LayerSpec("conv2", 3, 4, batch_norm=True),
        LayerSpec("conv3", 3, 3),
    ],
    # configs/speedrun.py's network with ReLU, narrower: whitening conv, fixed-scale BN, identity starts, VALID pools
    "speedrun": list(layer_specs(speedrun_layers(widths=(5, 6, 4), activation="relu", pool_first=False))),
    # with GELU: the rule replaces nothing there, the signal passes GELU's own gradient
    "speedrun_gelu": list(layer_specs(speedrun_layers(widths=(5, 6, 4), pool_first=False))),
    # the recipe's own, airbench's order, conv -> pool -> norm -> GELU: the switches are the conv's own map's
    "speedrun_gelu_pool_first": list(layer_specs(speedrun_layers(widths=(5, 6, 4)))),
}
SIZES = {
    "speedrun": 32,
    "speedrun_gelu": 32,
    "speedrun_gelu_pool_first": 32,
}  # its pools take 32 -> 31 -> 15 -> 7 -> 3 -> 1


@pytest.mark.parametrize("mode, relu", [("deconvnet", deconvnet_relu), ("guided", guided_relu)])
@pytest.mark.parametrize("net", sorted(RANDOM_NETS) + sorted(NORMALIZED_NETS))
def test_projection_equals_gradient_with_replaced_relu_backward(net, mode, relu):
    # Stateless draws: the same numbers whatever ran before (op-seeded draws depend on test order).
    size = SIZES.get(net, 13)
    model = ConvNet({**RANDOM_NETS, **NORMALIZED_NETS}[net], image_size=size, seed=7)
    model.whiten(tf.random.stateless_normal([4, size, size, 3], [9, 0]))  # the speedrun net's first layer
    for index, kernel in enumerate(model.kernels[1:]):  # identity starts would pass each channel alone, and
        # a negative BN scale then leaves nothing for the next rule to pass: disturb them like training does
        if model.specs[index + 1].init == "identity":
            kernel.assign_add(tf.random.stateless_normal(kernel.shape, [12, index], stddev=0.3))
    for index, bias in enumerate(model.biases):  # random biases so some units are off: masks matter
        bias.assign(tf.random.stateless_normal(bias.shape, [2, index], stddev=0.3))
    for index, norm in enumerate(model.norms.values()):  # inference BN: a per-channel scale and shift
        norm.gamma.assign(tf.random.stateless_normal(norm.gamma.shape, [3, index]))
        norm.beta.assign(tf.random.stateless_normal(norm.beta.shape, [4, index], stddev=0.3))
        norm.moving_mean.assign(tf.random.stateless_normal(norm.gamma.shape, [6, index], stddev=0.3))
        norm.moving_variance.assign(tf.random.stateless_uniform(norm.gamma.shape, [8, index], 0.2, 3.0))
    images = tf.random.stateless_normal([3, size, size, 3], [5, 0])
    tensors = model.graph().forward(images)
    for index, layer in enumerate(model.layer_names + [s.pool_name for s in model.specs if s.pool]):
        signal = tf.random.stateless_normal(tensors[layer].shape, [11, index])  # signed: the rule matters
        projection = project(model, tensors, layer, signal, mode)
        with tf.GradientTape() as tape:
            tape.watch(images)
            # Plain max pooling: its gradient kernel (MaxPoolGrad) is independent of our unpooling.
            modified = model.graph().forward(images, record_switches=False, relu=relu)
            objective = tf.reduce_sum(signal * modified[layer])
        expected = tape.gradient(objective, images)
        assert projection.shape == images.shape
        np.testing.assert_allclose(projection, expected, rtol=1e-4, atol=1e-5, err_msg=f"{net}/{layer}")
        assert np.abs(expected.numpy()).max() > 0


def test_bias_subtract_mode_matches_the_tf1_tutorial_formula():
    model = build_model(default.get_config())
    images = tf.random.stateless_normal([2, 24, 24, 3], [1, 0])
    t = model.graph().forward(images)
    k1, k2, b1, b2 = model.kernels[0], model.kernels[1], model.biases[0], model.biases[1]
    from vizdeconv.nn import ops

    unpooled1 = ops.unpool(t["pool1"], t["pool1:switches"], t["conv1"].shape)
    expected = tf.nn.conv2d_transpose(unpooled1 - b1, k1, images.shape, 1)
    got = project(model, t, "pool1", t["pool1"], "bias_subtract")
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    unpooled2 = ops.unpool(t["pool2"], t["pool2:switches"], t["conv2"].shape)
    middle = ops.unpool(
        tf.nn.conv2d_transpose(unpooled2 - b2, k2, t["pool1"].shape, 1), t["pool1:switches"], t["conv1"].shape
    )
    expected2 = tf.nn.conv2d_transpose(middle - b1, k1, images.shape, 1)
    np.testing.assert_allclose(project(model, t, "pool2", t["pool2"], "bias_subtract"), expected2, rtol=1e-4, atol=1e-3)


def test_projector_outputs_are_finite_input_shaped_and_differ_between_feature_maps():
    model = build_model(default.get_config())
    images = tf.random.stateless_normal([2, 24, 24, 3], [3, 0])
    projector = Deconvnet(model)
    whole = projector.layers(images, ("conv1", "conv2", "conv3"))
    for name, value in whole.items():
        assert value.shape == (2, 24, 24, 3) and np.isfinite(value.numpy()).all(), name
    maps, channels = projector.top_channels(images[:1], "conv2", 4)
    assert maps.shape == (4, 24, 24, 3) and len(set(channels.numpy().tolist())) == 4
    flat = maps.numpy().reshape(4, -1)
    assert min(np.abs(flat[i] - flat[j]).max() for i in range(4) for j in range(i)) > 1e-6
    single = projector.channels(images, "conv1", tf.constant([3, 3]), strongest_unit=True).numpy()
    assert np.count_nonzero(np.abs(single[0]).sum(-1)) <= 25  # one unit's 5x5 receptive field


def test_strongest_unit_signal_keeps_one_value_of_the_chosen_map():
    activations = tf.constant(np.random.default_rng(0).random((2, 3, 3, 4)), tf.float32)
    signal = deconvnet.channel_signal(activations, [1, 2], strongest_unit=True).numpy()
    for i, channel in enumerate([1, 2]):
        assert np.count_nonzero(signal[i]) == 1
        assert signal[i].max() == activations.numpy()[i, :, :, channel].max()


def test_unknown_layer_and_mode_are_clear_errors():
    model = build_model(default.get_config())
    tensors = model.graph().forward(tf.zeros([1, 24, 24, 3]))
    with pytest.raises(ValueError, match="unknown layer 'conv9'"):
        project(model, tensors, "conv9", tensors["conv1"])
    with pytest.raises(ValueError, match="mode must be one of"):
        Deconvnet(model, "zeiler")


def test_bfloat16_projections_agree_with_float32():
    model = build_model(default.get_config())
    images = tf.random.stateless_normal([4, 24, 24, 3], [4, 0])
    exact = Deconvnet(model).layers(images, ("conv1", "conv2", "conv3"))
    fast = Deconvnet(model, compute_dtype=tf.bfloat16).layers(images, ("conv1", "conv2", "conv3"))
    for name in exact:
        a, b = exact[name].numpy().ravel(), fast[name].numpy().ravel()
        assert fast[name].dtype == tf.float32 and np.corrcoef(a, b)[0, 1] > 0.98, name


@pytest.mark.parametrize("mode", reconstruct.MODES)
@pytest.mark.parametrize("net", sorted(RANDOM_NETS))
def test_engine_equals_the_first_engine_from_every_layer(net, mode):
    model = ConvNet(RANDOM_NETS[net], image_size=13, seed=3)
    for bias in model.biases:
        bias.assign(tf.random.stateless_normal(bias.shape, [4, 0], stddev=0.3))
    images = tf.random.stateless_normal([2, 13, 13, 3], [6, 0])
    tensors = model.graph().forward(images)
    layers = model.layer_names + [s.pool_name for s in model.specs if s.pool]
    old = old_engine.project_many(model, tensors, {name: tensors[name] for name in layers}, mode)
    new = Deconvnet(model, mode).layers(images, tuple(layers))
    for name in layers:
        np.testing.assert_allclose(new[name], old[name], rtol=1e-4, atol=1e-5, err_msg=f"{net}/{name}")


def test_stacked_layers_equal_one_layer_at_a_time():
    model = ConvNet(RANDOM_NETS["stride2_valid"], image_size=13, seed=1)
    images = tf.random.stateless_normal([3, 13, 13, 3], [2, 0])
    deconvnet = Deconvnet(model, "guided")
    stacked = deconvnet.layers(images, ("conv3", "conv1", "pool2"))
    for name, value in stacked.items():
        np.testing.assert_allclose(value, deconvnet.project(images, name), rtol=1e-5, atol=1e-6)
