"""Feature visualization against models whose optimum is known, and its command line."""

import json
import os

import keras
import numpy as np
import pytest

import vizdeconv
from tests.support.commands import in_process
from vizdeconv.methods import feature_vis
from vizdeconv.nn.preprocess import Preprocess


def linear_filter_model(size: int = 15, seed: int = 0):
    """One linear 7x7 conv (2 Gaussian random filters, no bias): the centre unit's optimum inside the
    [0, 1] pixel box is 1 where a weight is positive and 0 where it is negative."""
    weights = np.random.default_rng(seed).normal(size=(7, 7, 3, 2)).astype(np.float32)
    inputs = keras.Input((size, size, 3))
    conv = keras.layers.Conv2D(2, 7, use_bias=False, name="conv")
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(conv(inputs)))
    conv.set_weights([weights])
    return model, weights


def colour_model():
    """Channel c of a 1x1 conv answers colour c against the other two."""
    inputs = keras.Input((16, 16, 3))
    conv = keras.layers.Conv2D(3, 1, use_bias=False, name="colour")
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(conv(inputs)))
    conv.set_weights([(3 * np.eye(3, dtype=np.float32) - 1)[None, None]])
    return model


def test_pixel_method_finds_a_linear_filters_optimum_in_the_pixel_box():
    model, weights = linear_filter_model()
    fv = vizdeconv.FeatureVisualization(model, method="pixel", transforms=False, preprocess="none")
    result = fv.optimize("conv", unit="center", steps=200)
    assert result.images.shape == (2, 15, 15, 3) and result.images.min() >= 0 and result.images.max() <= 1
    for channel in range(2):
        patch = result.images[channel, 4:11, 4:11]  # the centre unit's 7x7 window
        assert np.corrcoef(patch.ravel(), weights[..., channel].ravel())[0, 1] >= 0.7
        optimum = np.maximum(weights[..., channel], 0).sum()  # sign pattern: 1 on positive weights
        assert optimum * 0.97 <= result.activations[channel] <= optimum * 1.001


def test_fourier_method_climbs_towards_the_same_optimum():
    model, weights = linear_filter_model()
    result = vizdeconv.FeatureVisualization(model, "fourier", False, "none").optimize("conv", unit="center", steps=200)
    for channel in range(2):
        patch = result.images[channel, 4:11, 4:11]
        assert np.corrcoef(patch.ravel(), weights[..., channel].ravel())[0, 1] >= 0.6
        assert result.activations[channel] >= 0.75 * np.maximum(weights[..., channel], 0).sum()


@pytest.mark.parametrize("method", feature_vis.METHODS)
def test_a_colour_detector_gets_its_colour(method):
    result = vizdeconv.FeatureVisualization(colour_model(), method, preprocess="none").optimize("colour", steps=100)
    means = result.images.mean(axis=(1, 2))  # [3 channels optimized, RGB]
    assert list(means.argmax(axis=1)) == [0, 1, 2]
    for channel in range(3):
        others = np.delete(means[channel], channel)
        assert means[channel, channel] - others.max() > (0.5 if method == "pixel" else 0.15)


@pytest.mark.parametrize("method", feature_vis.METHODS)
def test_a_batch_of_channels_equals_each_channel_alone(method):
    model, _ = linear_filter_model(size=20)
    fv = vizdeconv.FeatureVisualization(model, method, transforms=True, preprocess="none")
    together = fv.optimize("conv", channels=[1, 0], steps=12, seed=3)
    for index, channel in enumerate([1, 0]):
        alone = fv.optimize("conv", channels=[channel], steps=12, seed=3)
        np.testing.assert_allclose(alone.images[0], together.images[index], atol=2e-5)
        np.testing.assert_allclose(alone.activations[0], together.activations[index], rtol=1e-4)
    other_seed = fv.optimize("conv", channels=[1], steps=12, seed=4)
    assert np.abs(other_seed.images[0] - together.images[0]).max() > 1e-3
    in_parts = fv.optimize("conv", channels=[1, 0], steps=12, seed=3, batch_size=1)  # bounded memory, same images
    np.testing.assert_allclose(in_parts.images, together.images, atol=2e-5)
    assert in_parts.channels.tolist() == [1, 0] and in_parts.activations.shape == (2,)


def test_layer_after_layer_traces_each_loop_once_without_a_retracing_warning(caplog):
    # The explorer optimizes layer after layer and the tab channel after channel: each layer's loop traces
    # once per batch shape, and TensorFlow must not see the layers as one function retracing.
    inputs = keras.Input((12, 12, 3))
    x = inputs
    for index in range(6):
        x = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name=f"c{index}")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    fv = vizdeconv.FeatureVisualization(model, "pixel", transforms=False, preprocess="none")
    with caplog.at_level("WARNING", logger="tensorflow"):
        for _ in range(2):
            for index in range(6):
                fv.optimize(f"c{index}", channels=[1], steps=2)
    assert [loop.experimental_get_tracing_count() for loop in fv._loops.values()] == [1] * 6
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


def test_transforms_keep_the_size_move_the_image_and_vanish_at_zero():
    import tensorflow as tf

    images = tf.random.uniform([3, 20, 24, 3], seed=1)
    seeds = tf.constant([[1, 1], [2, 1], [3, 1]])
    moved = feature_vis.random_transforms(images, seeds, jitter=2.0, scale=0.1, degrees=10.0)
    assert moved.shape == images.shape
    assert float(tf.reduce_max(tf.abs(moved - images))) > 0.1
    still = feature_vis.random_transforms(images, seeds, jitter=0.0, scale=0.0, degrees=0.0)
    np.testing.assert_allclose(still.numpy(), images.numpy(), atol=1e-5)
    # A shift by whole pixels (no zoom, no rotation) reads the pixels from that far away.
    shifted = feature_vis.random_transforms(images, seeds, jitter=2.0, scale=0.0, degrees=0.0).numpy()
    draws = tf.random.stateless_uniform([4], seeds[0], -1.0, 1.0).numpy() * 2.0
    assert shifted.shape == (3, 20, 24, 3) and abs(draws[0]) > 0  # sub-pixel: bilinear between neighbours
    dx, dy = draws[0], draws[1]
    x0, y0 = int(np.floor(dx)), int(np.floor(dy))
    fx, fy = dx - x0, dy - y0
    source = images.numpy()[0]
    expected = (
        (1 - fy) * (1 - fx) * source[8 + y0, 10 + x0]
        + (1 - fy) * fx * source[8 + y0, 11 + x0]
        + fy * (1 - fx) * source[9 + y0, 10 + x0]
        + fy * fx * source[9 + y0, 11 + x0]
    )
    np.testing.assert_allclose(shifted[0, 8, 10], expected, atol=1e-5)


def test_fourier_parametrization_and_blur_against_numpy():
    import tensorflow as tf

    np.testing.assert_allclose(
        feature_vis.frequencies(6, 5), np.abs(np.fft.fftfreq(6)[:, None] + 1j * np.fft.rfftfreq(5)[None]), atol=1e-6
    )
    grey = feature_vis.fourier_pixels(tf.zeros([2, 2, 3, 8, 5]), 8, 8)
    np.testing.assert_allclose(grey.numpy(), 0.5)  # a flat spectrum is mid-grey
    impulse = np.zeros([9, 9, 1], np.float32)
    impulse[4, 4] = 1
    blurred = feature_vis.gaussian_blur(tf.constant(impulse[None]), 1.0).numpy()[0, ..., 0]
    taps = np.exp(-0.5 * np.arange(-2, 3) ** 2)
    np.testing.assert_allclose(blurred[2:7, 2:7], np.outer(taps, taps) / taps.sum() ** 2, atol=1e-6)


def test_a_class_logit_is_a_dense_channel_and_preprocessing_follows_the_model():
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(inputs)
    conv = keras.layers.Conv2D(4, 3, activation="relu", name="conv")
    dense = keras.layers.Dense(3, name="logits")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(conv(x))))
    # Seeded weights, with every conv channel raising logit 2, so that an optimum above grey exists for
    # any draw (an unseeded initialization once left logit 2 almost no positive path: CI went red).
    rng = np.random.default_rng(1)
    conv.set_weights([rng.normal(size=(3, 3, 3, 4)).astype(np.float32), np.zeros(4, np.float32)])
    dense.set_weights([np.abs(rng.normal(size=(4, 3))).astype(np.float32), np.zeros(3, np.float32)])
    fv = vizdeconv.FeatureVisualization(model, "pixel", preprocess="auto")
    pixels = np.random.default_rng(0).uniform(size=(2, 12, 12, 3)).astype(np.float32)
    np.testing.assert_allclose(fv.preprocess(pixels).numpy(), pixels * 255.0, rtol=1e-6)  # the model rescales
    result = fv.optimize("logits", channels=[2], steps=40)
    grey_logit = model.predict(np.full((1, 12, 12, 3), 127.5, np.float32), verbose=0)[0, 2]
    assert result.activations.shape == (1,)
    np.testing.assert_allclose(result.activations[0], model.predict(result.images * 255.0, verbose=0)[0, 2], rtol=1e-4)
    assert result.activations[0] > grey_logit + 0.1, (result.activations, grey_logit)
    standardize = Preprocess((12, 12), "standardize")
    images = (pixels * 255).round().astype(np.uint8)
    np.testing.assert_allclose(standardize.from_unit(images / 255.0), standardize.inputs(images), atol=1e-4)


def test_a_layer_inside_a_nested_keras_applications_backbone():
    """MobileNetV2 (ReLU6, depthwise convolutions, BatchNormalization) as the nested backbone of a
    transfer-learning model: a layer inside it, by its own name; the reached activation is what Keras gives."""
    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(32, 32, 3), alpha=0.35)
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(base(inputs))))
    fv = vizdeconv.FeatureVisualization(model, "fourier", preprocess=Preprocess((32, 32), "symmetric"))
    result = fv.optimize("block_3_expand_relu", channels=[0, 5], unit="center", steps=12)
    assert result.images.shape == (2, 32, 32, 3) and result.images.std() > 0.01
    inner = keras.Model(base.input, base.get_layer("block_3_expand_relu").output)
    maps = inner(result.images * 2.0 - 1.0).numpy()
    np.testing.assert_allclose(maps.max(axis=(1, 2))[[0, 1], [0, 5]], result.activations, rtol=1e-3, atol=1e-4)


def test_wrong_layer_channel_steps_and_method_are_one_clear_error():
    model, _ = linear_filter_model()
    fv = vizdeconv.FeatureVisualization(model, "pixel", preprocess="none")
    with pytest.raises(ValueError, match="out of range: layer 'conv' has 2 channels"):
        fv.optimize("conv", channels=[2], steps=1)
    with pytest.raises(ValueError, match="steps must be positive"):
        fv.optimize("conv", steps=0)
    with pytest.raises(ValueError, match="method must be one of fourier, pixel"):
        vizdeconv.FeatureVisualization(model, "lucid")
    with pytest.raises(ValueError, match="unit must be None"):
        fv.optimize("conv", unit="max", steps=1)


def test_analyze_optimize_writes_the_grid_the_npz_and_tensorboard_images(tmp_path):
    model, _ = linear_filter_model()
    path = str(tmp_path / "linear.keras")
    model.save(path)
    code, out, err = in_process(
        "analyze", "optimize", "--model", path, "--layer", "conv", "--channels", "1,0", "--steps", "30",
        "--preprocess", "unit", "--unit", "center",
    )  # fmt: skip
    assert code == 0, err
    folder = tmp_path / "linear_explore" / "analyze" / "optimize"
    saved = np.load(folder / "conv_fourier.npz")
    report = json.load(open(folder / "conv_fourier.json"))
    assert list(saved["channels"]) == [1, 0] == report["channels"] and saved["images"].shape == (2, 15, 15, 3)
    reloaded = keras.models.load_model(path)
    outputs = keras.Model(reloaded.inputs, reloaded.get_layer("conv").output).predict(saved["images"], verbose=0)
    np.testing.assert_allclose(saved["activations"], [outputs[0, ..., 1].max(), outputs[1, ..., 0].max()], rtol=1e-4)
    from PIL import Image

    grid = np.asarray(Image.open(folder / "conv_fourier.png"))
    assert grid.shape[0] >= 60 and grid.shape[1] > 2 * 60 and grid.std() > 5  # two enlarged, non-flat images
    events = os.listdir(tmp_path / "linear_explore" / "analyze")
    assert any(name.startswith("events.out.tfevents") for name in events)
    for arguments, message in (
        (["--layer", "nope"], "nope"),
        (["--layer", "conv", "--channels", "7"], "channel 7 is out of range"),
        (["--layer", "conv", "--steps", "0"], "--steps must be positive"),
        (["--layer", "conv", "--channels", "a,b"], "--channels must be ids"),
    ):
        code, out, err = in_process("analyze", "optimize", "--model", path, *arguments)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
