"""The TensorBoard summaries written while training: reconstruction strips and top-feature grids."""
import numpy as np
import tensorflow as tf

from vizdeconv.training import data
from vizdeconv.viz.display import grid, stitch, to_display, upscale
from vizdeconv.deconv.projection import Projector

class ReconstructionSummary:
    """Writes, for a fixed probe batch, original | conv1 | conv2 | ... strips and top-k feature grids.

    Args:
      projector: projects the model's layers.
      probe_images: [P, 32, 32, 3] uint8 test images, the same at every step of a run.
      image_size: crop size the model sees.
      top_k: strongest feature maps of probe 0 shown one by one, per layer.
      display_scale: nearest-neighbour enlargement of each panel.
      clip_percentile: see `to_display`.
    """

    def __init__(self, projector: Projector, probe_images: np.ndarray, image_size: int = 24,
                 top_k: int = 16, display_scale: int = 4, clip_percentile: float = 0.0):
        self.projector = projector
        self.layers = tuple(projector.model.layer_names)
        self.originals = data.central_crop(probe_images, image_size).astype(np.float32) / 255.0
        self.inputs = data.preprocess_eval(probe_images, image_size)
        self.top_k = top_k
        self.scale, self.clip = display_scale, clip_percentile

    def strips(self) -> np.ndarray:
        """[P, H*scale, (1 + layers) panels wide, 3] float32 in [0, 1]."""
        projections = self.projector.layers(self.inputs, self.layers)
        panels = [self.originals] + [to_display(projections[n].numpy(), self.clip) for n in self.layers]
        return stitch([upscale(panel, self.scale) for panel in panels])

    def feature_grid(self, layer: str) -> tuple[np.ndarray, list[int]]:
        """Top-k feature maps of probe 0 as one grid [1, h, w, 3] and their channel indices."""
        filters = self.projector.model.shapes[layer][-1]
        projections, channels = self.projector.top_channels(self.inputs[:1], layer,
                                                            min(self.top_k, filters))
        tiles = upscale(to_display(projections.numpy(), self.clip), self.scale)
        columns = int(np.ceil(np.sqrt(len(tiles))))
        return grid(tiles, columns)[None], [int(c) for c in channels.numpy()]

    def write(self, step: int) -> None:
        """Writes the summaries at `step` into the default summary writer."""
        names = " | ".join(("original",) + self.layers)
        tf.summary.image("reconstructions", self.strips(), step=step,
                         max_outputs=len(self.originals),
                         description=f"{names} ({self.projector.mode}), one image per probe")
        for layer in self.layers:
            image, channels = self.feature_grid(layer)
            tf.summary.image(f"top_features/{layer}", image, step=step,
                             description=f"{layer}: the {len(channels)} strongest feature maps of "
                                         f"probe 0, row by row, channels {channels}")
