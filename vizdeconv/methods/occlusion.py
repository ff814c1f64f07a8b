"""Occlusion sensitivity (Zeiler & Fergus 2014, Fig. 7): slide a grey square over an image and watch a
feature map and the classifier respond. Every position of an image is evaluated in large batches."""

import dataclasses

import numpy as np
import tensorflow as tf

from vizdeconv.methods.deconvnet import Deconvnet, strongest_unit


def positions(size: int, patch: int, stride: int) -> list[int]:
    """Top (or left) offsets of a `patch`-pixel square moved by `stride` along one axis of `size` pixels."""
    if patch < 1 or stride < 1:
        raise ValueError(f"--patch and --stride must be positive, got {patch} and {stride}")
    if patch > size:
        raise ValueError(f"the {patch}x{patch} patch is larger than the {size}x{size} image the model sees")
    return list(range(0, size - patch + 1, stride))


def occluded(picture: np.ndarray, grey, patch: int, stride: int) -> np.ndarray:
    """Every occluded copy of one picture [h, w, C] (a `patch`-pixel square of the `grey` pixel [C], moved by
    `stride`): [rows * cols, h, w, C] float32, row-major."""
    height, width = picture.shape[:2]
    copies = []
    for top in positions(height, patch, stride):
        for left in positions(width, patch, stride):
            copy = picture.astype(np.float32).copy()
            copy[top : top + patch, left : left + patch] = grey
            copies.append(copy)
    return np.stack(copies)


@dataclasses.dataclass
class OcclusionResult:
    """The four maps of Fig. 7 for one picture (also readable as `result["rows"]`, as the dict of 0.2 was).

    Attributes:
      rows: the square's top offsets [R].
      cols: the square's left offsets [C'].
      channel: the feature map of `layer` strongest on the unoccluded picture.
      layer: the feature layer.
      activation: [R, C'] that map's total activation per position of the square.
      probability: [R, C'] the true class's probability.
      predicted: [R, C'] the most probable class.
      projection: [h, w, C] the map's deconvnet projection on the unoccluded picture.
      unoccluded: the map's total, and the probability and prediction, without occlusion.
    """

    rows: list
    cols: list
    channel: int
    layer: str
    activation: np.ndarray
    probability: np.ndarray
    predicted: np.ndarray
    projection: np.ndarray
    unoccluded: dict

    def __getitem__(self, key: str):
        return getattr(self, key)


class Occlusion:
    """Occlusion sensitivity (Zeiler & Fergus 2014, Fig. 7): a grey square slid over the picture.

        result = Occlusion(model, preprocess, grey, patch=4, stride=1).explain(picture, label)

    Args:
      model: a Keras model, the reference convnet or a Graph (or a Deconvnet of one).
      preprocess: pixels -> model inputs (`nn.preprocess.Preprocess.inputs`).
      grey: [C] the occluder's pixel value (the training split's mean pixel).
      patch: the square's side in pixels.
      stride: the square's step in pixels.
      layer: the feature layer (default: the top one that has feature maps).
      batch_size: occluded copies run at once.
    """

    # 7 parameters: the method's settings (the occluder and its geometry).
    def __init__(self, model, preprocess, grey, patch: int = 4, stride: int = 1, layer: str | None = None,
                 batch_size: int = 1024):  # fmt: skip
        self.deconvnet = model if isinstance(model, Deconvnet) else Deconvnet(model)
        graph = self.deconvnet.graph
        self.layer = layer or graph.feature_layers[-1]
        if len(graph.shapes[graph.resolve(self.layer)]) != 3:
            raise ValueError(f"layer {self.layer!r} has no feature maps; pick one of {', '.join(graph.feature_layers)}")
        self.preprocess, self.grey = preprocess, np.asarray(grey, np.float32)
        self.patch, self.stride, self.batch_size = patch, stride, batch_size

    def _measure(self, inputs):
        maps, outputs = self.deconvnet.activations(inputs, self.layer)
        return maps, self.deconvnet.graph.probabilities(outputs)

    def explain(self, picture: np.ndarray, label: int) -> OcclusionResult:
        """The maps of one picture [h, w, C] (pixels 0..255 as the model sees them, already cropped to its
        input size) for its true class `label`."""
        rows = positions(picture.shape[0], self.patch, self.stride)
        cols = positions(picture.shape[1], self.patch, self.stride)
        clean_inputs = self.preprocess(picture[None].astype(np.float32))
        clean_maps, clean_probabilities = self._measure(clean_inputs)
        channel = int(strongest_unit(clean_maps)[0][0])
        projection = self.deconvnet.project(clean_inputs, self.layer, channel=channel)[0].numpy()
        copies = occluded(picture, self.grey, self.patch, self.stride)
        totals, probabilities = [], []
        for start in range(0, len(copies), self.batch_size):
            maps, probs = self._measure(self.preprocess(copies[start : start + self.batch_size]))
            totals.append(tf.reduce_sum(maps[..., channel], axis=[1, 2]).numpy())
            probabilities.append(probs.numpy())
        probabilities = np.concatenate(probabilities)
        shape = (len(rows), len(cols))
        unoccluded = {
            "activation": float(tf.reduce_sum(clean_maps[0, ..., channel])),
            "probability": float(clean_probabilities[0, label]),
            "predicted": int(np.argmax(clean_probabilities[0])),
        }
        return OcclusionResult(rows, cols, channel, self.layer, np.concatenate(totals).reshape(shape),
                               probabilities[:, label].reshape(shape), probabilities.argmax(1).reshape(shape),
                               projection, unoccluded)  # fmt: skip


# 9 parameters: the 0.2 function kept one release as an alias of Occlusion.
def occlusion(model, picture, label, preprocess, grey, patch=4, stride=1, layer=None, batch_size=1024):
    """Deprecated (0.2, kept for one release): `Occlusion(model, preprocess, grey, patch, stride, layer,
    batch_size).explain(picture, label)`."""
    return Occlusion(model, preprocess, grey, patch, stride, layer, batch_size).explain(picture, label)
