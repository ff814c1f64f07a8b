"""A two-normalization network and its batch statistics in training mode written out in NumPy, for the tests
of recomputed statistics on one device and on two mirrored replicas."""

import numpy as np
import tensorflow as tf


def two_norm_network(seed: int = 4):
    """(model, images [12, 8, 8, 3] float32): conv1 (pool 2) and conv2 batch-normalized at momentum 0.6, with
    scales, offsets and moving statistics far from the data's, so that a no-op shows."""
    from vizdeconv.nn.convnet import ConvNet, LayerSpec

    specs = [LayerSpec("conv1", 3, 6, pool=2, batch_norm=True, norm_momentum=0.6),
             LayerSpec("conv2", 3, 8, batch_norm=True, norm_momentum=0.6),
             LayerSpec("head", 1, 10, rectify=False)]  # fmt: skip
    model = ConvNet(specs, image_size=8, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for norm in model.norms.values():
        norm.gamma.assign(rng.uniform(0.5, 2, norm.gamma.shape))
        norm.beta.assign(rng.normal(size=norm.beta.shape))
        norm.moving_mean.assign(rng.normal(3, 1, norm.moving_mean.shape))
        norm.moving_variance.assign(rng.uniform(5, 9, norm.moving_variance.shape))
    images = (rng.normal(size=(12, 8, 8, 3)) * rng.uniform(0.5, 3, size=(12, 1, 1, 1))).astype(np.float32)
    return model, images


def numpy_statistics(model, batches_of_images):
    """Each normalization's mean over the batches of its batch mean and biased variance, the network run in
    training mode written out in NumPy: conv1 -> norm -> ReLU -> pool 2 -> conv2 -> norm (conv by tf.nn)."""
    first = model.norms["conv1"]
    per_batch = {"conv1": [], "conv2": []}
    for images in batches_of_images:
        raw = (tf.nn.conv2d(images, model.kernels[0], 1, "SAME") + model.biases[0]).numpy().astype(np.float64)
        mean, variance = raw.mean((0, 1, 2)), raw.var((0, 1, 2))
        per_batch["conv1"].append((mean, variance))
        x = (raw - mean) / np.sqrt(variance + first.epsilon) * first.gamma.numpy() + first.beta.numpy()
        x = tf.nn.max_pool2d(np.maximum(x, 0).astype(np.float32), 2, 2, "VALID")
        raw = (tf.nn.conv2d(x, model.kernels[1], 1, "SAME") + model.biases[1]).numpy().astype(np.float64)
        per_batch["conv2"].append((raw.mean((0, 1, 2)), raw.var((0, 1, 2))))
    return {name: np.mean(values, axis=0) for name, values in per_batch.items()}
