"""The first projection engine (walks DeconvNet.specs), kept only as the independent reference the tests
compare the Graph engine with on the reference network; the library has one engine (vizdeconv.deconv).

Walking down from the chosen layer, every conv layer is undone by a transposed convolution with its own
kernel (same stride, padding, dilation) and every pooling by unpooling through the recorded switches.
Before each transposed convolution the signal passes the mode's rule:

- `deconvnet` (Zeiler & Fergus 2014): ReLU of the signal; biases unused.
- `bias_subtract`: no rectification; the layer's bias is subtracted (the TF1 tutorial's rule).
- `guided`: guided backpropagation; the deconvnet ReLU masked by where the forward ReLU was active.

In `deconvnet` and `guided` modes a projection of signal s from layer L is exactly the gradient of
sum(s * activation_L) with respect to the image in a network whose ReLU backward rule is replaced.
"""
import tensorflow as tf

from vizdeconv.nn import ops
from vizdeconv.nn.convnet import DeconvNet

MODES = ("deconvnet", "bias_subtract", "guided")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"reconstruction mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def _layer_index(model: DeconvNet, layer: str) -> tuple[int, bool]:
    """(index of the conv layer, whether `layer` names its pooled output)."""
    for index, spec in enumerate(model.specs):
        if layer == spec.name:
            return index, False
        if spec.pool and layer == spec.pool_name:
            return index, True
    names = [n for n in model.shapes if n != "input"]
    raise ValueError(f"unknown layer {layer!r}; the model has {', '.join(names)}")


def project(model: DeconvNet, tensors: dict, layer: str, signal, mode: str = "deconvnet",
            unpool=ops.unpool, compute_dtype=tf.float32):
    """Projects `signal`, shaped like `tensors[layer]`, down to the input.

    Args:
      model: the network whose kernels, biases and layer geometry are used.
      tensors: `model.forward(images, record_switches=True)` for the same images (float32).
      layer: a conv name (e.g. 'conv2') or a pool name (e.g. 'pool2').
      signal: [N, h, w, c] float32, e.g. `tensors[layer]` or a masked copy.
      mode: one of MODES.
      unpool: the unpooling function (benchmarks swap in `ops.unpool_scatter_nd`).
      compute_dtype: tf.float32 (exact) or tf.bfloat16 (about 3x faster where the hardware has it).
    Returns:
      [N, H, W, C_in] float32, the shape of `tensors['input']`.
    """
    return project_many(model, tensors, {layer: signal}, mode, unpool, compute_dtype)[layer]


def project_many(model: DeconvNet, tensors: dict, signals: dict, mode: str = "deconvnet",
                 unpool=ops.unpool, compute_dtype=tf.float32) -> dict:
    """Projects several signals (layer name -> [N, h, w, c]) of the same N images at once.

    Walking down, the signals that have started so far travel stacked along the batch axis, so each
    layer runs one transposed convolution for all of them instead of one per signal.

    Returns:
      layer name -> [N, H, W, C_in] float32.
    """
    dtype = tf.as_dtype(compute_dtype)
    check_mode(mode)
    starts = {layer: _layer_index(model, layer) for layer in signals}
    batch = tf.shape(tensors["input"])[0]
    stack, order = None, []

    def join(names, stack):
        new = [tf.cast(signals[name], dtype) for name in names]
        order.extend(names)
        return tf.concat(([stack] if stack is not None else []) + new, axis=0) if new else stack

    def repeat(tensor):  # per-image tensors, once for every stacked signal
        return tf.tile(tensor, [len(order), 1, 1, 1]) if len(order) > 1 else tensor

    for i in range(max(index for index, _ in starts.values()), -1, -1):
        spec = model.specs[i]
        stack = join([name for name, start in starts.items() if start == (i, True)], stack)
        if stack is not None and spec.pool:
            unpooled = unpool(stack, repeat(tensors[f"{spec.pool_name}_switches"]),
                              [batch * len(order), *model.shapes[spec.name]], spec.pool,
                              spec.effective_pool_stride, spec.pool_padding)
            stack = tf.ensure_shape(unpooled, [None, *model.shapes[spec.name]])
        stack = join([name for name, start in starts.items() if start == (i, False)], stack)
        if stack is None:
            continue
        if mode == "bias_subtract":
            stack = stack - tf.cast(model.biases[i], dtype)
        else:
            stack = tf.nn.relu(stack)
            if mode == "guided":
                stack *= repeat(tf.cast(tensors[spec.name] > 0, dtype))
        below = "input" if i == 0 else _output_name(model, i - 1)
        stack = ops.conv2d_transpose(stack, tf.cast(model.kernels[i], dtype),
                                     [batch * len(order), *model.shapes[below]], spec.stride,
                                     spec.padding, spec.dilation)
        stack = tf.ensure_shape(stack, [None, *model.shapes[below]])
    return dict(zip(order, tf.split(tf.cast(stack, tf.float32), len(order), axis=0)))


def _output_name(model: DeconvNet, index: int) -> str:
    spec = model.specs[index]
    return spec.pool_name if spec.pool else spec.name


def channel_signal(activations, channels, strongest_unit: bool = False):
    """Keeps one feature map per example and zeroes the rest.

    Args:
      activations: [N, h, w, c] float32.
      channels: [N] int, the feature map to keep for each example.
      strongest_unit: keep only that map's single largest activation.
    Returns:
      [N, h, w, c] float32.
    """
    channels = tf.cast(channels, tf.int32)
    depth = tf.shape(activations)[-1]
    mask = tf.one_hot(channels, depth, dtype=activations.dtype)[:, None, None, :]
    signal = activations * mask
    if strongest_unit:
        flat = tf.reshape(signal, [tf.shape(signal)[0], -1])
        keep = tf.one_hot(tf.argmax(flat, axis=1), tf.shape(flat)[1], dtype=signal.dtype)
        signal = tf.reshape(flat * keep, tf.shape(signal))
    return signal


def unit_signal(activations, channels, positions, impulse: bool = False):
    """Keeps one unit per example: channel `channels[i]` at flat position `positions[i]` (row * w + col).

    Args:
      activations: [N, h, w, c] float32.
      channels, positions: [N] int.
      impulse: put 1.0 there instead of the activation (compares networks whose activations differ).
    Returns:
      [N, h, w, c] float32 with one non-zero entry per example (unless that activation is 0).
    """
    shape = tf.shape(activations)
    flat_index = tf.cast(positions, tf.int32) * shape[3] + tf.cast(channels, tf.int32)
    mask = tf.reshape(tf.one_hot(flat_index, shape[1] * shape[2] * shape[3], dtype=activations.dtype),
                      shape)
    return mask if impulse else activations * mask


class Projector:
    """Compiled projections of a model's layers for whole batches; results are float32.

    Args:
      model: the network; its current weights are read at every call.
      mode: one of MODES.
      unpool: the unpooling function.
      compute_dtype: of the forward pass and the projections (tf.float32 or tf.bfloat16).
    """

    def __init__(self, model: DeconvNet, mode: str = "deconvnet", unpool=ops.unpool,
                 compute_dtype=tf.float32):
        self.model = model
        self.mode = check_mode(mode)
        self.unpool = unpool
        self.dtype = tf.as_dtype(compute_dtype)
        # Compiled here rather than with method decorators, which hold the instance only weakly and
        # so break on a temporary such as Projector(model).layers(...).
        for name in ("layers", "channels", "units", "top_channels"):
            setattr(self, name, tf.function(getattr(self, name), reduce_retracing=True))

    def forward(self, images):
        return self.model.forward(images, self.dtype, record_switches=True)

    def layers(self, images, layers: tuple[str, ...]):
        """Projects each whole layer: dict name -> [N, H, W, C] for images [N, H, W, C]."""
        tensors = self.forward(images)
        return project_many(self.model, tensors, {name: tensors[name] for name in layers}, self.mode,
                            self.unpool, self.dtype)

    def channels(self, images, layer: str, channels, strongest_unit: bool = False):
        """Projects one feature map per image: channels [N] int -> [N, H, W, C]."""
        tensors = self.forward(images)
        signal = channel_signal(tensors[layer], channels, strongest_unit)
        return project(self.model, tensors, layer, signal, self.mode, self.unpool, self.dtype)

    def units(self, images, layer: str, channels, positions, impulse: bool = False):
        """Projects one unit per image (see `unit_signal`): [N] channels and positions -> [N, H, W, C]."""
        tensors = self.forward(images)
        signal = unit_signal(tensors[layer], channels, positions, impulse)
        return project(self.model, tensors, layer, signal, self.mode, self.unpool, self.dtype)

    def top_channels(self, image, layer: str, k: int):
        """The k strongest feature maps of one image, each projected alone.

        Args:
          image: [1, H, W, C] float32.
        Returns:
          projections [k, H, W, C] float32 and channels [k] int32, strongest first.
        """
        tensors = self.forward(tf.repeat(image[:1], k, axis=0))
        strength = tf.reduce_max(tensors[layer][0], axis=[0, 1])
        channels = tf.math.top_k(strength, k=k).indices
        signal = channel_signal(tensors[layer], channels)
        return project(self.model, tensors, layer, signal, self.mode, self.unpool, self.dtype), channels
