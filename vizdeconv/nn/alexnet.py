"""AlexNet features with a transposed-convolution upsampling head, for benchmarking (random weights).

Input [B, 460, 345, 3]. Convs are SAME with ReLU; pools are 3x3 stride 2 VALID; the two transposed
convolutions (no ReLU: they produce the output map) upsample 13x10 -> 130x100 -> 260x200.
"""
import dataclasses

import tensorflow as tf

from vizdeconv.nn import ops
from vizdeconv.nn import shapes

INPUT_SHAPE = (460, 345, 3)


@dataclasses.dataclass(frozen=True)
class Layer:
    name: str
    kind: str  # conv | pool | deconv
    kernel: int
    stride: int = 1
    filters: int = 0
    padding: str = "SAME"
    output: tuple[int, int] | None = None  # deconv output size (height, width)


LAYERS = (
    Layer("conv1", "conv", 11, 4, 64), Layer("pool1", "pool", 3, 2, padding="VALID"),
    Layer("conv2", "conv", 5, 1, 192), Layer("pool2", "pool", 3, 2, padding="VALID"),
    Layer("conv3", "conv", 3, 1, 384), Layer("conv4", "conv", 3, 1, 256),
    Layer("conv5", "conv", 3, 1, 256), Layer("pool5", "pool", 3, 2, padding="VALID"),
    Layer("conv6", "conv", 3, 1, 1),
    Layer("deconv1", "deconv", 11, 10, 1, output=(130, 100)),
    Layer("deconv2", "deconv", 11, 2, 1, output=(260, 200)),
)


class AlexNetFCN(tf.Module):
    """The benchmark network; `shapes` holds every layer's [H, W, C], checked by shape arithmetic.

    Args:
      seed: seeds the truncated-normal (stddev 0.1) kernels; biases are 0.
      log: called with one line per layer as it is built (its output shape).
    """

    def __init__(self, seed: int = 0, log=None):
        super().__init__(name="alexnet_fcn")
        height, width, channels = INPUT_SHAPE
        self.shapes, self.kernels, self.biases, self.flops = {}, {}, {}, 0
        for index, layer in enumerate(LAYERS):
            if layer.kind == "deconv":
                out_h, out_w = layer.output
                shapes.check_transpose_output(height, out_h, layer.kernel, layer.stride, layer.padding)
                shapes.check_transpose_output(width, out_w, layer.kernel, layer.stride, layer.padding)
                kernel_shape = [layer.kernel, layer.kernel, layer.filters, channels]
                self.flops += 2 * height * width * channels * layer.kernel ** 2 * layer.filters
            else:
                out_h = shapes.conv_output_size(height, layer.kernel, layer.stride, layer.padding)
                out_w = shapes.conv_output_size(width, layer.kernel, layer.stride, layer.padding)
                kernel_shape = [layer.kernel, layer.kernel, channels, layer.filters]
                if layer.kind == "conv":
                    self.flops += 2 * out_h * out_w * layer.filters * layer.kernel ** 2 * channels
            if layer.kind != "pool":
                self.kernels[layer.name] = tf.Variable(tf.random.stateless_truncated_normal(
                    kernel_shape, [seed, index], stddev=0.1), name=f"{layer.name}/kernel")
                self.biases[layer.name] = tf.Variable(tf.zeros([layer.filters]), name=f"{layer.name}/bias")
                channels = layer.filters
            height, width = out_h, out_w
            self.shapes[layer.name] = (height, width, channels)
            if log:
                log(f"{layer.name:8s} {height}x{width}x{channels}")

    def __call__(self, images, compute_dtype=tf.float32):
        """[B, 460, 345, 3] -> [B, 260, 200, 1] float32."""
        x = tf.cast(images, compute_dtype)
        batch = tf.shape(x)[0]
        for layer in LAYERS:
            if layer.kind == "pool":
                x = tf.nn.max_pool2d(x, layer.kernel, layer.stride, layer.padding)
                continue
            kernel = tf.cast(self.kernels[layer.name], compute_dtype)
            bias = tf.cast(self.biases[layer.name], compute_dtype)
            if layer.kind == "conv":
                x = tf.nn.relu(ops.conv2d(x, kernel, layer.stride, layer.padding) + bias)
            else:
                x = ops.conv2d_transpose(x, kernel, [batch, *self.shapes[layer.name]], layer.stride,
                                         layer.padding) + bias
                x.set_shape([None, *self.shapes[layer.name]])
        return tf.cast(x, tf.float32)
