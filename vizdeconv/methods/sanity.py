"""Cascading randomization (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): re-initialize the
weights layer by layer from the top down and see how much the projections of the same units change."""

import dataclasses

import numpy as np
import tensorflow as tf

from vizdeconv.methods import similarity
from vizdeconv.methods.deconvnet import Deconvnet, as_graph
from vizdeconv.nn.graph import Graph, Op


def weight_layers(graph: Graph) -> list[str]:
    """The ops of `graph` with learned kernels (convolutions, Dense), top first."""
    return [op.name for op in reversed(graph.ops) if op.kind in ("conv", "dense")]


def randomize(graph: Graph, names, seed: int) -> Graph:
    """The graph with the kernels of `names` redrawn from a normal distribution of the trained kernel's
    standard deviation (stateless, from `seed` and the op's place) and their biases zeroed (other ops
    untouched)."""
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


@dataclasses.dataclass
class SanityResult:
    """The cascade's curves and pictures (also readable as `result["stages"]`); S = weight layers + 1.

    Attributes:
      stages: names ("trained", then the weight layers randomized so far, top first).
      spearman: [S, N] rank correlation of absolute values with the trained projections.
      ssim: [S, N] structural similarity of the display pictures with the trained ones.
      projections: [S, N, H, W, C] the projections at each stage.
    """

    stages: list
    spearman: np.ndarray
    ssim: np.ndarray
    projections: np.ndarray

    def __getitem__(self, key: str):
        return getattr(self, key)


class CascadingRandomization:
    """The cascading randomization sanity check (Adebayo et al. 2018): the same units projected as the weight
    layers are re-initialized at random one after another, from the top.

        result = CascadingRandomization(model, "guided", display_of=to_display).explain(inputs, layer, channels,
                                                                                          positions)

    Args:
      model: a Keras model, the reference convnet or a Graph.
      mode: the projection rule (see `Deconvnet`).
      seed: the random weights' seed.
      rectify: where the rule replaces the gradient (see `Deconvnet`).
      display_of: projections [N, H, W, C] -> the pictures a person sees, [N, H, W, C] in [0, 1]; SSIM
        compares those.
    """

    def __init__(self, model, mode: str = "deconvnet", seed: int = 1, *, display_of, rectify: str = "relu"):
        self.graph, self.mode, self.seed, self.rectify = as_graph(model), mode, seed, rectify
        self.display_of = display_of

    def explain(self, inputs, layer: str, channels, positions) -> SanityResult:
        """Projects an impulse at each image's unit of `layer` for `inputs` [N, H, W, C] at every stage of the
        cascade: `channels` [N] and `positions` [N] flat (row * w + col)."""
        order = weight_layers(self.graph)
        stages, projections = ["trained"], []
        for count in range(len(order) + 1):
            staged = self.graph if count == 0 else randomize(self.graph, set(order[:count]), self.seed)
            deconvnet = Deconvnet(staged, self.mode, rectify=self.rectify)
            projections.append(deconvnet.project(inputs, layer, channels, positions, impulse=True).numpy())
            if count:
                stages.append(order[count - 1].removesuffix("/linear"))
        trained = projections[0]
        shown = self.display_of(trained)
        return SanityResult(
            stages,
            np.stack([similarity.spearman(trained, p) for p in projections]),
            np.stack([similarity.ssim(shown, self.display_of(p)) for p in projections]),
            np.stack(projections),
        )


# 9 parameters: the 0.2 function kept one release as an alias of CascadingRandomization.
def cascading(model, inputs, layer, channels, positions, mode="deconvnet", seed=1, *, display_of, rectify="relu"):
    """Deprecated (0.2, kept for one release): `CascadingRandomization(model, mode, seed, display_of=...,
    rectify=...).explain(inputs, layer, channels, positions)`."""
    return CascadingRandomization(model, mode, seed, display_of=display_of, rectify=rectify).explain(
        inputs, layer, channels, positions
    )
