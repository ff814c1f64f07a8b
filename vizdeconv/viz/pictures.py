"""Display helpers: scaling to [0, 1], enlargement, stitching, grids and PNG files."""

import numpy as np
import tensorflow as tf

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


def to_bytes(pictures: np.ndarray) -> np.ndarray:
    """Pictures in [0, 1] (any shape) -> uint8, rounded, values outside [0, 1] clipped."""
    return np.round(np.clip(pictures, 0, 1) * 255).astype(np.uint8)


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
    """Tiles [K, H, W, C] (float in [0, 1], or uint8) row by row into one [rows*(H+gap)-gap,
    columns*(W+gap)-gap, C] image of the same kind."""
    count, height, width, channels = images.shape
    rows = -(-count // columns)
    dtype = np.uint8 if images.dtype == np.uint8 else np.float32  # uint8 pictures stay bytes (white 255)
    canvas = np.full((rows * (height + GAP) - GAP, columns * (width + GAP) - GAP, channels),
                     255 if dtype == np.uint8 else 1.0, dtype)  # fmt: skip
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        canvas[
            row * (height + GAP) : row * (height + GAP) + height,
            column * (width + GAP) : column * (width + GAP) + width,
        ] = image
    return canvas


def write_png(path: str, image: np.ndarray) -> None:
    """Writes [H, W, 3] float in [0, 1] (or uint8) as an 8-bit PNG."""
    if image.dtype == np.uint8:
        pixels = tf.constant(image)
    else:
        pixels = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)
    tf.io.write_file(path, tf.io.encode_png(pixels))


def overlay(pictures: np.ndarray, maps: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Attribution maps over their images: (1 - alpha) x the image in grey + alpha x the map in jet.

    Args:
      pictures: [N, H, W, 3] float in [0, 1]; maps: [N, H, W] float in [0, 1].
    Returns:
      [N, H, W, 3] float32 in [0, 1].
    """
    from matplotlib import colormaps

    grey = np.asarray(pictures, np.float32).mean(axis=-1, keepdims=True)
    colours = colormaps["jet"](np.clip(np.asarray(maps, np.float32), 0, 1))[..., :3].astype(np.float32)
    return (1 - alpha) * grey + alpha * colours
