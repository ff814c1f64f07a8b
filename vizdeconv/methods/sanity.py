"""Cascading randomization (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): re-initialize the
weights layer by layer from the top down and see how much the projections of the same units change."""

import numpy as np
import tensorflow as tf

from vizdeconv.methods import similarity
from vizdeconv.methods.deconvnet import Deconvnet, as_graph
from vizdeconv.nn.graph import Graph, Op


def weight_layers(graph: Graph) -> list[str]:
    """Ops with learned kernels (convolutions, Dense), top first."""
    return [op.name for op in reversed(graph.ops) if op.kind in ("conv", "dense")]


def randomize(graph: Graph, names, seed: int) -> Graph:
    """The graph with the kernels of `names` redrawn from a normal distribution of the trained kernel's
    standard deviation and their biases zeroed (other ops untouched)."""
    operations = []
    for index, op in enumerate(graph.ops):
        if op.name in names:
            kernel = tf.convert_to_tensor(op.value("kernel"), tf.float32)
            params = dict(
                op.params, kernel=tf.random.stateless_normal(kernel.shape, [seed, index]) * tf.math.reduce_std(kernel)
            )
            if params.get("bias") is not None:
                params["bias"] = tf.zeros_like(tf.convert_to_tensor(op.value("bias"), tf.float32))
            op = Op(op.name, op.kind, op.inputs, params, op.source)
        operations.append(op)
    return Graph(operations, graph.output, graph.input_shape, graph.aliases)


def cascading(
    model,
    inputs,
    layer: str,
    channels,
    positions,
    mode: str = "deconvnet",
    seed: int = 1,
    *,
    display_of,
    rectify: str = "relu",
) -> dict:
    """Projects the same units (an impulse at channel, position) at every stage of the cascade.

    Args:
      model: a Keras model, the reference convnet or a Graph.
      inputs: [N, H, W, C] model inputs.
      layer: where the units are; channels, positions: [N] ints (position = row * w + col).
      rectify: see `Deconvnet`.
      display_of: projections [N, H, W, C] -> the pictures a person sees, [N, H, W, C] in [0, 1]; SSIM
        compares those.
    Returns:
      {"stages": names ("trained", then the weight layers randomized so far, top first),
       "spearman": [S, N] rank correlation of absolute values with the trained projections,
       "ssim": [S, N] of the display pictures, "projections": [S, N, H, W, C]}; S = weight layers + 1.
    """
    graph = as_graph(model)
    order = weight_layers(graph)
    stages, projections = ["trained"], []
    for count in range(len(order) + 1):
        staged = graph if count == 0 else randomize(graph, set(order[:count]), seed)
        projections.append(
            Deconvnet(staged, mode, rectify=rectify).project(inputs, layer, channels, positions, impulse=True).numpy()
        )
        if count:
            stages.append(order[count - 1].removesuffix("/linear"))
    trained = projections[0]
    shown = display_of(trained)
    return {
        "stages": stages,
        "spearman": np.stack([similarity.spearman(trained, p) for p in projections]),
        "ssim": np.stack([similarity.ssim(shown, display_of(p)) for p in projections]),
        "projections": np.stack(projections),
    }
