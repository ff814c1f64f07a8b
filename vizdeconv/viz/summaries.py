"""The TensorBoard summaries written while training: reconstruction strips and top-feature grids."""

import numpy as np
import tensorflow as tf

from vizdeconv.methods.deconvnet import Deconvnet
from vizdeconv.viz.pictures import grid, stitch, to_display, upscale


def default_layers(graph) -> list[str]:
    """The rectified feature maps of a network: the outputs of its ReLUs and other activations (silu, gelu,
    ...; an EfficientNetB0 has 65 of its 206 feature layers there), else all its feature layers."""
    kinds = ("relu", "activation")
    rectified = [name for name in graph.feature_layers if graph.by_name[graph.resolve(name)].kind in kinds]
    return rectified or graph.feature_layers


class ReconstructionSummary:
    """Writes, for a fixed probe batch, original | conv1 | conv2 | ... strips and top-k feature grids.

    Args:
      projector: projects the model's layers.
      inputs: [P, H, W, C] float32 probe images as the model takes them, the same at every step.
      originals: [P, H, W, 3] float32 in [0, 1], the same images as a person sees them (None: the
        inputs, scaled for display).
      layers: the layers shown (default: the network's rectified feature maps, `default_layers`).
      top_k: strongest feature maps of probe 0 shown one by one, per layer.
      display_scale: nearest-neighbour enlargement of each panel.
      clip_percentile: see `to_display`.
    """

    # 7 parameters: the strips' settings, as the trainer's config and the callback's keywords give them.
    def __init__(
        self,
        projector: Deconvnet,
        inputs,
        originals=None,
        layers=None,
        top_k: int = 16,
        display_scale: int = 4,
        clip_percentile: float = 0.0,
    ):
        self.projector = projector
        self.layers = tuple(layers or default_layers(projector.graph))
        self.inputs = tf.convert_to_tensor(inputs, tf.float32)
        self.originals = to_display(self.inputs.numpy()) if originals is None else np.asarray(originals, np.float32)
        self.top_k = top_k
        self.scale, self.clip = display_scale, clip_percentile

    def strips(self) -> np.ndarray:
        """[P, H*scale, (1 + layers) panels wide, 3] float32 in [0, 1]."""
        projections = self.projector.project(self.inputs, list(self.layers))
        panels = [self.originals] + [to_display(projections[n].numpy(), self.clip) for n in self.layers]
        return stitch([upscale(panel, self.scale) for panel in panels])

    def feature_grid(self, layer: str) -> tuple[np.ndarray, list[int]]:
        """Top-k feature maps of probe 0 as one grid [1, h, w, 3] and their channel indices."""
        filters = self.projector.graph.shapes[self.projector.graph.resolve(layer)][-1]
        projections, channels = self.projector.top_channels(self.inputs[:1], layer, min(self.top_k, filters))
        tiles = upscale(to_display(projections.numpy(), self.clip), self.scale)
        columns = int(np.ceil(np.sqrt(len(tiles))))
        return grid(tiles, columns)[None], [int(c) for c in channels.numpy()]

    def write(self, step: int) -> None:
        """Writes the summaries at `step` into the default summary writer."""
        names = " | ".join(("original",) + self.layers)
        tf.summary.image(
            "reconstructions",
            self.strips(),
            step=step,
            max_outputs=len(self.originals),
            description=f"{names} ({self.projector.mode}), one image per probe",
        )
        for layer in self.layers:
            image, channels = self.feature_grid(layer)
            tf.summary.image(
                f"top_features/{layer}",
                image,
                step=step,
                description=f"{layer}: the {len(channels)} strongest feature maps of "
                f"probe 0, row by row, channels {channels}",
            )
