"""Faithfulness of attribution maps: deletion and insertion (Petsiuk et al. 2018, "RISE").

    curve = vizdeconv.metrics.deletion(model, images, result.maps, target=result.targets)
    curve.fractions     # [S + 1] 0, 1/S, ..., 1: the share of pixels removed (or inserted)
    curve.probabilities # [N, S + 1] the target's probability at each fraction
    curve.auc           # [N] area under that curve (trapezoid rule over the fractions)

Pixels are taken in order of their map value, most attributed first (ties: in raster order). Deletion
replaces them with a `substrate` (default "zero": the value 0 in the model's input space, as RISE's
deletion); a faithful map makes the probability fall fast: low AUC is good. Insertion starts from the
substrate (default "blur": the image blurred by a Gaussian of `blur_sigma` pixels, as RISE's insertion)
and puts the original pixels back; a faithful map makes it rise fast: high AUC is good. The probability is
the softmax of the logits before any final softmax (the model's own probability where it ends in one).
"""

import dataclasses

import numpy as np
import tensorflow as tf

from vizdeconv.methods.deconvnet import as_graph
from vizdeconv.nn import ops

SUBSTRATES = ("zero", "blur")


@dataclasses.dataclass
class Curve:
    """A deletion or insertion curve per image.

    Attributes:
      fractions: [S + 1] float32, the share of pixels changed, 0 to 1.
      probabilities: [N, S + 1] float32, the target's probability at each fraction.
      auc: [N] float32, the area under each image's curve.
      targets: [N] int32, the classes measured.
      kind: "deletion" or "insertion"; substrate: what replaced (or started) the pixels.
    """

    fractions: np.ndarray
    probabilities: np.ndarray
    auc: np.ndarray
    targets: np.ndarray
    kind: str
    substrate: str


def gaussian_blur(images, sigma: float) -> np.ndarray:
    """images [N, H, W, C] blurred by a separable Gaussian of `sigma` pixels (edges reflected)."""
    images = tf.convert_to_tensor(images, tf.float32)
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    channels = images.shape[-1]
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
    rows = tf.tile(taps.reshape(-1, 1, 1, 1), [1, 1, channels, 1])
    columns = tf.tile(taps.reshape(1, -1, 1, 1), [1, 1, channels, 1])
    blurred = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(blurred, columns, [1, 1, 1, 1], "VALID").numpy()


def _substrate(images: np.ndarray, substrate: str, blur_sigma: float | None) -> np.ndarray:
    if substrate not in SUBSTRATES:
        raise ValueError(f"substrate must be one of {', '.join(SUBSTRATES)}, got {substrate!r}")
    if substrate == "zero":
        return np.zeros_like(images)
    sigma = blur_sigma if blur_sigma is not None else max(images.shape[1:3]) / 16
    return gaussian_blur(images, sigma)


# 9 parameters: the model, its inputs, maps and targets, and the curve's settings shared by deletion and insertion.
def _curve(kind, model, images, maps, target, steps, substrate, blur_sigma, batch_size) -> Curve:
    graph = as_graph(model)
    images = np.asarray(images, np.float32)
    maps = np.asarray(maps, np.float32)
    count, height, width = images.shape[:3]
    if maps.shape != (count, height, width):
        raise ValueError(f"maps have shape {maps.shape}, expected {(count, height, width)} (one per image, its size)")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps}, {batch_size}")
    filler = _substrate(images, substrate, blur_sigma)
    probabilities_of = ops.compiled(_probabilities, graph, reduce_retracing=True)  # one per curve, no warning
    clean = np.concatenate([probabilities_of(images[i : i + batch_size]).numpy() for i in range(0, count, batch_size)])
    targets = _targets(target, clean)
    fractions = np.linspace(0, 1, steps + 1).astype(np.float32)
    pixels = height * width
    counts = np.round(fractions * pixels).astype(np.int64)
    # rank[i, p]: the place of pixel p in image i's order, most attributed first (stable: raster order on ties)
    order = np.argsort(-maps.reshape(count, -1), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(pixels)[None].repeat(count, 0), axis=1)
    variants = [(i, s) for i in range(count) for s in range(steps + 1)]
    probabilities = np.zeros((count, steps + 1), np.float32)
    for start in range(0, len(variants), batch_size):
        chunk = variants[start : start + batch_size]
        batch = []
        for i, s in chunk:
            changed = (rank[i] < counts[s]).reshape(height, width, 1)
            if kind == "deletion":
                batch.append(np.where(changed, filler[i], images[i]))
            else:
                batch.append(np.where(changed, images[i], filler[i]))
        result = probabilities_of(np.stack(batch)).numpy()
        for (i, s), row in zip(chunk, result):
            probabilities[i, s] = row[targets[i]]
    auc = np.trapezoid(probabilities, fractions, axis=1).astype(np.float32)
    return Curve(fractions, probabilities, auc, targets, kind, substrate)


def _probabilities(graph, images) -> tf.Tensor:
    """The [N, classes] float32 probabilities of images [N, H, W, C]."""
    return graph.probabilities(graph(images))


def _targets(target, probabilities: np.ndarray) -> np.ndarray:
    count, classes = probabilities.shape
    if target is None:
        return probabilities.argmax(axis=1).astype(np.int32)
    values = np.broadcast_to(np.asarray(target), [count]).astype(np.int32)
    if values.min() < 0 or values.max() >= classes:
        bad = values.min() if values.min() < 0 else values.max()
        raise ValueError(f"target {bad} is out of range: the model has {classes} outputs (0..{classes - 1})")
    return values


# 8 parameters: model, images, maps, targets, then keyword settings of the curve.
def deletion(
    model,
    images,
    maps,
    target=None,
    *,
    steps: int = 16,
    substrate: str = "zero",
    blur_sigma: float | None = None,
    batch_size: int = 64,
) -> Curve:
    """The target's probability as the most-attributed pixels are removed, in `steps` equal fractions.

    Args:
      model: a keras.Model, the reference convnet or a Graph.
      images: [N, H, W, C] float, what the model takes.
      maps: [N, H, W] float (e.g. `AttributionResult.maps`).
      target: None (each image's top class), an int or [N] ints (e.g. `AttributionResult.targets`).
      steps: fractions 0, 1/steps, ..., 1.
      substrate: what removed pixels become: "zero" or "blur".
      blur_sigma: the blur's sigma in pixels (default max(H, W) / 16).
      batch_size: images run at once.

    Returns:
      a Curve; lower AUC is more faithful.
    """
    return _curve("deletion", model, images, maps, target, steps, substrate, blur_sigma, batch_size)


# 8 parameters: model, images, maps, targets, then keyword settings of the curve.
def insertion(
    model,
    images,
    maps,
    target=None,
    *,
    steps: int = 16,
    substrate: str = "blur",
    blur_sigma: float | None = None,
    batch_size: int = 64,
) -> Curve:
    """The target's probability as the most-attributed pixels are put back into the substrate (by default the
    image blurred). Returns a Curve; higher AUC is more faithful.

    Args:
      model: a keras.Model, the reference convnet or a Graph.
      images: [N, H, W, C] float, what the model takes.
      maps: [N, H, W] float (e.g. `AttributionResult.maps`).
      target: None (each image's top class), an int or [N] ints.
      steps: fractions 0, 1/steps, ..., 1.
      substrate: what the image starts as: "blur" or "zero".
      blur_sigma: the blur's sigma in pixels (default max(H, W) / 16).
      batch_size: images run at once.
    """
    return _curve("insertion", model, images, maps, target, steps, substrate, blur_sigma, batch_size)


def random_maps(count: int, size, seed: int = 0) -> np.ndarray:
    """Baseline maps [count, *size]: uniform noise from `seed` (no information about the image)."""
    return np.random.default_rng(seed).random((count, *size)).astype(np.float32)


def center_maps(count: int, size) -> np.ndarray:
    """Baseline maps [count, *size] (size = (H, W)): a Gaussian centred on the image (sigma a quarter of its side)."""
    height, width = size
    rows = (np.arange(height) - (height - 1) / 2) / (height / 4)
    columns = (np.arange(width) - (width - 1) / 2) / (width / 4)
    bump = np.exp(-0.5 * (rows[:, None] ** 2 + columns[None] ** 2)).astype(np.float32)
    return np.repeat(bump[None], count, axis=0)
