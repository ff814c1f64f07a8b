"""Muon and Lookahead against their equations written out in NumPy, on tiny problems."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from vizdeconv.training.optimizers import NEWTON_SCHULZ, Lookahead, Muon, orthogonalize


def numpy_orthogonalize(matrix: np.ndarray, steps: int = 5) -> np.ndarray:
    a, b, c = NEWTON_SCHULZ
    x = matrix.astype(np.float64)
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    x = x / (np.linalg.norm(x) + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


@pytest.mark.parametrize("shape", [(4, 12), (12, 4), (6, 6)])
def test_orthogonalize_is_the_newton_schulz_iteration_and_near_the_polar_factor(shape):
    matrix = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    result = orthogonalize(tf.constant(matrix)).numpy()
    np.testing.assert_allclose(result, numpy_orthogonalize(matrix), rtol=1e-4, atol=1e-5)
    singular = np.linalg.svd(result, compute_uv=False)
    assert singular.min() > 0.5 and singular.max() < 1.3  # all pushed towards 1, not exactly there
    u, _, vt = np.linalg.svd(matrix, full_matrices=False)
    polar = u @ vt
    cosine = (result * polar).sum() / np.linalg.norm(result) / np.linalg.norm(polar)
    assert cosine > 0.95


def test_muon_steps_equal_the_numpy_reference():
    rng = np.random.default_rng(1)
    kernel = tf.Variable(rng.normal(size=(2, 2, 3, 4)).astype(np.float32))
    bias = tf.Variable(rng.normal(size=(4,)).astype(np.float32))
    optimizer = Muon(learning_rate=0.1, momentum=0.9)
    expected = {"kernel": kernel.numpy().astype(np.float64), "bias": bias.numpy().astype(np.float64)}
    momentum = {name: np.zeros_like(value) for name, value in expected.items()}
    for step in range(3):
        grads = {"kernel": rng.normal(size=(2, 2, 3, 4)), "bias": rng.normal(size=(4,))}
        optimizer.apply_gradients([(tf.constant(grads["kernel"], tf.float32), kernel),
                                   (tf.constant(grads["bias"], tf.float32), bias)])  # fmt: skip
        for name in expected:
            momentum[name] = 0.9 * momentum[name] + grads[name]
            update = grads[name] + 0.9 * momentum[name]  # Nesterov
            if name == "kernel":  # as [out, kh * kw * in], scaled by sqrt(max(1, rows / cols)) = 1 here
                update = numpy_orthogonalize(update.reshape(-1, 4).T).T.reshape(2, 2, 3, 4)
            expected[name] = expected[name] - 0.1 * update
        np.testing.assert_allclose(kernel.numpy(), expected["kernel"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(bias.numpy(), expected["bias"], rtol=1e-5, atol=1e-6)


def test_lookahead_steps_equal_the_numpy_reference_and_resume_from_a_checkpoint(tmp_path):
    target = np.array([1.0, -2.0, 0.5])
    weights = tf.Variable(np.zeros(3, np.float32))
    optimizer = Lookahead(keras.optimizers.SGD(0.3), sync_every=3, alpha=0.5)
    fast, slow = np.zeros(3), np.zeros(3)
    for step in range(1, 8):
        optimizer.apply_gradients([(tf.constant(weights.numpy() - target, tf.float32), weights)])
        fast = fast - 0.3 * (fast - target)  # the gradient of |w - target|^2 / 2
        if step % 3 == 0:
            slow = slow + 0.5 * (fast - slow)
            fast = slow.copy()
        np.testing.assert_allclose(weights.numpy(), fast, rtol=1e-5, atol=1e-6)
        if step == 4:  # a checkpoint mid-way: the restored optimizer goes on identically
            checkpoint = tf.train.Checkpoint(weights=weights, optimizer=optimizer)
            path = checkpoint.save(str(tmp_path / "ckpt"))
    again_weights = tf.Variable(np.zeros(3, np.float32))
    again = Lookahead(keras.optimizers.SGD(0.3), sync_every=3, alpha=0.5)
    again.build([again_weights])
    tf.train.Checkpoint(weights=again_weights, optimizer=again).restore(path).assert_consumed()
    for _ in range(3):  # steps 5, 6 (a synchronization) and 7, from the state after step 4
        again.apply_gradients([(tf.constant(again_weights.numpy() - target, tf.float32), again_weights)])
    np.testing.assert_allclose(again_weights.numpy(), weights.numpy(), rtol=1e-6)
    assert float(again.learning_rate) == pytest.approx(0.3)
    again.learning_rate = 0.05  # what a LearningRateScheduler callback does: the inner optimizer takes it
    assert float(again.inner.learning_rate) == pytest.approx(0.05)
