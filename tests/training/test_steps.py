"""The compiled training and evaluation steps against the same objective written out: plain SGD by hand over a
GradientTape of the reference loss, and accuracy counted in NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from configs import smoke
from tests.support import norms
from vizdeconv.nn.convnet import build_model
from vizdeconv.training import losses, steps


def batches(count=3, size=4, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(count, size, 24, 24, 3)).astype(np.float32)
    labels = rng.integers(0, 10, size=(count, size)).astype(np.int32)
    return images, labels


def test_train_steps_equal_sgd_written_out_and_sum_the_batches_terms():
    config = smoke.get_config()
    tf.keras.utils.set_random_seed(0)
    model, twin = build_model(config), build_model(config)
    for mine, theirs in zip(model.trainable_variables, twin.trainable_variables):
        theirs.assign(mine)
    images, labels = batches()
    labels[0] = np.argmax(model(images[0]).numpy(), 1)  # the first batch all right: correct is not trivially 0
    strategy = tf.distribute.get_strategy()
    train = steps.make_train_steps(model, tf.keras.optimizers.SGD(0.01), strategy, config.loss, 4)
    totals = train(iter(tf.data.Dataset.from_tensor_slices((images, labels))), tf.constant(3))
    expected = {"loss": 0.0, "cross_entropy": 0.0, "correct": 0.0}
    for batch, batch_labels in zip(images, labels):
        with tf.GradientTape() as tape:
            logits = twin(batch, training=True)
            terms = losses.objective(logits, batch_labels, twin.kernels, config.loss.reduction,
                                     config.loss.weight_decay, 4)  # fmt: skip
        for variable, gradient in zip(twin.trainable_variables, tape.gradient(terms["loss"], twin.trainable_variables)):
            variable.assign_sub(0.01 * gradient)
        expected["loss"] += float(terms["loss"])
        expected["cross_entropy"] += float(terms["cross_entropy"])
        expected["correct"] += float(np.sum(np.argmax(logits.numpy(), 1) == batch_labels))
    for mine, theirs in zip(model.trainable_variables, twin.trainable_variables):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-6)
    assert float(totals["examples"]) == 12 and float(totals["weights_finite"]) == 1.0
    for name, value in expected.items():
        np.testing.assert_allclose(float(totals[name]), value, rtol=1e-4)
    assert expected["correct"] >= 4


def test_evaluate_counts_the_argmax_matches_over_a_dataset_of_uneven_batches():
    config = smoke.get_config()
    tf.keras.utils.set_random_seed(1)
    model = build_model(config)
    images, labels = batches(count=1, size=11, seed=2)
    images, labels = images[0], labels[0]
    labels[:5] = np.argmax(model(images).numpy(), 1)[:5]  # some right, so the count is not trivially zero
    step = steps.make_eval_step(model, tf.distribute.get_strategy())
    accuracy, examples = steps.evaluate(step, tf.data.Dataset.from_tensor_slices((images, labels)).batch(4))
    assert examples == 11
    assert accuracy == np.mean(np.argmax(model(images).numpy(), 1) == labels) >= 5 / 11


def test_label_smoothing_is_the_cross_entropy_against_the_smoothed_target():
    from vizdeconv.training import losses

    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(5, 10)).astype(np.float32), np.array([0, 3, 9, 3, 1])
    terms = losses.objective(logits, labels, [tf.zeros([1])], "mean", 0.0, label_smoothing=0.1)
    target = np.full((5, 10), 0.1 / 10) + 0.9 * np.eye(10)[labels]
    shifted = logits - logits.max(1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    assert float(terms["cross_entropy"]) == pytest.approx(-(target * log_softmax).sum(1).mean(), rel=1e-5)
    plain = losses.objective(logits, labels, [tf.zeros([1])], "mean", 0.0)["cross_entropy"]
    assert float(plain) == pytest.approx(-log_softmax[np.arange(5), labels].mean(), rel=1e-5)


def test_recompute_statistics_sets_the_mean_batch_statistics_and_puts_everything_back_on_failure():
    model, images = norms.two_norm_network()
    labels = np.zeros(12, np.int32)
    strategy = tf.distribute.get_strategy()
    before = [v.numpy() for norm in model.norms.values() for v in (norm.moving_mean, norm.moving_variance)]

    def broken():
        yield images[:4], labels[:4]
        raise OSError("the disk went away")

    with pytest.raises(OSError, match="went away"):
        steps.recompute_statistics(model, strategy, broken())
    after = [v.numpy() for norm in model.norms.values() for v in (norm.moving_mean, norm.moving_variance)]
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)
    assert [norm.momentum for norm in model.norms.values()] == [0.6, 0.6]

    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    assert steps.recompute_statistics(model, strategy, dataset) == 3
    expected = norms.numpy_statistics(model, [images[i : i + 4] for i in range(0, 12, 4)])
    for name, (mean, variance) in expected.items():
        np.testing.assert_allclose(model.norms[name].moving_mean, mean, rtol=1e-4, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(model.norms[name].moving_variance, variance, rtol=1e-4, err_msg=name)
    assert [norm.momentum for norm in model.norms.values()] == [0.6, 0.6]  # training goes on as configured
    assert steps.recompute_statistics(model, strategy, dataset.take(0)) == 0  # nothing to read: as it was
    np.testing.assert_allclose(model.norms["conv2"].moving_variance, expected["conv2"][1], rtol=1e-4)


def test_steps_of_several_networks_in_one_process_give_no_retracing_warning(caplog):
    # The ablation script trains variant after variant in one process, each with its own compiled steps.
    config = smoke.get_config()
    images, labels = batches(count=1, size=4)
    strategy = tf.distribute.get_strategy()
    with caplog.at_level("WARNING", logger="tensorflow"):
        for seed in range(6):
            tf.keras.utils.set_random_seed(seed)
            model = build_model(config)
            train = steps.make_train_steps(model, tf.keras.optimizers.SGD(0.01), strategy, config.loss, 4)
            train(iter(tf.data.Dataset.from_tensor_slices((images, labels))), tf.constant(1))
            steps.make_eval_step(model, strategy)(images[0], labels[0])
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
