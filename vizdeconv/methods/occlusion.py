"""Occlusion sensitivity (Zeiler & Fergus 2014, Fig. 7): slide a grey square over an image and watch a
feature map and the classifier respond. Every position of an image is evaluated in large batches."""

import numpy as np
import tensorflow as tf

from vizdeconv.methods.deconvnet import Deconvnet, strongest_unit


def positions(size: int, patch: int, stride: int) -> list[int]:
    """Top (or left) offsets of the square along one axis."""
    if patch < 1 or stride < 1:
        raise ValueError(f"--patch and --stride must be positive, got {patch} and {stride}")
    if patch > size:
        raise ValueError(f"the {patch}x{patch} patch is larger than the {size}x{size} image the model sees")
    return list(range(0, size - patch + 1, stride))


def occluded(picture: np.ndarray, grey, patch: int, stride: int) -> np.ndarray:
    """Every occluded copy of one picture [h, w, C]: [rows * cols, h, w, C] float32, row-major."""
    height, width = picture.shape[:2]
    copies = []
    for top in positions(height, patch, stride):
        for left in positions(width, patch, stride):
            copy = picture.astype(np.float32).copy()
            copy[top : top + patch, left : left + patch] = grey
            copies.append(copy)
    return np.stack(copies)


def occlusion(
    model,
    picture: np.ndarray,
    label: int,
    preprocess,
    grey,
    patch: int = 4,
    stride: int = 1,
    layer: str | None = None,
    batch_size: int = 1024,
) -> dict:
    """The four maps of Fig. 7 for one picture.

    Args:
      model: a Keras model, the reference convnet or a Graph (or a Deconvnet of one).
      picture: [h, w, C] pixels (0..255) as the model sees them (already cropped to its input size).
      label: the true class.
      preprocess: pixels -> model inputs (`nn.preprocess.Preprocess.inputs`).
      grey: [C] the occluder's pixel value (the training split's mean pixel).
      patch, stride: the square's side and step in pixels.
      layer: the feature layer (default: the top one that has feature maps).
    Returns:
      dict with `rows`, `cols` (offsets), `channel` (the feature map strongest on the unoccluded
      picture), `activation` [R, C'] (that map's total activation per position), `probability`
      [R, C'] (of the true class), `predicted` [R, C'] (most probable class), `projection` [h, w, C]
      (the map's deconvnet projection on the unoccluded picture), `unoccluded` (its total and the
      probability and prediction without occlusion).
    """
    deconvnet = model if isinstance(model, Deconvnet) else Deconvnet(model)
    graph = deconvnet.graph
    layer = layer or graph.feature_layers[-1]
    name = graph.resolve(layer)
    if len(graph.shapes[name]) != 3:
        raise ValueError(f"layer {layer!r} has no feature maps; pick one of {', '.join(graph.feature_layers)}")
    rows = positions(picture.shape[0], patch, stride)
    cols = positions(picture.shape[1], patch, stride)

    def measure(inputs):
        maps, outputs = deconvnet.activations(inputs, layer)
        return maps, graph.probabilities(outputs)

    clean_inputs = preprocess(picture[None].astype(np.float32))
    clean_maps, clean_probabilities = measure(clean_inputs)
    channel = int(strongest_unit(clean_maps)[0][0])
    projection = deconvnet.project(clean_inputs, layer, channel=channel)[0].numpy()
    copies = occluded(picture, np.asarray(grey, np.float32), patch, stride)
    totals, probabilities = [], []
    for start in range(0, len(copies), batch_size):
        maps, probs = measure(preprocess(copies[start : start + batch_size]))
        totals.append(tf.reduce_sum(maps[..., channel], axis=[1, 2]).numpy())
        probabilities.append(probs.numpy())
    probabilities = np.concatenate(probabilities)
    shape = (len(rows), len(cols))
    return {
        "rows": rows,
        "cols": cols,
        "channel": channel,
        "layer": layer,
        "activation": np.concatenate(totals).reshape(shape),
        "probability": probabilities[:, label].reshape(shape),
        "predicted": probabilities.argmax(1).reshape(shape),
        "projection": projection,
        "unoccluded": {
            "activation": float(tf.reduce_sum(clean_maps[0, ..., channel])),
            "probability": float(clean_probabilities[0, label]),
            "predicted": int(np.argmax(clean_probabilities[0])),
        },
    }
