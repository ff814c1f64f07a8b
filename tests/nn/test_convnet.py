"""Model shapes, parameter count, named activations and the objective against NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from configs import atrous, default
from vizdeconv.nn import convnet
from vizdeconv.nn.convnet import ConvNet, build_model, count_parameters, layer_specs
from vizdeconv.training import losses


def test_reference_net_shapes_and_parameter_count():
    model = build_model(default.get_config())
    assert count_parameters(model) == 123_338
    tensors = model.graph().forward(tf.random.normal([2, 24, 24, 3]))
    expected = {
        "conv1": (2, 24, 24, 64),
        "pool1": (2, 12, 12, 64),
        "pool1:switches": (2, 12, 12, 64),
        "conv2": (2, 12, 12, 64),
        "pool2": (2, 6, 6, 64),
        "conv3": (2, 6, 6, 10),
        "logits": (2, 10),
    }
    for name, shape in expected.items():
        assert tuple(tensors[name].shape) == shape, name
    assert tensors["pool2:switches"].dtype == tf.int64
    np.testing.assert_allclose(tensors["logits"], tf.reduce_mean(tensors["conv3"], [1, 2]), rtol=1e-6)


def test_initialization_follows_the_reference():
    model = build_model(default.get_config())
    kernel = model.kernels[1].numpy()
    assert abs(kernel.std() - 0.088) < 0.01 and np.abs(kernel).max() <= 0.2  # truncated at 2 sd
    assert all(np.all(b.numpy() == np.float32(0.1)) for b in model.biases)


def test_atrous_variant_keeps_resolution_and_bfloat16_logits_are_float32():
    model = build_model(atrous.get_config())
    tensors = model.graph().forward(tf.random.normal([1, 24, 24, 3]), tf.bfloat16)
    assert tensors["conv3"].shape == (1, 12, 12, 10) and tensors["conv2"].dtype == tf.bfloat16
    assert tensors["logits"].dtype == tf.float32
    assert all(v.dtype == tf.float32 for v in model.trainable_variables)


def test_layer_specs_reject_unknown_fields():
    with pytest.raises(ValueError, match="unknown field"):
        layer_specs([dict(name="conv1", kernel=3, filters=4, strides=2)])


def test_objective_equals_numpy_reference_formula():
    model = ConvNet(layer_specs(default.reference_layers()), seed=3)
    images = tf.random.normal([5, 24, 24, 3], seed=1)
    labels = np.array([0, 3, 9, 3, 1])
    logits = model(images).numpy().astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    cross_entropy = -log_softmax[np.arange(5), labels].sum()
    penalty = sum((k.numpy().astype(np.float64) ** 2).sum() / 2 for k in model.kernels)
    terms = losses.objective(model(images), labels, model.kernels)
    np.testing.assert_allclose(terms["loss"], cross_entropy + penalty, rtol=1e-5)
    np.testing.assert_allclose(terms["cross_entropy"], cross_entropy, rtol=1e-5)
    mean = losses.objective(model(images), labels, model.kernels, "mean", 0.5)
    np.testing.assert_allclose(mean["loss"], cross_entropy / 5 + 0.5 * penalty, rtol=1e-5)
    split = losses.objective(model(images), labels, model.kernels, num_replicas=2)
    np.testing.assert_allclose(split["weight_penalty"], penalty / 2, rtol=1e-5)


def test_an_unrectified_class_layer_is_linear_in_the_net_its_graph_and_its_keras_twin():
    from configs import deep
    from vizdeconv.methods.deconvnet import Deconvnet
    from vizdeconv.nn.convnet import to_keras

    model = build_model(deep.get_config())
    images = tf.random.stateless_normal([2, 24, 24, 3], seed=[4, 5])
    tensors = model.graph().forward(images)
    pooled = tensors["pool3_2"].numpy()
    kernel, bias = model.kernels[-1].numpy()[0, 0], model.biases[-1].numpy()  # the 1x1 class layer
    linear = pooled @ kernel + bias
    assert (linear < 0).any()  # so a ReLU would change it
    np.testing.assert_allclose(tensors["conv4"], linear, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tensors["logits"], linear.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)
    graph = Deconvnet(model).graph
    np.testing.assert_allclose(graph.forward(images)["logits"], tensors["logits"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(to_keras(model)(images), tensors["logits"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("momentum", [0.9, 0.6])  # the default, and the speedrun's
def test_batch_norm_trains_and_infers_as_keras_batch_normalization(momentum):
    """Training mode normalizes with the batch's statistics and moves the moving ones as Keras'
    BatchNormalization does; inference (what the projections see) equals the Keras twin."""
    from vizdeconv.nn.convnet import LayerSpec, to_keras

    specs = [LayerSpec("conv1", 3, 6, pool=2, batch_norm=True, norm_momentum=momentum),
             LayerSpec("conv2", 3, 10, batch_norm=True, norm_momentum=momentum)]  # fmt: skip
    model = ConvNet(specs, image_size=12, seed=2)
    twin = to_keras(model)
    images = tf.random.stateless_normal([4, 12, 12, 3], seed=[1, 2]) * 2 + 0.5
    for _ in range(2):  # twice: the second call starts from moved statistics
        trained = model(images, training=True)
        np.testing.assert_allclose(trained, twin(images, training=True), rtol=1e-4, atol=1e-4)
    # By hand: the batch's mean and biased variance of conv1's output, over N, H, W.
    raw = tf.nn.conv2d(images, model.kernels[0], 1, "SAME") + model.biases[0]
    mean, variance = np.mean(raw, (0, 1, 2)), np.var(raw, (0, 1, 2))
    norm = model.norms["conv1"]
    np.testing.assert_allclose(norm.moving_mean, mean * (1 - momentum**2), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.moving_variance, momentum**2 + variance * (1 - momentum**2), rtol=1e-4)
    for keras_weight, ours in zip(
        twin.get_layer("conv1_bn").weights, (norm.gamma, norm.beta, norm.moving_mean, norm.moving_variance)
    ):
        np.testing.assert_allclose(keras_weight, ours, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model(images), twin(images), rtol=1e-4, atol=1e-4)
    assert not np.allclose(model(images), trained, atol=1e-2)  # inference really uses the moving statistics
    assert "conv1/prenorm" not in model.graph().layer_names and "conv1" in model.graph().layer_names


def test_batch_norm_epsilon_is_the_layers_own_in_training_inference_and_the_keras_twin():
    from vizdeconv.nn.convnet import LayerSpec, to_keras

    # small inputs, so that the variance is near epsilon and 1e-3 against 2e-5 shows
    specs = [LayerSpec("conv1", 3, 4, batch_norm=True, norm_epsilon=2e-5), LayerSpec("head", 1, 10, rectify=False)]
    model = ConvNet(specs, image_size=6, seed=3)
    images = tf.random.stateless_normal([4, 6, 6, 3], seed=[5, 1]) * 0.03
    out = model.graph().forward(images, training=True)
    raw = (tf.nn.conv2d(images, model.kernels[0], 1, "SAME") + model.biases[0]).numpy()
    mean, variance = raw.mean((0, 1, 2)), raw.var((0, 1, 2))
    assert variance.max() < 1e-2
    expected = np.maximum((raw - mean) / np.sqrt(variance + 2e-5), 0)
    np.testing.assert_allclose(out["conv1"], expected, rtol=1e-3, atol=1e-4)
    norm = model.norms["conv1"]
    norm.moving_variance.assign(variance)  # inference near epsilon too
    np.testing.assert_allclose(model(images), to_keras(model)(images), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="at least"):
        ConvNet([LayerSpec("conv1", 3, 4, batch_norm=True, norm_epsilon=1e-12)], image_size=6)


def test_pool_first_is_airbenchs_conv_pool_norm_gelu_in_training_and_at_inference():
    import math

    from vizdeconv.nn.convnet import LayerSpec

    spec = dict(name="conv1", kernel=3, filters=5, pool=2, pool_padding="VALID", batch_norm=True, norm_scale=False,
                activation="gelu")  # fmt: skip
    model = ConvNet([LayerSpec(**spec, pool_first=True), LayerSpec("head", 1, 10, rectify=False)], image_size=9)
    images = tf.random.stateless_normal([4, 9, 9, 3], seed=[3, 1])
    erf = np.vectorize(math.erf)
    raw = (tf.nn.conv2d(images, model.kernels[0], 1, "SAME") + model.biases[0]).numpy().astype(np.float64)
    pooled = tf.nn.max_pool2d(raw, 2, 2, "VALID").numpy()
    mean, variance = pooled.mean((0, 1, 2)), pooled.var((0, 1, 2))
    x = (pooled - mean) / np.sqrt(variance + 1e-3)
    training = model.graph().forward(images, training=True)
    np.testing.assert_allclose(training["conv1"], x * 0.5 * (1 + erf(x / math.sqrt(2))), rtol=1e-4, atol=1e-5)
    norm = model.norms["conv1"]
    x = (pooled - norm.moving_mean.numpy()) / np.sqrt(norm.moving_variance.numpy() + 1e-3)
    inference = model.graph().forward(images)
    np.testing.assert_allclose(inference["conv1"], x * 0.5 * (1 + erf(x / math.sqrt(2))), rtol=1e-4, atol=1e-5)
    assert inference["pool1"].shape == inference["conv1"].shape == (4, 4, 4, 5)
    after = ConvNet([LayerSpec(**spec), LayerSpec("head", 1, 10, rectify=False)], image_size=9)
    after.norms["conv1"].moving_mean.assign(norm.moving_mean)
    assert not np.allclose(model(images), after(images), atol=1e-4)  # GELU is not monotone: another network
    with pytest.raises(ValueError, match="already normalizes"):
        ConvNet([LayerSpec(**spec, pool_first=True, norm_after_pool=True)], image_size=9)


def test_statistics_after_the_pool_train_as_airbenchs_pool_then_normalize_order():
    """norm_after_pool: in training, conv -> pool -> batch norm (the pooled map's statistics) -> ReLU, written
    out by hand; at inference the same network as without it (the moving statistics' positive affine map
    commutes with the pool), so projections and the Keras twin are unchanged."""
    from vizdeconv.nn.convnet import LayerSpec

    spec = dict(name="conv1", kernel=3, filters=5, pool=2, pool_padding="VALID", batch_norm=True, norm_scale=False,
                norm_momentum=0.6)  # fmt: skip
    model = ConvNet([LayerSpec(**spec, norm_after_pool=True), LayerSpec("head", 1, 10, rectify=False)], image_size=9)
    images = tf.random.stateless_normal([4, 9, 9, 3], seed=[3, 1])
    out = model.graph().forward(images, training=True)
    raw = tf.nn.conv2d(images, model.kernels[0], 1, "SAME") + model.biases[0]
    pooled = tf.nn.max_pool2d(raw, 2, 2, "VALID").numpy()
    mean, variance = pooled.mean((0, 1, 2)), pooled.var((0, 1, 2))
    expected = np.maximum((pooled - mean) / np.sqrt(variance + 1e-3), 0)
    np.testing.assert_allclose(out["pool1"], expected, rtol=1e-4, atol=1e-5)
    assert 0.3 < np.mean(expected > 0) < 0.7  # the pooled map normalized: about half rectified away
    norm = model.norms["conv1"]
    np.testing.assert_allclose(norm.moving_mean, 0.4 * mean, rtol=1e-4, atol=1e-6)
    plain = ConvNet([LayerSpec(**spec), LayerSpec("head", 1, 10, rectify=False)], image_size=9)
    plain.norms["conv1"].moving_mean.assign(norm.moving_mean)
    plain.norms["conv1"].moving_variance.assign(norm.moving_variance)
    np.testing.assert_allclose(model(images), plain(images), rtol=1e-6)
    with pytest.raises(ValueError, match="needs a pool"):
        ConvNet([LayerSpec(**dict(spec, pool=0), norm_after_pool=True)], image_size=9)


def test_the_fused_gelu_of_training_equals_gelu_and_its_derivative_written_out(caplog):
    # The trainer's GELU computes its value and slope in one XLA kernel and keeps the slope for the backward
    # pass: it must be x * Phi(x) with the derivative Phi(x) + x * phi(x), as math.erf gives them, in float32
    # and bfloat16, in layers of every shape without TensorFlow warning of retracing.
    import math

    from vizdeconv.nn.convnet import gelu_train

    erf = np.vectorize(math.erf)
    with caplog.at_level("WARNING", logger="tensorflow"):
        for shape in [(7,), (2, 5, 5, 3), (3, 4, 4, 8), (2, 3, 3, 16), (1, 2, 2, 4), (4, 6, 6, 2), (2, 9)]:
            x = tf.constant(np.random.default_rng(len(shape) * 7 + shape[-1]).normal(0, 2, shape), tf.float32)
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = gelu_train(x)
                weights = tf.cos(tf.range(tf.size(x), dtype=tf.float32))  # any upstream gradient, not only 1s
                objective = tf.reduce_sum(tf.reshape(y, [-1]) * weights)
            slope = tape.gradient(objective, x).numpy().reshape(-1) / weights.numpy()
            v = x.numpy().astype(np.float64).reshape(-1)
            cdf, density = 0.5 * (1 + erf(v / math.sqrt(2))), np.exp(-v * v / 2) / math.sqrt(2 * math.pi)
            np.testing.assert_allclose(y.numpy().reshape(-1), v * cdf, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(slope, cdf + v * density, rtol=1e-4, atol=1e-5)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
    x = tf.constant(np.linspace(-4, 4, 33), tf.bfloat16)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = gelu_train(x)
    slope = tape.gradient(y, x)
    assert y.dtype == slope.dtype == tf.bfloat16
    v = np.linspace(-4, 4, 33)
    np.testing.assert_allclose(tf.cast(y, tf.float32), v * 0.5 * (1 + erf(v / math.sqrt(2))), rtol=1e-2, atol=1e-2)
    expected = 0.5 * (1 + erf(v / math.sqrt(2))) + v * np.exp(-v * v / 2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(tf.cast(slope, tf.float32), expected, rtol=2e-2, atol=1e-2)


def test_a_gelu_network_trains_through_the_fused_gelu_and_infers_through_tensorflows():
    from vizdeconv.nn.convnet import LayerSpec

    specs = [LayerSpec("conv1", 3, 5, pool=2, batch_norm=True, norm_scale=False, activation="gelu"),
             LayerSpec("head", 1, 10, rectify=False)]  # fmt: skip
    model = ConvNet(specs, image_size=8, seed=6)
    images = tf.random.stateless_normal([4, 8, 8, 3], seed=[2, 3])
    op = model.graph().by_name["conv1"]
    assert op.params["fn"] is convnet.gelu and op.params["train"] is convnet.gelu_train
    calls = []

    def kernel_gradient():
        with tf.GradientTape() as tape:
            trained = model(images, training=True)
            objective = tf.reduce_sum(trained * tf.range(10, dtype=tf.float32))
        return trained.numpy(), tape.gradient(objective, model.kernels[0]).numpy()

    fused = op.params["train"]
    op.params["train"] = lambda x, dtype: calls.append(1) or fused(x, dtype)
    trained, gradient = kernel_gradient()
    assert calls == [1] and np.abs(gradient).max() > 1e-3
    model(images)  # inference: TensorFlow's GELU, the one the projections differentiate
    assert calls == [1]
    del op.params["train"]  # training through TensorFlow's GELU and its autodiff: the same, up to rounding
    plain_trained, plain_gradient = kernel_gradient()
    np.testing.assert_allclose(trained, plain_trained, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gradient, plain_gradient, rtol=1e-4, atol=1e-6)
