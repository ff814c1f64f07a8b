"""Deletion and insertion (Petsiuk et al. 2018) against a NumPy reference on a linear softmax classifier."""

import keras
import numpy as np
import pytest

import vizdeconv
from vizdeconv.methods import metrics

SIZE = 6


def _linear_model(seed: int = 0):
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten(), keras.layers.Dense(3)])
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(SIZE * SIZE * 3, 3)).astype(np.float32)
    model.set_weights([kernel, rng.normal(size=3).astype(np.float32)])
    return model


def _numpy_curve(model, images, maps, targets, steps, fill, kind):
    kernel, bias = model.get_weights()
    fractions = np.linspace(0, 1, steps + 1)
    curves = []
    for image, saliency, target, substrate in zip(images, maps, targets, fill):
        order = sorted(range(SIZE * SIZE), key=lambda p: (-saliency.reshape(-1)[p], p))
        row = []
        for fraction in fractions:
            chosen = set(order[: int(round(fraction * SIZE * SIZE))])
            mask = np.array([p in chosen for p in range(SIZE * SIZE)]).reshape(SIZE, SIZE, 1)
            x = np.where(mask, substrate, image) if kind == "deletion" else np.where(mask, image, substrate)
            logits = x.reshape(-1) @ kernel + bias
            row.append(np.exp(logits - logits.max())[target] / np.exp(logits - logits.max()).sum())
        curves.append(row)
    curves = np.array(curves)
    auc = ((curves[:, 1:] + curves[:, :-1]) / 2 * np.diff(fractions)).sum(1)
    return curves, auc


def _numpy_blur(images, sigma):
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    padded = np.pad(images, [(0, 0), (radius, radius), (radius, radius), (0, 0)], mode="symmetric")
    rows = np.apply_along_axis(lambda v: np.convolve(v, taps, "valid"), 1, padded)
    return np.apply_along_axis(lambda v: np.convolve(v, taps, "valid"), 2, rows)


def test_deletion_and_insertion_equal_a_numpy_reference():
    model = _linear_model()
    rng = np.random.default_rng(1)
    images = rng.normal(size=(3, SIZE, SIZE, 3)).astype(np.float32)
    maps = rng.random((3, SIZE, SIZE)).astype(np.float32)
    maps[0, :2, :2] = 1.0  # ties: raster order
    deletion = metrics.deletion(model, images, maps, steps=6, batch_size=5)
    logits = images.reshape(3, -1) @ model.get_weights()[0] + model.get_weights()[1]
    np.testing.assert_array_equal(deletion.targets, logits.argmax(1))
    curves, auc = _numpy_curve(model, images, maps, deletion.targets, 6, np.zeros_like(images), "deletion")
    np.testing.assert_allclose(deletion.probabilities, curves, atol=1e-5)
    np.testing.assert_allclose(deletion.auc, auc, atol=1e-5)

    blurred = _numpy_blur(images, 1.5)
    np.testing.assert_allclose(metrics.gaussian_blur(images, 1.5), blurred, atol=1e-5)
    insertion = vizdeconv.metrics.insertion(model, images, maps, target=[0, 1, 2], steps=4, blur_sigma=1.5)
    curves, auc = _numpy_curve(model, images, maps, [0, 1, 2], 4, blurred, "insertion")
    np.testing.assert_allclose(insertion.probabilities, curves, atol=1e-5)
    np.testing.assert_allclose(insertion.auc, auc, atol=1e-5)
    same = metrics.insertion(model, images, maps, target=[0, 1, 2], steps=4, blur_sigma=1.5, batch_size=64)
    np.testing.assert_array_equal(same.probabilities, insertion.probabilities)


def test_a_map_of_the_evidence_beats_random_and_the_wrong_map():
    """A classifier that reads only the top-left quarter: the map that marks it deletes the class fastest."""
    kernel = np.zeros((SIZE, SIZE, 3, 2), np.float32)
    kernel[: SIZE // 2, : SIZE // 2, :, 0] = 1.0
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.set_weights([kernel.reshape(-1, 2), np.zeros(2, np.float32)])
    images = np.ones((4, SIZE, SIZE, 3), np.float32)
    right = np.zeros((4, SIZE, SIZE), np.float32)
    right[:, : SIZE // 2, : SIZE // 2] = 1
    good = metrics.deletion(model, images, right, target=0).auc
    wrong = metrics.deletion(model, images, 1 - right, target=0).auc
    noise = metrics.deletion(model, images, metrics.random_maps(4, (SIZE, SIZE)), target=0).auc
    assert (good < noise).all() and (noise < wrong).all()
    assert (metrics.insertion(model, images, right, 0, substrate="zero").auc >
            metrics.insertion(model, images, 1 - right, 0, substrate="zero").auc).all()  # fmt: skip


def test_bad_arguments():
    model = _linear_model()
    images = np.zeros((2, SIZE, SIZE, 3), np.float32)
    with pytest.raises(ValueError, match="maps have shape"):
        metrics.deletion(model, images, np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="substrate"):
        metrics.deletion(model, images, np.zeros((2, SIZE, SIZE)), substrate="grey")
    with pytest.raises(ValueError, match="out of range"):
        metrics.insertion(model, images, np.zeros((2, SIZE, SIZE)), target=7)


def test_many_curves_give_no_retracing_warning(caplog):
    # A faithfulness table scores every method on the same model: each curve's compiled forward pass is its
    # own function, which TensorFlow must not count as one function retracing.
    model = _linear_model()
    rng = np.random.default_rng(3)
    images = rng.normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    with caplog.at_level("WARNING", logger="tensorflow"):
        for seed in range(6):
            metrics.deletion(model, images, metrics.random_maps(2, (SIZE, SIZE), seed), steps=2)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
