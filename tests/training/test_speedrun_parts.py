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


def test_gradient_scales_multiply_the_rate_of_norm_offsets_and_of_a_layer():
    images = tf.random.stateless_normal([8, 8, 8, 3], [1, 0])
    labels = tf.constant(np.arange(8) % 10, tf.int32)

    def one_step(norm_bias_scale, head_scale):
        specs = [LayerSpec("conv1", 3, 4, pool=2, batch_norm=True, norm_scale=False),
                 LayerSpec("head", 1, 10, rectify=False, rate_scale=head_scale)]  # fmt: skip
        model = ConvNet(specs, image_size=8, seed=0)
        before = [v.numpy() for v in model.trainable_variables]
        optimizer = keras.optimizers.SGD(0.1, momentum=0.5, nesterov=True)
        strategy = tf.distribute.get_strategy()
        loss = default_config().loss
        train = steps.make_train_steps(model, optimizer, strategy, loss, 8, norm_bias_scale=norm_bias_scale)
        train(iter(tf.data.Dataset.from_tensors((images, labels))), tf.constant(1))
        names = [v.name for v in model.trainable_variables]
        assert not any("gamma" in n for n in names)  # a fixed scale is not trained
        return {n: v.numpy() - b for n, v, b in zip(names, model.trainable_variables, before)}

    plain, scaled = one_step(1.0, 1.0), one_step(64.0, 0.25)  # one Nesterov step is linear in the gradient
    factors = {name: 64.0 if "beta" in name else 0.25 if name.startswith("head/") else 1.0 for name in plain}
    assert sorted(factors.values()) == [0.25, 0.25, 1.0, 1.0, 64.0]
    for name, factor in factors.items():
        # a bias before batch normalization cancels out: its gradient is rounding only
        assert name == "conv1/bias:0" or np.abs(plain[name]).max() > 1e-6, name
        np.testing.assert_allclose(scaled[name], factor * plain[name], rtol=1e-4, atol=1e-8, err_msg=name)


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


def test_the_speedrun_network_exports_to_keras_with_equal_logits():
    from vizdeconv.nn.convnet import to_keras

    model = ConvNet(layer_specs(speedrun_layers(widths=(8, 12, 12))), image_size=32, seed=1)
    images = tf.random.stateless_normal([2, 32, 32, 3], [4, 0])
    model.whiten(images)
    twin = to_keras(model)
    np.testing.assert_allclose(twin(images).numpy(), model(images).numpy(), rtol=1e-4, atol=1e-4)
    assert not twin.get_layer("whiten").trainable
