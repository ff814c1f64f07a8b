"""The speedrun's initial kernels: the whitening layer against the covariance it must produce, the partial
identity against the convolution it must be."""

import numpy as np
import pytest
import tensorflow as tf

from vizdeconv.config import speedrun_layers
from vizdeconv.nn.convnet import ConvNet, layer_specs
from vizdeconv.nn.initializers import identity_partial, image_patches, whitening_kernel


def correlated_images(count=64, size=12, seed=0):
    """Images whose neighbouring pixels and channels are strongly correlated, as photographs are."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(count, size + 1, size + 1, 1))
    smooth = base[:, 1:, 1:] + base[:, :-1, :-1] + 0.5 * base[:, 1:, :-1]
    mix = np.array([[1.0, 0.9, 0.8]])
    return (smooth * mix + 0.1 * rng.normal(size=(count, size, size, 3))).astype(np.float32)


def second_moment(outputs):
    flat = outputs.reshape(-1, outputs.shape[-1]).astype(np.float64)
    return flat.T @ flat / len(flat)


@pytest.mark.parametrize("size", [2, 3])
def test_the_whitening_kernel_makes_the_patches_second_moment_the_identity(size):
    images = correlated_images()
    kernel = whitening_kernel(images, size, epsilon=0.0).numpy()
    channels = size * size * 3
    assert kernel.shape == (size, size, 3, 2 * channels)
    outputs = tf.nn.conv2d(images, kernel, 1, "VALID").numpy()
    moment = second_moment(outputs[..., :channels])
    np.testing.assert_allclose(moment, np.eye(channels), atol=2e-3)
    np.testing.assert_allclose(outputs[..., channels:], -outputs[..., :channels], atol=1e-4)  # both signs
    # the input's second moment was far from white: the test would notice an unwhitened kernel
    raw = second_moment(image_patches(images, size).numpy())
    assert np.abs(raw - np.diag(np.diag(raw))).max() > 0.5


def test_epsilon_damps_each_direction_by_its_eigenvalue():
    images = correlated_images(seed=1)
    patches = image_patches(images, 2).numpy().astype(np.float64)
    eigenvalues = np.linalg.eigvalsh(patches.T @ patches / len(patches))[::-1]
    outputs = tf.nn.conv2d(images, whitening_kernel(images, 2, epsilon=0.05), 1, "VALID").numpy()[..., :12]
    np.testing.assert_allclose(np.diag(second_moment(outputs)), eigenvalues / (eigenvalues + 0.05), rtol=2e-3)


def test_image_patches_are_in_the_kernels_order():
    images = correlated_images(count=2, size=5)
    kernel = np.random.default_rng(3).normal(size=(2, 2, 3, 4)).astype(np.float32)
    by_patches = image_patches(images, 2).numpy() @ kernel.reshape(-1, 4)
    by_conv = tf.nn.conv2d(images, kernel, 1, "VALID").numpy().reshape(-1, 4)
    np.testing.assert_allclose(by_patches, by_conv, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("inputs, outputs", [(4, 6), (6, 4)])
def test_identity_partial_passes_the_first_channels_and_keeps_the_other_filters(inputs, outputs):
    kernel = np.random.default_rng(0).normal(size=(3, 3, inputs, outputs)).astype(np.float32)
    started = identity_partial(kernel)
    x = np.random.default_rng(1).normal(size=(2, 7, 7, inputs)).astype(np.float32)
    y = tf.nn.conv2d(x, started, 1, "SAME").numpy()
    count = min(inputs, outputs)
    np.testing.assert_allclose(y[..., :count], x[..., :count], atol=1e-6)
    np.testing.assert_array_equal(started[..., count:], kernel[..., count:])


def test_the_speedrun_network_starts_whitened_with_identity_filters():
    model = ConvNet(layer_specs(speedrun_layers(widths=(32, 40, 40))), image_size=32, seed=0)
    images = correlated_images(count=8, size=32)
    model.whiten(images)
    np.testing.assert_allclose(model.kernels[0].numpy(), whitening_kernel(images, 2).numpy())
    assert not model.kernels[0].trainable and all(k.trainable for k in model.kernels[1:])
    assert all(not norm.gamma.trainable for norm in model.norms.values())
    conv = model.kernels[1].numpy()  # conv1_1 24 -> 32: its first 24 filters are the identity
    np.testing.assert_array_equal(conv[1, 1, np.arange(24), np.arange(24)], np.ones(24))
    assert np.count_nonzero(conv[..., :24]) == 24 and np.count_nonzero(conv[..., 24:]) == conv[..., 24:].size
    assert model.shapes["pool3_2"] == (1, 1, 40) and model.shapes["whiten"] == (31, 31, 24)


def test_whitening_needs_both_signs_of_every_direction_and_the_first_layer():
    layers = speedrun_layers()
    with pytest.raises(ValueError, match="needs 24 filters"):
        ConvNet(layer_specs([dict(layers[0], filters=12), *layers[1:]]), image_size=32)
    with pytest.raises(ValueError, match="only the first layer can whiten"):
        layer_specs([layers[1], layers[0]])
    with pytest.raises(ValueError, match="init must be one of"):
        layer_specs([dict(layers[1], init="orthogonal")])
    with pytest.raises(ValueError, match="activation must be one of relu, gelu"):
        layer_specs([dict(layers[1], activation="swish")])
