"""AlexNet features with a transposed-convolution upsampling head, for benchmarking (random weights).

Input [B, 460, 345, 3]. Convs are SAME with ReLU; pools are 3x3 stride 2 VALID; the two transposed
convolutions (no ReLU: they produce the output map) upsample 13x10 -> 130x100 -> 260x200. The network
is a `Graph` like every other, so its shapes and FLOPs come from the same description.
"""

import dataclasses

import tensorflow as tf

from vizdeconv.nn import shapes
from vizdeconv.nn.graph import Graph, Op

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
    Layer("conv1", "conv", 11, 4, 64),
    Layer("pool1", "pool", 3, 2, padding="VALID"),
    Layer("conv2", "conv", 5, 1, 192),
    Layer("pool2", "pool", 3, 2, padding="VALID"),
    Layer("conv3", "conv", 3, 1, 384),
    Layer("conv4", "conv", 3, 1, 256),
    Layer("conv5", "conv", 3, 1, 256),
    Layer("pool5", "pool", 3, 2, padding="VALID"),
    Layer("conv6", "conv", 3, 1, 1),
    Layer("deconv1", "deconv", 11, 10, 1, output=(130, 100)),
    Layer("deconv2", "deconv", 11, 2, 1, output=(260, 200)),
)


class AlexNetFCN(tf.Module):
    """The benchmark network, its variables and its Graph; `shapes` holds every tensor's [H, W, C].

    Args:
      seed: seeds the truncated-normal (stddev 0.1) kernels; biases are 0.
      log: called with one line per layer as it is built (its output shape).
    """

    def __init__(self, seed: int = 0, log=None):
        super().__init__(name="alexnet_fcn")
        height, width, channels = INPUT_SHAPE
        self.kernels, self.biases = {}, {}
        operations, below = [Op("input", "input", (), {}, "input")], "input"
        for index, layer in enumerate(LAYERS):
            if layer.kind != "deconv":
                height, width = (
                    shapes.conv_output_size(size, layer.kernel, layer.stride, layer.padding) for size in (height, width)
                )
            if layer.kind == "pool":
                operations.append(
                    Op(
                        layer.name,
                        "max_pool",
                        (below,),
                        dict(pool=layer.kernel, stride=layer.stride, padding=layer.padding),
                        f"pool {layer.name!r}",
                    )
                )
                below = layer.name
                continue
            if layer.kind == "deconv":
                for size, out in zip((height, width), layer.output):
                    shapes.check_transpose_output(size, out, layer.kernel, layer.stride, layer.padding)
                kernel_shape = [layer.kernel, layer.kernel, layer.filters, channels]
                height, width = layer.output
            else:
                kernel_shape = [layer.kernel, layer.kernel, channels, layer.filters]
            self.kernels[layer.name] = tf.Variable(
                tf.random.stateless_truncated_normal(kernel_shape, [seed, index], stddev=0.1),
                name=f"{layer.name}/kernel",
            )
            self.biases[layer.name] = tf.Variable(tf.zeros([layer.filters]), name=f"{layer.name}/bias")
            channels = layer.filters
            geometry = dict(
                kernel=self.kernels[layer.name],
                bias=self.biases[layer.name],
                stride=layer.stride,
                padding=layer.padding,
            )
            if layer.kind == "conv":
                linear = f"{layer.name}/linear"
                operations.append(Op(linear, "conv", (below,), dict(geometry, dilation=1), f"conv {layer.name!r}"))
                operations.append(Op(layer.name, "relu", (linear,), {}, f"conv {layer.name!r}"))
            else:
                operations.append(
                    Op(
                        layer.name,
                        "conv_transpose",
                        (below,),
                        dict(geometry, output=(height, width)),
                        f"deconv {layer.name!r}",
                    )
                )
            below = layer.name
        self._description = Graph(operations, below, INPUT_SHAPE)
        if log:
            for layer in LAYERS:
                log(f"{layer.name:8s} {'x'.join(str(d) for d in self.shapes[layer.name])}")

    @property
    def shapes(self) -> dict[str, tuple]:
        return self._description.shapes

    def graph(self) -> Graph:
        return self._description

    def __call__(self, images, compute_dtype=tf.float32):
        """[B, 460, 345, 3] -> [B, 260, 200, 1] float32."""
        return self._description(images, compute_dtype)
