"""Initial kernels from the CIFAR-10 speedrun literature (Jordan 2024, airbench; tysam-code's hlb-CIFAR10):
a first layer that whitens the input's patches, and 3x3 kernels that start as a partial identity."""

import math

import numpy as np
import tensorflow as tf

INITS = ("normal", "identity", "whiten")

# The standard deviation of a normal truncated at two deviations, as tf.random.truncated_normal draws it,
# in units of its `stddev` argument: sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)).
TRUNCATED_STDDEV = math.sqrt(1 - 4 * math.exp(-2) / math.sqrt(2 * math.pi) / math.erf(math.sqrt(2)))


def image_patches(images, size: int) -> tf.Tensor:
    """Every size x size patch (stride 1, no padding) of images [N, H, W, C] as rows [P, size * size * C],
    each flattened in a kernel's order (row, column, channel), so `patches @ kernel.reshape(-1, out)` is the
    VALID convolution's output."""
    patches = tf.image.extract_patches(
        tf.convert_to_tensor(images, tf.float32), [1, size, size, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID"
    )
    return tf.reshape(patches, [-1, patches.shape[-1]])


def whitening_kernel(images, size: int = 2, epsilon: float = 5e-4) -> tf.Tensor:
    """The kernel [size, size, C, 2 * size * size * C] of a VALID convolution that whitens the patches of
    `images` [N, H, W, C] (float, as the network takes them): the eigenvectors v of the patches' second-moment
    matrix S = E[p p^T], each scaled by 1 / sqrt(lambda + epsilon), then the same negated, so that after a
    ReLU the pair keeps both signs of every whitened coordinate. With epsilon = 0 the first half's outputs
    have second moment exactly the identity; epsilon damps the directions of least variance (pixel noise)."""
    patches = tf.cast(image_patches(images, size), tf.float64)
    moment = tf.matmul(patches, patches, transpose_a=True) / tf.cast(tf.shape(patches)[0], tf.float64)
    eigenvalues, eigenvectors = tf.linalg.eigh(moment)
    # the strongest directions first, as airbench orders its channels
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    scaled = eigenvectors / tf.sqrt(tf.maximum(eigenvalues, 0.0) + epsilon)[None, :]
    channels = int(images.shape[-1])
    kernel = tf.concat([scaled, -scaled], axis=1)
    return tf.cast(tf.reshape(kernel, [size, size, channels, kernel.shape[1]]), tf.float32)


def identity_partial(kernel) -> np.ndarray:
    """`kernel` [k, k, in, out] with its first min(in, out) filters replaced by the identity (a Dirac delta
    at the centre, filter i passing input channel i), the rest unchanged: the layer starts as an implicit
    residual connection (airbench's `dirac_` initialization)."""
    kernel = np.array(kernel, dtype=np.float32)
    height, width, inputs, outputs = kernel.shape
    count = min(inputs, outputs)
    kernel[:, :, :, :count] = 0.0
    kernel[height // 2, width // 2, np.arange(count), np.arange(count)] = 1.0
    return kernel
