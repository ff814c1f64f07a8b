"""Feature visualization: an image optimized to excite one channel, the fourth view of the Deep
Visualization Toolbox beside the activation, the deconvnet projection and the top-9.

Two methods, one calling convention:
- "fourier" (Olah et al. 2017, Distill "Feature Visualization"): the image is a 1/f-scaled Fourier
  spectrum with decorrelated colour and a sigmoid, optimized with Adam through random jitter, scale and
  rotation at every step.
- "pixel" (Yosinski et al. 2015): gradient ascent on the pixels themselves, with L2 decay, a Gaussian
  blur every few steps and clipping of the pixels with small norm or small contribution.

Every requested channel gets its own image in one batch; image i maximizes channel i, so the whole layer
costs one optimization. Each image's randomness (start, transforms) is drawn from (seed, channel, step)
with stateless generators, so a channel's image does not depend on which other channels share its batch.
"""

import dataclasses
import math
import time

import numpy as np
import tensorflow as tf

from vizdeconv.methods.deconvnet import as_graph
from vizdeconv.nn import ops, registry
from vizdeconv.nn import preprocess as preprocess_lib

METHODS = ("fourier", "pixel")
DEFAULT_STEPS = 256

# Lucid's colour decorrelation: the square root of ImageNet's colour covariance, columns normalized.
_COLOR_SQRT = np.asarray([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
_COLOR_SQRT = _COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0))


@dataclasses.dataclass
class Optimized:
    """What `FeatureVisualization.optimize` returns.

    Attributes:
      images: [C, H, W, 3] float32 in [0, 1], one per requested channel.
      activations: [C] float32, the strongest unit of each target channel in its optimized image.
      channels: [C] int, the channels, in the order of `images`.
      layer, method, steps: what was optimized and how; seconds: wall time of the optimization.
    """

    images: np.ndarray
    activations: np.ndarray
    channels: np.ndarray
    layer: str
    method: str
    steps: int
    seconds: float


@dataclasses.dataclass
class Regularizers:
    """The knobs of both methods; the defaults are those the pictures in the README were made with.

    Attributes:
      learning_rate: None for the method's own (Adam 0.05 on the spectrum; 0.02 of the pixel range per
        pixel step with the gradient normalized per image).
      jitter: largest shift in pixels (None: input size / 28, Lucid's 8 at 224); scale: largest relative
        zoom; degrees: largest rotation.
      decay: pixel method's L2 decay per step; blur_every, blur_sigma: its Gaussian blur (sigma in pixels,
        None: input size / 112); norm_percentile, contribution_percentile: share of pixels (0..100) with the
        smallest norm, or smallest |pixel * gradient|, set back to grey every blur step.
    """

    learning_rate: float | None = None
    jitter: int | None = None
    scale: float = 0.1
    degrees: float = 10.0
    decay: float = 1e-3
    blur_every: int = 4
    blur_sigma: float | None = None
    norm_percentile: float = 10.0
    contribution_percentile: float = 10.0


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return method


def frequencies(height: int, width: int) -> np.ndarray:
    """|f| of the real 2-D spectrum of a height x width image: [height, width // 2 + 1] float32."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    return np.sqrt(fx * fx + fy * fy).astype(np.float32)


def fourier_pixels(spectrum, height: int, width: int):
    """The fourier parametrization: spectrum [N, 2, 3, height, width // 2 + 1] float32 (real, imaginary)
    -> pixels [N, height, width, 3] in (0, 1): 1/f amplitude scaling, inverse FFT, colour decorrelation,
    sigmoid (Lucid's `fft_image` then `to_valid_rgb`)."""
    scale = 1.0 / np.maximum(frequencies(height, width), 1.0 / max(height, width))
    scale = tf.constant(scale * math.sqrt(height * width), tf.complex64)
    complex_spectrum = tf.complex(spectrum[:, 0], spectrum[:, 1]) * scale
    image = tf.signal.irfft2d(complex_spectrum, fft_length=[height, width]) / 4.0  # [N, 3, h, w]
    image = tf.transpose(image, [0, 2, 3, 1])
    return tf.sigmoid(tf.einsum("nhwc,dc->nhwd", image, _COLOR_SQRT))


def random_transforms(images, seeds, jitter: float, scale: float, degrees: float):
    """Each image shifted, zoomed and rotated about its centre by its own random amounts, at its own size.

    Args:
      images: [N, H, W, 3] float32.
      seeds: [N, 2] int32 stateless seeds, one per image.
    Returns:
      [N, H, W, 3] float32 (edges filled by reflection).
    """
    height, width = images.shape[1], images.shape[2]
    draws = tf.map_fn(
        lambda seed: tf.random.stateless_uniform([4], seed, -1.0, 1.0), seeds, fn_output_signature=tf.float32
    )
    dx, dy = draws[:, 0] * jitter, draws[:, 1] * jitter
    zoom = 1.0 + draws[:, 2] * scale
    angle = draws[:, 3] * degrees * math.pi / 180.0
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    # The matrix maps each output pixel to where it is read from in the input.
    matrices = tf.stack([cos, sin, cx - cos * cx - sin * cy + dx, -sin, cos, cy + sin * cx - cos * cy + dy], 1)
    return ops.warp(images, matrices, "REFLECT")


def gaussian_blur(images, sigma: float):
    """[N, H, W, C] blurred by a Gaussian of `sigma` pixels (separable, reflected edges)."""
    radius = max(1, int(math.ceil(2 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    depth = images.shape[-1]
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    rows = tf.constant(np.tile(taps[:, None, None, None], [1, 1, depth, 1]))
    cols = tf.constant(np.tile(taps[None, :, None, None], [1, 1, depth, 1]))
    blurred = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(blurred, cols, [1, 1, 1, 1], "VALID")


def _below_percentile(values, percentile: float):
    """[N, H, W] -> [N, H, W] bool: the entries of each image under its `percentile` (0..100)."""
    flat = tf.reshape(values, [tf.shape(values)[0], -1])
    count = flat.shape[1]
    rank = min(count - 1, int(count * percentile / 100.0))
    threshold = tf.sort(flat, axis=1)[:, rank]
    return values < threshold[:, None, None]


def pixels_to_inputs(graph, preprocess):
    """The function [N, H, W, 3] pixels in [0, 1] -> model inputs that `preprocess` names: "none" (the
    identity), one of the explorer's choices (`nn.preprocess.CHOICES`), a `Preprocess`, or a function
    (returned as is)."""
    if isinstance(preprocess, str):
        if preprocess == "none":
            return _identity
        return preprocess_lib.for_model(graph, preprocess).from_unit
    if isinstance(preprocess, preprocess_lib.Preprocess):
        return preprocess.from_unit
    return preprocess


class FeatureVisualization:
    """Images optimized to excite the channels of one layer of any network `Deconvnet` takes.

    Args:
      model: a keras.Model, the reference convnet (vizdeconv.load_model), or a Graph.
      method: "fourier" (Olah et al. 2017) or "pixel" (Yosinski et al. 2015).
      transforms: random jitter, zoom and rotation of the image at every step.
      preprocess: how [0, 1] pixels become model inputs: one of the explorer's names (`nn.preprocess.CHOICES`;
        "auto": `raw` where the model rescales its pixels itself, else per-image standardization, as for the
        reference run), "none" (the model takes [0, 1] pixels), a `Preprocess`, or a differentiable function
        [N, H, W, 3] pixels in [0, 1] -> model inputs [N, *input_shape].
      regularizers: `Regularizers`, the methods' knobs.
    """

    def __init__(self, model, method: str = "fourier", transforms: bool = True, preprocess="auto", regularizers=None):
        self.graph = as_graph(model)
        self.method = check_method(method)
        self.transforms = bool(transforms)
        preprocess = pixels_to_inputs(self.graph, preprocess)
        if not callable(preprocess):
            raise ValueError(
                f"preprocess must be a name, a Preprocess or a function of [0, 1] pixels, got {preprocess!r}"
            )
        self.preprocess = preprocess
        self.regularizers = regularizers or Regularizers()
        self.height, self.width, self.depth = self.graph.input_shape
        # One compiled loop of all steps per layer and unit, traced once per batch shape and kept: the tab
        # asks for one channel at a time, and the explorer for the same batch size layer after layer.
        self._loops: dict = {}
        if self.depth not in (1, 3):
            raise ValueError(f"feature visualization makes RGB or grey images; the model takes {self.depth} channels")

    def _objective(self, name, unit, pixels, channels):
        """[N] the objective of each image for its own channel (mean of the map, or its centre unit)."""
        if self.depth == 1:  # a grey model sees the pictures' luminance
            pixels = tf.reduce_mean(pixels, axis=-1, keepdims=True)
        inputs = self.preprocess(pixels)
        tensors = self.graph.forward(inputs, record_switches=False, until=(name,))
        activations = tf.cast(tensors[name], tf.float32)
        picked = tf.gather(activations, channels, axis=-1, batch_dims=1)  # [N, ...] the own channel
        if len(activations.shape) == 2:
            return picked, picked
        strongest = tf.reduce_max(tf.reshape(picked, [tf.shape(picked)[0], -1]), axis=1)
        # A rectified unit that is off has no gradient and would stay off (a whole map is off on a grey
        # start in networks with BatchNormalization): until the target fires, its input, the value before
        # the rectifier, leads.
        op = self.graph.by_name[name]
        before = picked
        if registry.kind(op).rectifier:
            before = tf.gather(tf.cast(tensors[op.inputs[0]], tf.float32), channels, axis=-1, batch_dims=1)
        if unit == "center":
            row, col = activations.shape[1] // 2, activations.shape[2] // 2
            centre = picked[:, row, col]
            off = tf.stop_gradient(tf.cast(centre <= 0, centre.dtype))
            return centre + off * before[:, row, col], strongest
        mean = tf.reduce_mean(picked, axis=[1, 2])
        off = tf.stop_gradient(tf.cast(mean <= 0, mean.dtype))
        return mean + off * tf.reduce_mean(before, axis=[1, 2]), strongest

    def _check(self, layer, channels, unit, steps):
        name = self.graph.resolve(layer)
        depth = self.graph.shapes[name][-1]
        if channels is None:
            channels = np.arange(depth)
        channels = np.asarray(channels, np.int64).reshape(-1)
        if channels.size == 0:
            raise ValueError("no channel to optimize: pass channels=None for every channel")
        bad = channels[(channels < 0) | (channels >= depth)]
        if bad.size:
            raise ValueError(
                f"channel {int(bad[0])} is out of range: layer {layer!r} has {depth} channels (0..{depth - 1})"
            )
        if unit not in (None, "center"):
            raise ValueError(f"unit must be None (the channel's mean) or 'center', got {unit!r}")
        steps = DEFAULT_STEPS if steps is None else int(steps)
        if steps <= 0:
            raise ValueError(f"steps must be positive, got {steps}")
        return name, channels, steps

    def optimize(
        self, layer: str, channels=None, unit=None, steps: int | None = None, seed: int = 0, batch_size=None
    ) -> Optimized:
        """Optimizes one image per channel of `layer`, all together.

        Args:
          layer: a layer name (a Dense layer's channels are its units, e.g. class logits).
          channels: ints, or None for every channel of the layer.
          unit: None (maximize the channel's mean) or "center" (its centre unit).
          steps: optimization steps (None: 256).
          seed: the images' randomness; a channel's image depends on (seed, channel) only.
          batch_size: channels optimized at once (None: all); the images do not depend on it, only the
            memory does (a 224x224 network cannot backpropagate 2,048 images at once on most machines).
        Returns:
          Optimized, with images [C, H, W, 3] in [0, 1] and activations [C].
        """
        name, channels, steps = self._check(layer, channels, unit, steps)
        if batch_size is not None and 0 < batch_size < len(channels):
            parts = [
                self.optimize(layer, channels[i : i + batch_size], unit, steps, seed)
                for i in range(0, len(channels), batch_size)
            ]
            return dataclasses.replace(
                parts[0],
                images=np.concatenate([p.images for p in parts]),
                activations=np.concatenate([p.activations for p in parts]),
                channels=channels,
                seconds=sum(p.seconds for p in parts),
            )
        started = time.perf_counter()
        count, h, w = len(channels), self.height, self.width
        seeds = np.stack([np.full(count, seed, np.int64) * 100_003 + channels, np.zeros(count, np.int64)], 1)
        shape = [2, 3, h, w // 2 + 1] if self.method == "fourier" else [h, w, 3]  # one image's parameters
        start = tf.map_fn(
            lambda s: tf.random.stateless_normal(shape, s, stddev=0.01),
            tf.constant(seeds),
            fn_output_signature=tf.float32,
        )
        channel_tensor = tf.constant(channels, tf.int32)
        optimized = self._loop(name, unit)(start, channel_tensor, tf.constant(seeds[:, 0]), tf.constant(steps))
        pixels = self.pixels(optimized)
        _, strongest = self._objective(name, unit, pixels, channel_tensor)
        return Optimized(
            images=pixels.numpy(),
            activations=strongest.numpy(),
            channels=channels,
            layer=layer,
            method=self.method,
            steps=steps,
            seconds=time.perf_counter() - started,
        )

    def pixels(self, x):
        """The images [N, H, W, 3] in [0, 1] that the optimized parameters x stand for (a spectrum
        [N, 2, 3, H, W // 2 + 1] or pixels - 0.5 [N, H, W, 3])."""
        if self.method == "fourier":
            return fourier_pixels(x, self.height, self.width)
        return tf.clip_by_value(x + 0.5, 0.0, 1.0)

    def _transformed(self, pixels, seeds):
        if not self.transforms:
            return pixels
        r = self.regularizers
        jitter = r.jitter if r.jitter is not None else max(1.0, self.height / 28.0)
        return random_transforms(pixels, seeds, jitter, r.scale, r.degrees)

    def _loop(self, name: str, unit):
        """The compiled `_steps` of one layer and unit, not one function of the layer's name (`ops.compiled`: no
        retracing warning when the explorer optimizes layer after layer)."""
        if (name, unit) not in self._loops:
            self._loops[name, unit] = ops.compiled(self._steps, name, unit)
        return self._loops[name, unit]

    def _steps(self, name, unit, x, channels, seeds, steps):
        """x [N, ...] after `steps` updates; image i's randomness at step t is seeded by (seeds[i], t + 1)."""
        update = self._fourier_update if self.method == "fourier" else self._pixel_update
        state = (tf.zeros_like(x), tf.zeros_like(x))
        for step in tf.range(steps):
            step_seeds = tf.stack([seeds, tf.fill(tf.shape(seeds), tf.cast(step, tf.int64) + 1)], 1)
            x, state = update(name, unit, x, state, channels, step_seeds, step)
        return x

    def _gradient(self, name, unit, x, channels, seeds):
        with tf.GradientTape() as tape:
            tape.watch(x)
            objective, _ = self._objective(name, unit, self._transformed(self.pixels(x), seeds), channels)
            total = tf.reduce_sum(objective)
        return tape.gradient(total, x)

    # 7 parameters: the tensors of one compiled step, passed explicitly so the trace sees them.
    def _fourier_update(self, name, unit, x, state, channels, seeds, step):
        """Adam (as keras.optimizers.Adam computes it) ascending the objective; state = (m, v)."""
        gradient = -self._gradient(name, unit, x, channels, seeds)
        m, v = state
        beta1, beta2, t = 0.9, 0.999, tf.cast(step + 1, tf.float32)
        m = beta1 * m + (1.0 - beta1) * gradient
        v = beta2 * v + (1.0 - beta2) * tf.square(gradient)
        rate = (self.regularizers.learning_rate or 0.05) * tf.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
        return x - rate * m / (tf.sqrt(v) + 1e-7), (m, v)

    # 7 parameters: the tensors of one compiled step, passed explicitly so the trace sees them.
    def _pixel_update(self, name, unit, x, state, channels, seeds, step):
        r = self.regularizers
        gradient = self._gradient(name, unit, x, channels, seeds)
        # Normalized per image, so every channel moves at the same pace whatever its activation scale.
        gradient /= tf.reduce_mean(tf.abs(gradient), axis=[1, 2, 3], keepdims=True) + 1e-12
        x = (x + (r.learning_rate or 0.02) * gradient) * (1.0 - r.decay)

        def regularized():
            y = gaussian_blur(x, r.blur_sigma or max(0.3, self.height / 112.0))
            if r.norm_percentile > 0:
                y = tf.where(_below_percentile(tf.norm(y, axis=-1), r.norm_percentile)[..., None], 0.0, y)
            if r.contribution_percentile > 0:
                contribution = tf.reduce_sum(tf.abs(y * gradient), axis=-1)
                y = tf.where(_below_percentile(contribution, r.contribution_percentile)[..., None], 0.0, y)
            return y

        x = tf.cond(step % r.blur_every == r.blur_every - 1, regularized, lambda: x)
        return tf.clip_by_value(x, -0.5, 0.5), state


def _identity(pixels):
    return pixels
