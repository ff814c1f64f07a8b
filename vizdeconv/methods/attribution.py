"""Class attribution: which pixels made the model give this class its score.

    attr = vizdeconv.Attribution(model, method="gradcam")         # layer=None: the last spatial feature layer
    result = attr.explain(images, target=None)                   # images: [N, H, W, C], what the model takes
    result.maps     # [N, H, W] float32 in [0, 1], each image's map scaled to max 1
    result.raw      # CAMs: [N, h, w] at the layer; pixel methods: [N, H, W, C] signed
    result.targets, result.scores   # [N] the class explained (-1 for a callable target) and its score

Every method runs on the network's `Graph` (the one the Deconvnet projects through), so nested models are
reached by their layers' own names, a reloaded Sequential works like the model it was saved from, and a
model built under `mixed_float16` is computed in float32. The score is the logit: a model that ends in a
softmax (a `Softmax` layer or `activation="softmax"`) is differentiated before it, without changing the
model.

Methods (`METHODS`):
- `gradcam` (Selvaraju et al. 2017): relu(sum_k w_k A_k), w_k = the mean over positions of dS/dA_k.
- `gradcam++` (Chattopadhay et al. 2018), the closed form for an exponential score Y = exp(S):
  alpha = g^2 / (2 g^2 + sum_ij A * g^3) (0 where the denominator is 0), w_k = sum_ij alpha relu(g),
  map relu(sum_k w_k A_k). The paper's map is exp(S) times this one (one constant per image, gone after
  scaling to max 1); leaving it out keeps large logits finite.
- `scorecam` (Wang et al. 2020): each map A_k, upsampled and min-max scaled to [0, 1], masks the image;
  w_k = the target's softmax probability of the masked image (the callable's score for a callable
  target), map relu(sum_k w_k A_k). `max_maps=N` keeps the N maps of largest variance (Faster Score-CAM).
  As in the authors' code, the baseline image's score is not subtracted (a constant per image). A map whose
  spread is at most 1e-5 of the layer's largest value is flat up to rounding and masks to nothing.
- `guided_gradcam` (Selvaraju et al. 2017): the Deconvnet's guided projection of the target's logit (an
  impulse of 1 there) times the Grad-CAM map upsampled to the input; raw [N, H, W, C]. `rectify="all"`
  guides at every activation (a GELU network's, as its run projects), "relu" at ReLUs only.
- `saliency` (Simonyan et al. 2014): dS/dx; raw [N, H, W, C].
- `integrated_gradients` (Sundararajan et al. 2017): (x - x') * the mean of dS/dx over `steps` points of
  the straight path from the baseline x' (midpoint rule); the attributions sum to S(x) - S(x').

`smooth=n` (SmoothGrad, Smilkov et al. 2017) averages a gradient method's raw output over n copies of each
image with Gaussian noise of standard deviation `sigma` x (max - min of that image). The target of every
noisy, masked or path image is the one chosen on the clean image. Pixel methods' maps are each pixel's
largest magnitude over its channels; CAMs are upsampled bilinearly (half-pixel centres) to the input.
`batch_size` bounds how many images (masked copies, path points, noisy samples) run at once; results
do not depend on it.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from vizdeconv.methods.deconvnet import Deconvnet, as_graph
from vizdeconv.nn import ops

METHODS = ("gradcam", "gradcam++", "scorecam", "guided_gradcam", "saliency", "integrated_gradients")
CAM_METHODS = ("gradcam", "gradcam++", "scorecam")  # raw maps at a layer's resolution
LAYER_METHODS = (*CAM_METHODS, "guided_gradcam")  # read a feature layer
GRADIENT_METHODS = ("gradcam", "gradcam++", "guided_gradcam", "saliency", "integrated_gradients")  # smooth= applies
SINGLE_PASS = ("gradcam", "gradcam++", "guided_gradcam", "saliency")  # one forward + backward pass, no copies
CALLABLE_TARGET = -1  # `AttributionResult.targets` of a callable target


@dataclasses.dataclass
class AttributionResult:
    """What `Attribution.explain` returns.

    Attributes:
      maps: [N, H, W] float32 >= 0 at the input's size, each image's map scaled to max 1 (all 0 where the
        method found nothing).
      raw: the method's own output: [N, h, w] at the layer for CAMs, [N, H, W, C] signed for pixel methods.
      targets: [N] int32, the class (output unit) explained; -1 for a callable target.
      scores: [N] float32, the target's score (the logit, or the callable's value) on the clean image.
      method, layer: what produced it (layer None for pixel methods).
    """

    maps: np.ndarray
    raw: np.ndarray
    targets: np.ndarray
    scores: np.ndarray
    method: str
    layer: str | None


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"attribution method must be one of {', '.join(METHODS)}, got {method!r}")
    return method


def logit_names(graph) -> list[str]:
    """Each output's tensor before a final softmax (the logits), the first output first."""
    names = []
    for name in graph.outputs:
        op = graph.by_name[name]
        names.append(op.inputs[0] if op.kind == "softmax" else name)
    return names


def default_layer(graph) -> str:
    """The last layer with spatial feature maps ([h, w, C], h * w > 1): Grad-CAM's usual choice. A map of
    one position has nothing to localize, so on small inputs this may lie before the last convolution
    (MobileNetV2 at 32x32: block_13_expand_relu, 2x2; at 64x64: out_relu)."""
    spatial = [name for name in graph.feature_layers if np.prod(graph.shapes[graph.resolve(name)][:2]) > 1]
    if not spatial:
        raise ValueError("the model has no layer with spatial feature maps; CAM methods need one")
    return spatial[-1]


def _spatial_layer(graph, layer: str) -> str:
    name = graph.resolve(layer)
    shape = graph.shapes[name]
    if len(shape) != 3:
        examples = ", ".join(graph.feature_layers[-3:])
        raise ValueError(
            f"layer {layer!r} has no spatial feature maps (its shape is {list(shape)}); "
            f"name a layer with [h, w, C] maps, e.g. {examples}"
        )
    return name


def scale_maps(maps) -> np.ndarray:
    """[N, H, W] >= 0 -> each map divided by its maximum (maps without a positive value stay 0)."""
    maps = np.maximum(np.asarray(maps, np.float32), 0.0)
    peak = maps.reshape(len(maps), -1).max(axis=1) if maps.size else np.zeros(0, np.float32)
    return np.where(peak[:, None, None] > 0, maps / np.where(peak > 0, peak, 1.0)[:, None, None], 0.0).astype(
        np.float32
    )


def upsample(maps, size) -> np.ndarray:
    """[N, h, w] -> [N, H, W] float32, bilinear with half-pixel centres (as cv2.resize)."""
    resized = tf.image.resize(tf.convert_to_tensor(maps, tf.float32)[..., None], size, method="bilinear")
    return resized[..., 0].numpy()


def _chunks(count: int, size: int):
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


class Attribution:
    """One attribution method over any network the Deconvnet takes.

    Args:
      model: a keras.Model (one image input; several outputs allowed), the reference convnet or a Graph.
      method: one of METHODS.
      layer: the feature layer of CAM methods and Guided Grad-CAM (None: `default_layer`); nested models'
        layers by their own names.
      smooth: SmoothGrad samples per image (0: off); gradient methods only.
      sigma: SmoothGrad's noise, as a fraction of each image's value range.
      steps: integrated gradients' points on the path.
      baseline: integrated gradients' start: a number (0.0: black in the model's input space) or an image
        [H, W, C].
      max_maps: Score-CAM keeps the maps of largest variance (None: all).
      batch_size: images run at once by every method (masked copies, path points, noisy samples).
      seed: SmoothGrad's noise.
      rectify: where Guided Grad-CAM's guided rule replaces the gradient (`Deconvnet`'s `rectify`); the other
        methods take the model's own gradient and ignore it.
    """

    # 11 parameters: the settings, keyword-only after the method and layer, as Captum and Xplique take them.
    def __init__(
        self,
        model,
        method: str = "gradcam",
        layer: str | None = None,
        *,
        smooth: int = 0,
        sigma: float = 0.15,
        steps: int = 64,
        baseline=0.0,
        max_maps: int | None = None,
        batch_size: int = 32,
        seed: int = 0,
        rectify: str = "relu",
    ):
        self.graph = as_graph(model)
        self.method = check_method(method)
        self._check_settings(smooth, sigma, steps, max_maps, batch_size)
        self.smooth, self.sigma, self.steps, self.max_maps = int(smooth), float(sigma), int(steps), max_maps
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.baseline = self._baseline(baseline)
        self.logits = logit_names(self.graph)
        self.layer = None
        if method in LAYER_METHODS:
            self.layer = layer if layer is not None else default_layer(self.graph)
            self._tensor = _spatial_layer(self.graph, self.layer)
        else:
            self._tensor = self.graph.input  # pixel methods differentiate with respect to the image
        self._guided = Deconvnet(self.graph, mode="guided", rectify=rectify) if method == "guided_gradcam" else None
        self._functions: dict = {}

    def _check_settings(self, smooth, sigma, steps, max_maps, batch_size) -> None:
        if smooth < 0 or (smooth and self.method not in GRADIENT_METHODS):
            raise ValueError(f"smooth must be 0 or a positive count for {', '.join(GRADIENT_METHODS)}, got {smooth}")
        if sigma < 0 or steps < 1 or batch_size < 1:
            raise ValueError(f"sigma >= 0, steps >= 1 and batch_size >= 1, got {sigma}, {steps}, {batch_size}")
        if max_maps is not None and max_maps < 1:
            raise ValueError(f"max_maps must be a positive count or None, got {max_maps}")

    def _baseline(self, baseline) -> np.ndarray:
        shape = self.graph.input_shape
        value = np.asarray(baseline, np.float32)
        if value.ndim == 0:
            return np.full(shape, value, np.float32)
        if value.shape != shape:
            raise ValueError(f"baseline image has shape {value.shape}, the model takes {shape}")
        return value

    # -- the compiled pieces: one tf.function per static setting, held by the instance --------------------

    def _compiled(self, method: str, *static):
        """One tf.function per (method, static settings), a target function by its id (`ops.compiled` holds it,
        so the id is not reused while the entry is kept): explaining with several targets warns of no retracing."""
        key = (method, *(id(value) if callable(value) else value for value in static))
        if key not in self._functions:
            self._functions[key] = ops.compiled(getattr(self, method), *static, reduce_retracing=True)
        return self._functions[key]

    def _scores(self, tensors, targets, target_fn):
        """The [n] scores of the chosen targets (-1: the top class) and the targets used."""
        logits = [tensors[name] for name in self.logits]
        if target_fn is not None:
            scores = tf.reshape(tf.cast(target_fn(logits[0] if len(logits) == 1 else logits), tf.float32), [-1])
            return scores, tf.fill(tf.shape(scores), CALLABLE_TARGET)
        first = tf.reshape(logits[0], [tf.shape(logits[0])[0], -1])
        chosen = tf.where(targets < 0, tf.argmax(first, axis=1, output_type=tf.int32), targets)
        return tf.gather(first, chosen, batch_dims=1), chosen

    def _gradient_step(self, target_fn, images, targets):
        with tf.GradientTape() as tape:
            tape.watch(images)
            tensors = self.graph.forward(images, tf.float32, record_switches=False, until=self.logits)
            feature = images if self._tensor == self.graph.input else tf.cast(tensors[self._tensor], tf.float32)
            scores, chosen = self._scores(tensors, targets, target_fn)
        return feature, tape.gradient(scores, feature), scores, chosen

    def _gradient_function(self, target_fn):
        return self._compiled("_gradient_step", target_fn)

    def _output_step(self, target_fn, probabilities: bool, images, targets):
        tensors = self.graph.forward(images, tf.float32, record_switches=False, until=(*self.logits, self._tensor))
        if probabilities and target_fn is None:
            tensors = dict(tensors, **{self.logits[0]: tf.nn.softmax(tensors[self.logits[0]])})
        scores, chosen = self._scores(tensors, targets, target_fn)
        return tf.cast(tensors[self._tensor], tf.float32), scores, chosen

    def _output_function(self, target_fn, probabilities: bool):
        return self._compiled("_output_step", target_fn, bool(probabilities))

    # -- explain ---------------------------------------------------------------------------------------

    def explain(self, images, target=None) -> AttributionResult:
        """Attributes each image's target score to its pixels.

        Args:
          images: [N, H, W, C] float, what the model takes (preprocessed).
          target: None (each image's top class), an int, [N] ints, or a callable from the model's outputs
            before a final softmax ([N, classes], or the list of a model's several outputs) to [N] scores.
        Returns:
          an AttributionResult.
        Raises:
          ValueError: images of another shape, a target out of range, or a callable target for
            guided_gradcam (its guided projection starts from one class's logit).
        """
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or tuple(images.shape[1:]) != self.graph.input_shape:
            raise ValueError(f"images have shape {images.shape[1:]}, the model takes {self.graph.input_shape}")
        target_fn, targets = self._targets(target, len(images))
        if self.method in SINGLE_PASS and not self.smooth:  # the gradient pass gives the scores and targets too
            raw, scores, chosen = self._gradient_pass(images, targets, target_fn)
        else:  # the target is chosen on the clean image, then fixed for every copy of it
            features, scores, chosen = self._clean_pass(images, targets, target_fn)
            if self.method == "scorecam":
                raw = self._scorecam(images, features, chosen, target_fn)
            elif self.smooth:
                raw = self._smoothgrad(images, chosen, target_fn)
            else:
                raw = self._raw(images, chosen, target_fn)
        if self.method in CAM_METHODS:
            maps = upsample(raw, self.graph.input_shape[:2])
        else:
            maps = np.abs(raw).max(axis=-1)
        return AttributionResult(scale_maps(maps), raw, chosen, scores, self.method, self.layer)

    def _targets(self, target, count: int):
        """(callable or None, [N] int32 with -1 for the top class)."""
        if callable(target):
            if self.method == "guided_gradcam":
                raise ValueError("guided_gradcam explains a class: pass an int or [N] ints as target, not a callable")
            return target, np.full(count, -1, np.int32)
        classes = self.graph.shapes[self.logits[0]][-1]
        if target is None:
            return None, np.full(count, -1, np.int32)
        values = np.asarray(target)
        if values.dtype.kind not in "iu" or values.ndim > 1 or (values.ndim == 1 and len(values) != count):
            raise ValueError(f"target must be None, an int, {count} ints or a callable, got {target!r}")
        values = np.broadcast_to(values, [count]).astype(np.int32)
        if values.min() < 0 or values.max() >= classes:
            bad = values.min() if values.min() < 0 else values.max()
            raise ValueError(f"target {bad} is out of range: the model has {classes} outputs (0..{classes - 1})")
        return None, values

    def _clean_pass(self, images, targets, target_fn):
        """The layer's maps [N, h, w, C] (Score-CAM), the scores [N] and the targets [N] on the clean images."""
        function = self._output_function(target_fn, probabilities=False)
        parts = [
            function(tf.constant(images[s]), tf.constant(targets[s])) for s in _chunks(len(images), self.batch_size)
        ]
        return (np.concatenate([p[i].numpy() for p in parts]) for i in range(3))

    def _raw(self, images, targets, target_fn) -> np.ndarray:
        """The method's raw output for images [M, H, W, C] and their fixed targets [M]."""
        if self.method == "integrated_gradients":
            return np.concatenate(
                [self._integrated(images[i : i + 1], targets[i], target_fn) for i in range(len(images))]
            )
        return self._gradient_pass(images, targets, target_fn)[0]

    def _gradient_pass(self, images, targets, target_fn):
        """One forward and backward pass per batch: (raw [M, ...], scores [M], targets used [M])."""
        function = self._gradient_function(target_fn)
        parts, scores, chosen = [], [], []
        for part in _chunks(len(images), self.batch_size):
            feature, gradient, score, used = function(tf.constant(images[part]), tf.constant(targets[part]))
            parts.append(self._combine(feature.numpy(), gradient.numpy(), images[part], used.numpy()))
            scores.append(score.numpy())
            chosen.append(used.numpy())
        return np.concatenate(parts), np.concatenate(scores), np.concatenate(chosen).astype(np.int32)

    def _combine(self, feature, gradient, images, targets) -> np.ndarray:
        """One batch's raw output from the layer's (or input's) values and the score's gradient there."""
        if self.method == "saliency":
            return gradient
        if self.method == "gradcam++":
            squared, cubed = gradient**2, gradient**3
            denominator = 2 * squared + feature.sum(axis=(1, 2), keepdims=True) * cubed
            alpha = np.divide(squared, denominator, out=np.zeros_like(squared), where=denominator != 0)
            weights = (alpha * np.maximum(gradient, 0)).sum(axis=(1, 2))
        else:
            weights = gradient.mean(axis=(1, 2))
        cam = np.maximum(np.einsum("nhwc,nc->nhw", feature, weights), 0)
        if self.method != "guided_gradcam":
            return cam
        zeros = np.zeros(len(images), np.int32)
        guided = self._guided.project(images, self.logits[0], targets, zeros, impulse=True).numpy()
        return guided * upsample(cam, self.graph.input_shape[:2])[..., None]

    def _integrated(self, image, target, target_fn) -> np.ndarray:
        """Integrated gradients of one image [1, H, W, C] -> [1, H, W, C], path points in batches."""
        alphas = (np.arange(self.steps, dtype=np.float32) + 0.5) / self.steps
        difference = image[0] - self.baseline
        function = self._gradient_function(target_fn)
        total = np.zeros_like(difference)
        for part in _chunks(self.steps, self.batch_size):
            points = self.baseline + alphas[part, None, None, None] * difference
            _, gradient, _, _ = function(tf.constant(points), tf.constant(np.repeat(target, len(points))))
            total += gradient.numpy().sum(axis=0)
        return (difference * total / self.steps)[None]

    def _smoothgrad(self, images, targets, target_fn) -> np.ndarray:
        """The mean raw output over `smooth` noisy copies of each image; the noise does not depend on
        `batch_size` (drawn for all samples first)."""
        rng = np.random.default_rng(self.seed)
        span = images.reshape(len(images), -1).max(axis=1) - images.reshape(len(images), -1).min(axis=1)
        noise = rng.standard_normal((len(images), self.smooth, *images.shape[1:]), dtype=np.float32)
        noisy = images[:, None] + noise * (self.sigma * span)[:, None, None, None, None]
        samples = noisy.reshape(-1, *images.shape[1:])
        raw = self._raw(samples, np.repeat(targets, self.smooth), target_fn)
        return raw.reshape(len(images), self.smooth, *raw.shape[1:]).mean(axis=1)

    def _scorecam(self, images, features, targets, target_fn) -> np.ndarray:
        """Score-CAM's [N, h, w] from the layer's maps [N, h, w, C] on the clean images."""
        function = self._output_function(target_fn, probabilities=True)
        size = self.graph.input_shape[:2]
        cams = []
        for image, feature, target in zip(images, features, targets):
            channels = np.arange(feature.shape[-1])
            if self.max_maps is not None and self.max_maps < len(channels):
                variance = feature.reshape(-1, feature.shape[-1]).var(axis=0)
                channels = np.sort(np.argsort(-variance, kind="stable")[: self.max_maps])
            masks = upsample(np.moveaxis(feature[..., channels], -1, 0), size)
            low = masks.min(axis=(1, 2), keepdims=True)
            span = masks.max(axis=(1, 2), keepdims=True) - low
            # a map flat up to rounding carries no location: scaled to [0, 1] its noise would be a whole mask,
            # different from one thread count or batch size to the next
            flat = span <= 1e-5 * max(float(np.abs(feature).max()), np.finfo(np.float32).tiny)
            masks = np.divide(masks - low, span, out=np.zeros_like(masks), where=~flat)
            weights = np.zeros(feature.shape[-1], np.float32)
            for part in _chunks(len(channels), self.batch_size):
                masked = image[None] * masks[part, ..., None]
                _, scores, _ = function(tf.constant(masked), tf.constant(np.repeat(target, len(masked))))
                weights[channels[part]] = scores.numpy()
            cams.append(np.maximum(np.einsum("hwc,c->hw", feature, weights), 0))
        return np.stack(cams).astype(np.float32)


def explain(model, images, method: str = "gradcam", target=None, **settings) -> AttributionResult:
    """`Attribution(model, method, **settings).explain(images, target)` in one call."""
    return Attribution(model, method, **settings).explain(images, target)
