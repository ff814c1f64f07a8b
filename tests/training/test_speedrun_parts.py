"""The speedrun recipe's training parts against written-out references: the triangular schedule, the
growing Lookahead pull, scaled gradients of batch normalization's offsets and the head, test-time
augmentation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from vizdeconv.config import default_config, speedrun_layers
from vizdeconv.nn.convnet import ConvNet, LayerSpec, layer_specs
from vizdeconv.training import optim, steps
from vizdeconv.training.optimizers import Lookahead


def test_the_triangle_schedule_is_airbenchs_piecewise_linear_rate():
    schedule = optim.Triangle(2.0, peak=23, total=100, start=0.2, end=0.07)
    at = np.arange(0, 121)
    expected = 2.0 * np.interp(at, [0, 23, 100], [0.2, 1.0, 0.07])
    got = np.array([float(schedule(step)) for step in at])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    config = default_config().optimizer
    config.schedule, config.warmup_steps, config.decay_factor, config.learning_rate = "triangle", 23, 0.07, 2.0
    assert float(optim.learning_rate(config, 100)(50)) == pytest.approx(expected[50], rel=1e-5)


def test_lookahead_pull_grows_as_airbench_weight_averaging():
    target = np.array([1.0, -2.0, 0.5])
    weights = tf.Variable(np.zeros(3, np.float32))
    alpha, power, total = 0.3, 3.0, 12
    optimizer = Lookahead(keras.optimizers.SGD(0.2), sync_every=2, alpha=alpha, power=power, total_steps=total)
    fast, slow = np.zeros(3), np.zeros(3)
    for step in range(1, total + 1):
        optimizer.apply_gradients([(tf.constant(weights.numpy() - target, tf.float32), weights)])
        fast = fast - 0.2 * (fast - target)
        if step % 2 == 0:
            pull = 1 - (1 - alpha) * (step / total) ** power
            slow = slow + pull * (fast - slow)
            fast = slow.copy()
        np.testing.assert_allclose(weights.numpy(), fast, rtol=1e-5, atol=1e-6)
    assert float(optimizer.pull(total)) == pytest.approx(alpha)


def test_lookahead_averages_the_statistics_too_and_ends_on_the_average():
    # airbench's LookaheadState averages every float of the state (batch normalization's moving statistics
    # too) and its last update, at decay 1, sets the network to the average, dropping the steps since a sync.
    target = np.array([1.0, -2.0])
    weights, statistic = tf.Variable(np.zeros(2, np.float32)), tf.Variable(np.zeros(3, np.float32))
    alpha, total = 0.3, 11
    optimizer = Lookahead(keras.optimizers.SGD(0.2), sync_every=2, alpha=alpha, power=3.0, total_steps=total,
                          statistics=[statistic])  # fmt: skip
    optimizer.build([weights])  # before training, as the trainer does: the slow copies start at the start
    fast, slow = np.zeros(2), np.zeros(2)
    fast_statistic, slow_statistic = np.zeros(3), np.zeros(3)
    for step in range(1, total + 1):
        fast_statistic = np.array([step, -2.0 * step, 0.5]) + fast_statistic / 2  # what a forward pass moves
        statistic.assign(fast_statistic)
        optimizer.apply_gradients([(tf.constant(weights.numpy() - target, tf.float32), weights)])
        fast = fast - 0.2 * (fast - target)
        if step % 2 == 0:
            pull = 1 - (1 - alpha) * (step / total) ** 3
            slow, slow_statistic = (
                slow + pull * (fast - slow),
                slow_statistic + pull * (fast_statistic - slow_statistic),
            )
        if step % 2 == 0 or step == total:
            fast, fast_statistic = slow.copy(), slow_statistic.copy()
        np.testing.assert_allclose(weights.numpy(), fast, rtol=1e-5, atol=1e-6, err_msg=f"step {step}")
        np.testing.assert_allclose(statistic.numpy(), fast_statistic, rtol=1e-5, atol=1e-6, err_msg=f"step {step}")
    assert not np.allclose(fast, fast - 0.2 * (fast - target))  # the last step really was dropped


def test_a_bias_trained_for_its_first_steps_only_starts_at_its_value_and_then_holds():
    images = tf.random.stateless_normal([8, 8, 8, 3], [2, 0])
    labels = tf.constant(np.arange(8) % 10, tf.int32)
    specs = [LayerSpec("whiten", 2, 4, padding="VALID", bias_init=0.0, bias_steps=2),
             LayerSpec("head", 1, 10, rectify=False)]  # fmt: skip
    model = ConvNet(specs, image_size=8, seed=0)
    np.testing.assert_array_equal(model.biases[0].numpy(), 0.0)
    np.testing.assert_array_equal(model.biases[1].numpy(), np.float32(0.1))
    train = steps.make_train_steps(model, keras.optimizers.SGD(0.1), tf.distribute.get_strategy(),
                                   default_config().loss, 8)  # fmt: skip
    data = iter(tf.data.Dataset.from_tensors((images, labels)).repeat())
    history = []
    for _ in range(4):
        train(data, tf.constant(1))
        history.append((model.biases[0].numpy().copy(), model.kernels[0].numpy().copy()))
    bias_moves = [not np.array_equal(a[0], b[0]) for a, b in zip([(np.zeros(4), None)] + history, history)]
    assert bias_moves == [True, True, False, False]  # trained at steps 0 and 1 only
    assert not np.array_equal(history[2][1], history[3][1])  # the kernel trains on


@pytest.mark.parametrize("decay_offsets", [False, True])
def test_gradient_scales_multiply_the_rate_but_not_the_decay(decay_offsets):
    # One Nesterov step from rest moves v by -lr (1 + momentum) (scale * dCE/dv + decay * v), decay only for
    # the penalized variables (trainable kernels, and offsets when asked): airbench's groups, wd / lr each.
    images = tf.random.stateless_normal([8, 8, 8, 3], [1, 0])
    labels = tf.constant(np.arange(8) % 10, tf.int32)
    specs = [LayerSpec("conv1", 3, 4, pool=2, batch_norm=True, norm_scale=False),
             LayerSpec("head", 1, 10, rectify=False, rate_scale=0.25)]  # fmt: skip

    def fresh():
        model = ConvNet(specs, image_size=8, seed=0)
        model.norms["conv1"].beta.assign([0.5, -1.0, 2.0, 0.25])  # an offset at 0 would not show its decay
        return model

    reference = fresh()
    with tf.GradientTape() as tape:
        logits = reference(images, training=True)
        cross_entropy = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    data = dict(zip([v.name for v in reference.trainable_variables],
                    tape.gradient(cross_entropy, reference.trainable_variables)))  # fmt: skip
    model = fresh()
    before = {v.name: v.numpy() for v in model.trainable_variables}
    optimizer = keras.optimizers.SGD(0.1, momentum=0.5, nesterov=True)
    loss = default_config().loss
    loss.weight_decay, loss.decay_offsets = 0.3, decay_offsets
    train = steps.make_train_steps(model, optimizer, tf.distribute.get_strategy(), loss, 8, norm_bias_scale=64.0)
    train(iter(tf.data.Dataset.from_tensors((images, labels))), tf.constant(1))
    assert not any("gamma" in v.name for v in model.trainable_variables)  # a fixed scale is not trained
    checked = []
    for variable in model.trainable_variables:
        name = variable.name
        scale = 64.0 if "beta" in name else 0.25 if name.startswith("head/") else 1.0
        decayed = "kernel" in name or ("beta" in name and decay_offsets)
        expected = -0.1 * 1.5 * (scale * data[name].numpy() + (0.3 * before[name] if decayed else 0.0))
        np.testing.assert_allclose(variable.numpy() - before[name], expected, rtol=1e-4, atol=1e-7, err_msg=name)
        checked.append((name.split(":")[0], scale, decayed))
    assert sorted(checked) == sorted([("conv1/kernel", 1.0, True), ("conv1/bias", 1.0, False),
                                      ("beta", 64.0, decay_offsets), ("head/kernel", 0.25, True),
                                      ("head/bias", 0.25, False)])  # fmt: skip


def numpy_tta(logits_of, images, level):
    views = {"plain": images, "mirror": images[:, :, ::-1]}
    if level == 0:
        return logits_of(images)
    mirror = lambda x: 0.5 * (logits_of(x) + logits_of(x[:, :, ::-1]))  # noqa: E731
    if level == 1:
        return mirror(views["plain"])
    padded = np.pad(images, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    up_left, down_right = padded[:, :-2, :-2], padded[:, 2:, 2:]
    return 0.5 * mirror(images) + 0.25 * mirror(up_left) + 0.25 * mirror(down_right)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_test_time_augmentation_weights_airbenchs_six_views(level):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 6, 5, 2)).astype(np.float32)
    weights = rng.normal(size=(6 * 5 * 2, 4)).astype(np.float32)
    logits_np = lambda x: x.reshape(len(x), -1) @ weights  # noqa: E731 -- position-sensitive on purpose
    logits_tf = lambda x: tf.matmul(tf.reshape(x, [len(images), -1]), weights)  # noqa: E731
    got = steps.tta_logits(logits_tf, tf.constant(images), level).numpy()
    np.testing.assert_allclose(got, numpy_tta(logits_np, images, level), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("activation, pool_first", [("relu", False), ("gelu", False), ("gelu", True)])
def test_the_speedrun_network_exports_to_keras_with_equal_logits(activation, pool_first):
    import math

    from vizdeconv.nn.convnet import to_keras

    layers = speedrun_layers(widths=(8, 12, 12), activation=activation, pool_first=pool_first)
    model = ConvNet(layer_specs(layers), image_size=32, seed=1)
    images = tf.random.stateless_normal([2, 32, 32, 3], [4, 0])
    model.whiten(images)
    twin = to_keras(model)
    np.testing.assert_allclose(twin(images).numpy(), model(images).numpy(), rtol=1e-4, atol=1e-4)
    assert not twin.get_layer("whiten").trainable
    tensors = model.graph().forward(images)
    for name in model.layer_names:  # every layer's map, not only the logits: the order of pool and activation
        inside = keras.Model(twin.inputs, twin.get_layer(name).output)(images).numpy()
        np.testing.assert_allclose(inside, tensors[name].numpy(), rtol=1e-4, atol=1e-4, err_msg=name)
    # the whitening layer's output is its conv's, through the activation written out: x Phi(x) for GELU
    x = tensors["whiten/linear"].numpy().astype(np.float64)
    expected = np.maximum(x, 0) if activation == "relu" else x * 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    np.testing.assert_allclose(tensors["whiten"].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert (twin.get_layer("conv1_1").activation.__name__ == activation) or activation == "relu"
