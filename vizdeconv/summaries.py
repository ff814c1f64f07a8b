"""Display scaling, image grids and stitching, and the TensorBoard summaries written while training."""
import numpy as np
import tensorflow as tf

from vizdeconv import data
from vizdeconv.reconstruct import Projector

GAP = 2  # white pixels between panels


def to_display(panels: np.ndarray, clip_percentile: float = 0.0) -> np.ndarray:
    """Scales each panel to [0, 1] on its own for viewing.

    Signed panels (reconstructions) are centred on mid-grey, zero staying grey, scaled by their largest
    magnitude; non-negative panels are min-max scaled. `clip_percentile` > 0 first clips each panel to
    its [p, 100 - p] percentiles so a few extreme pixels do not wash out the rest.

    Args:
      panels: [N, H, W, C] float.
    Returns:
      [N, H, W, C] float32 in [0, 1].
    """
    panels = np.asarray(panels, np.float32)
    out = np.empty_like(panels)
    for i, panel in enumerate(panels):
        if clip_percentile > 0:
            low, high = np.percentile(panel, [clip_percentile, 100 - clip_percentile])
            panel = np.clip(panel, low, high)
        if panel.min() < 0:
            scale = np.abs(panel).max()
            out[i] = 0.5 + 0.5 * panel / scale if scale > 0 else 0.5
        else:
            low, span = panel.min(), panel.max() - panel.min()
            out[i] = (panel - low) / span if span > 0 else 0.0
    return out


def upscale(images: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of [N, H, W, C] by an integer factor."""
    return images.repeat(factor, axis=1).repeat(factor, axis=2) if factor > 1 else images


def stitch(panels: list[np.ndarray]) -> np.ndarray:
    """Places same-sized [N, H, W, C] panels side by side with white gaps -> [N, H, W', C]."""
    batch, height, _, channels = panels[0].shape
    gap = np.ones((batch, height, GAP, channels), np.float32)
    pieces = []
    for index, panel in enumerate(panels):
        pieces += [gap, panel] if index else [panel]
    return np.concatenate(pieces, axis=2)


def grid(images: np.ndarray, columns: int) -> np.ndarray:
    """Tiles [K, H, W, C] row by row into one [rows*(H+gap)-gap, columns*(W+gap)-gap, C] image."""
    count, height, width, channels = images.shape
    rows = -(-count // columns)
    canvas = np.ones((rows * (height + GAP) - GAP, columns * (width + GAP) - GAP, channels),
                     np.float32)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        canvas[row * (height + GAP):row * (height + GAP) + height,
               column * (width + GAP):column * (width + GAP) + width] = image
    return canvas


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
