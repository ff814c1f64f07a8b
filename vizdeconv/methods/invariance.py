"""Invariance (Zeiler & Fergus 2014, Fig. 5): how far each layer's features move, and how the true
class's probability changes, as images are translated vertically, scaled and rotated."""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from vizdeconv.methods.deconvnet import as_graph
from vizdeconv.nn import ops

DEFAULTS = {  # ranges that make sense for 32x32 images
    "translation": [float(v) for v in range(-8, 9, 2)],  # pixels, positive moves the image down
    "scale": [0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4],  # zoom factor about the centre
    "rotation": [float(v) for v in range(-60, 61, 15)],  # degrees, counter-clockwise
}


def transform(images: np.ndarray, kind: str, value: float) -> np.ndarray:
    """Transformed copies [N, H, W, C] float32 of images [N, H, W, C]; borders repeat the edge pixels.

    `kind` is "translation" (`value` pixels down), "scale" (`value` times) or "rotation" (`value` degrees).
    The identity (translation 0, scale 1, rotation 0) returns the pixels unchanged.
    """
    images = np.asarray(images, np.float32)
    height, width = images.shape[1:3]
    cy, cx = (height - 1) / 2, (width - 1) / 2
    if kind == "translation":
        matrix = [1, 0, 0, 0, 1, -value]
    elif kind == "scale":
        s = 1.0 / value
        matrix = [s, 0, cx - s * cx, 0, s, cy - s * cy]
    elif kind == "rotation":
        a = math.radians(value)
        c, s = math.cos(a), math.sin(a)
        matrix = [c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy]
    else:
        raise ValueError(f"unknown transformation {kind!r}; choose from {', '.join(DEFAULTS)}")
    return ops.warp(images, [matrix] * len(images), "NEAREST").numpy()


@dataclasses.dataclass
class InvarianceResult:
    """The curves of Fig. 5.

    Attributes:
      transforms: kind -> {"values": [V], "distance": {layer: [N, V]} (||f(x') - f(x)|| / ||f(x)||),
        "probability": [N, V] (of the true class)}.
    """

    transforms: dict


class Invariance:
    """Invariance (Zeiler & Fergus 2014, Fig. 5): feature distances and true-class probabilities as the images
    are translated, scaled and rotated.

        result = Invariance(model, preprocess, layers).explain(images, labels)

    Args:
      model: a Keras model, the reference convnet or a Graph.
      preprocess: pixels -> model inputs.
      layers: layers whose features are compared.
      transforms: kind -> values (default DEFAULTS).
    """

    def __init__(self, model, preprocess, layers, transforms: dict | None = None):
        self.graph, self.preprocess = as_graph(model), preprocess
        self.names = {layer: self.graph.resolve(layer) for layer in layers}
        self.transforms = transforms or DEFAULTS

    def _features(self, batch):
        graph = self.graph
        tensors = graph.forward(
            self.preprocess(batch), record_switches=False, until=(*self.names.values(), graph.output)
        )
        probabilities = graph.probabilities(tensors[graph.output]).numpy()
        flat = {
            layer: tf.reshape(tf.cast(tensors[name], tf.float32), [len(batch), -1]).numpy()
            for layer, name in self.names.items()
        }
        return flat, probabilities

    def explain(self, images: np.ndarray, labels: np.ndarray) -> InvarianceResult:
        """images [N, H, W, C] pixels 0..255 (before cropping: the transformation acts on the whole image),
        labels [N] their true classes."""
        reference, _ = self._features(np.asarray(images, np.float32))
        result = {}
        for kind, values in self.transforms.items():
            distance = {layer: np.zeros((len(images), len(values))) for layer in self.names}
            probability = np.zeros((len(images), len(values)))
            for j, value in enumerate(values):
                flat, probabilities = self._features(transform(images, kind, value))
                for layer in self.names:
                    norm = np.linalg.norm(reference[layer], axis=1)
                    difference = np.linalg.norm(flat[layer] - reference[layer], axis=1)
                    distance[layer][:, j] = np.where(norm > 0, difference / np.maximum(norm, 1e-12), 0.0)
                probability[:, j] = probabilities[np.arange(len(images)), labels]
            result[kind] = {"values": list(values), "distance": distance, "probability": probability}
        return InvarianceResult(result)


def invariance(model, images, labels, preprocess, layers, transforms=None) -> dict:
    """Deprecated (0.2, kept for one release): `Invariance(model, preprocess, layers, transforms).explain(images,
    labels).transforms`."""
    return Invariance(model, preprocess, layers, transforms).explain(images, labels).transforms
