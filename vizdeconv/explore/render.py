"""Pictures and files of the feature explorer: per-channel grids, overviews, mode comparison."""

import json
import math
import os

import numpy as np
import tensorflow as tf

from vizdeconv.methods import receptive_field, reconstruct
from vizdeconv.methods.deconvnet import Deconvnet, strongest_unit, unit_signal
from vizdeconv.viz import pictures
from vizdeconv.viz.pictures import write_png

TILE_PIXELS = 72  # receptive-field crops are enlarged to about this size
RENDER_BATCH = 256  # units projected at once when rendering a layer, at most
# and at most this many input pixels: the projections' working memory grows with both (ResNet50 at
# 224x224 peaked at 7.7 GB with 256 units at once, 2.8 GB with 64, which were no slower)
RENDER_PIXELS = 64 * 224 * 224
TILE_LIMIT = 256  # channel tiles in overviews and summaries are shrunk to at most this height
# A layer's projections and patches together (top.npz, and memory while it is drawn) stay near this many
# bytes: their tiles are shrunk by an integer factor where thousands of maps have large fields (ResNet50's
# last 2,048 maps x 9 at the 448-pixel canvas of a 224x224 input would be 22 GB), never below SMALLEST_TILE.
LAYER_TILE_BYTES = 2**28
SMALLEST_TILE = TILE_PIXELS


def beats_top1(optimized, top: dict) -> dict:
    """How the optimized images' activations compare with each channel's strongest over the split (top-1).

    Args:
      optimized: `feature_vis.Optimized` of every channel of a layer; top: the scan's result (values [C, k]).
    Returns:
      {channels, exceeds (how many beat their top-1), median_ratio (activation / top-1), seconds}.
    """
    best = top["values"][optimized.channels, 0]
    ratios = optimized.activations / np.maximum(best, 1e-12)
    return {
        "channels": int(len(best)),
        "exceeds": int(np.sum(optimized.activations > best)),
        "median_ratio": round(float(np.median(ratios)), 4),
        "seconds": round(float(optimized.seconds), 2),
    }


def write_index(path: str, index: dict, report: dict) -> None:
    with open(path, "w") as handle:
        json.dump({"report": report, "layers": index}, handle, indent=1)


def _beside(image: np.ndarray, height: int) -> np.ndarray:
    """[H, W, 3] enlarged by an integer factor to at most `height` rows, centred on a white panel
    [1, height, width, 3] (to stand beside a grid of that height)."""
    factor = max(1, height // image.shape[0])
    big = pictures.upscale(image[None], factor)[0][:height]
    panel = np.ones((height, big.shape[1], 3), np.float32)
    top = (height - big.shape[0]) // 2
    panel[top : top + big.shape[0]] = big
    return panel[None]


class Renderer:
    """Renders explorer output for one model and one scanned split.

    Args:
      deconvnet: the projections of the trained network (its graph and mode).
      source: the `sources.Source` that was scanned: only the winners' images are read back, by id.
      preprocess: pixels -> model inputs and display pictures (`preprocess.Preprocess`).
    """

    def __init__(self, deconvnet: Deconvnet, source, preprocess):
        self.projector, self.graph = deconvnet, deconvnet.graph
        self.source, self.preprocess = source, preprocess
        self.mode, self.rectify = deconvnet.mode, deconvnet.rectify
        self.fields = receptive_field.ReceptiveFields(self.graph)

    def _distinct(self, ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The distinct images [m, H, W, C] uint8 of `ids` and their labels [m], each read once, and for
        each of the [n] ids the index of its image among them."""
        unique, which = np.unique(np.asarray(ids, np.int64), return_inverse=True)
        images, labels = self.source.read(unique)
        return images, labels, which.reshape(-1)

    def _read(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """[n, H, W, C] uint8 images and [n] labels of `ids`, each distinct one read once."""
        images, labels, which = self._distinct(ids)
        return images[which], labels[which]

    def _inputs(self, ids):
        return self.preprocess.inputs(self._read(ids)[0])

    def canvas_side(self, layer: str, picture_side: int) -> int:
        """The side of `layer`'s crops of pictures of `picture_side` pixels: its field's, at most twice the
        picture's (deep networks' nominal fields dwarf the image; twice its side keeps every pixel a unit
        sees, placed where it lies in the field)."""
        return min(self.fields.field(layer).size, 2 * picture_side)

    def shrink_factor(self, layer: str, channels: int, k: int) -> int:
        """The integer factor by which `render_layer` shrinks `layer`'s tiles to stay near LAYER_TILE_BYTES."""
        side = self.canvas_side(layer, max(self.graph.input_shape[:2]))
        largest = max(SMALLEST_TILE, math.isqrt(LAYER_TILE_BYTES // (2 * 3 * channels * k)))
        return -(-side // largest)

    # 7 parameters: the pictures, the unit's place and how the tile is drawn (fill, enlarge, shrink).
    def crop(self, panels: np.ndarray, layer: str, rows, cols, fill: float, enlarge: bool = True,
             shrink: int = 1) -> np.ndarray:  # fmt: skip
        """Cuts each [N, H, W, 3] picture to its unit's receptive field, on a canvas of the field's size
        (`canvas_side`), enlarged to about TILE_PIXELS unless `enlarge` is False, or made `shrink` times
        smaller (each pixel the mean of a shrink x shrink block; the canvas is padded with `fill` to a
        multiple of it)."""
        side = self.canvas_side(layer, max(panels.shape[1:3]))
        canvas = np.full((len(panels), side, side, 3), fill, np.float32)
        for i, (picture, row, col) in enumerate(zip(panels, rows, cols)):
            top, left, bottom, right = self.fields.box(layer, int(row), int(col))
            nominal_top, nominal_left = self.fields.nominal_box(layer, int(row), int(col))[:2]
            dy = min(top - nominal_top, side - (bottom - top + 1))
            dx = min(left - nominal_left, side - (right - left + 1))
            canvas[i, dy : dy + bottom - top + 1, dx : dx + right - left + 1] = picture[
                top : bottom + 1, left : right + 1, :3
            ]
        if shrink > 1:
            blocks = -(-side // shrink)
            pad = blocks * shrink - side
            canvas = np.pad(canvas, ((0, 0), (0, pad), (0, pad), (0, 0)), constant_values=fill)
            canvas = canvas.reshape(len(canvas), blocks, shrink, blocks, shrink, 3).mean((2, 4))
        return pictures.upscale(canvas, max(1, TILE_PIXELS // canvas.shape[1])) if enlarge else canvas

    # 88 lines: one layer's files in one pass over its units, in bounded memory (the batching is the point).
    def render_layer(self, layer: str, top: dict, out: str, split: str, optimized=None, on_units=None) -> dict:
        """Writes `<out>/<layer>/channel_NNN.png`, `<out>/<layer>_overview.png` and `<out>/<layer>/top.npz`
        (projections and patches [channels, k, side, side, 3] uint8, for the TensorBoard tab: side is the
        canvas side, or smaller by `shrink_factor` for wide layers of large fields), and into
        the default summary writer the image summary `explore/<split>/<layer>` (image i: channel i); returns
        index entries. With `optimized` (`feature_vis.Optimized` of every channel), each channel's image
        is shown to the right of its top-k and saved in `<out>/<layer>/optimized.npz` (images [C, H, W, 3]
        uint8, activations [C], method, steps). `on_units(n)` is called as each n units are projected (a
        progress bar). Memory holds this layer's pictures only."""
        channels, k = top["image_ids"].shape
        width = self.graph.shapes[self.graph.resolve(layer)][1]
        ids, positions = top["image_ids"].reshape(-1), top["positions"].reshape(-1)
        rows, cols = positions // width, positions % width
        units = np.repeat(np.arange(channels), k)
        shrink = self.shrink_factor(layer, channels, k)
        height, width_in = self.graph.input_shape[:2]
        batch = max(1, min(RENDER_BATCH, RENDER_PIXELS // (height * width_in)))
        shown, patches, labels = [], [], []
        # The units in image order: a batch's units of one image share its forward pass (the top-k of a
        # layer's maps often share images), and the files are read in order. Put back in unit order after.
        order = np.argsort(ids, kind="stable")
        for start in range(0, len(ids), batch):  # bounded memory for thousands of units
            part = order[start : start + batch]
            images, distinct_labels, which = self._distinct(ids[part])
            labels.append(distinct_labels[which])
            inputs = self.preprocess.inputs(images)
            projections = self.projector.project(inputs, layer, units[part], positions[part], image_ids=which).numpy()
            # Kept as bytes (a quarter of floats), shrunk where the layer is wide and its fields large.
            shown.append(pictures.to_bytes(self.crop(pictures.to_display(projections), layer, rows[part], cols[part],
                                                     0.5, enlarge=False, shrink=shrink)))  # fmt: skip
            crops = self.preprocess.pictures(images)[which]
            patches.append(pictures.to_bytes(self.crop(crops, layer, rows[part], cols[part], 1.0, enlarge=False,
                                                       shrink=shrink)))  # fmt: skip
            if on_units is not None:
                on_units(len(part))
        restore = np.argsort(order)
        shown, patches, labels = (np.concatenate(parts)[restore] for parts in (shown, patches, labels))
        os.makedirs(os.path.join(out, layer), exist_ok=True)
        field = shown.shape[1]
        np.savez(
            os.path.join(out, layer, "top.npz"),
            projections=shown.reshape(channels, k, field, field, 3),
            patches=patches.reshape(channels, k, field, field, 3),
        )
        factor = max(1, TILE_PIXELS // field)
        side = int(np.ceil(np.sqrt(k)))
        tiles, index = [], {}
        files = hasattr(self.source, "files")  # sources whose images have paths name them in the index
        for c in range(channels):
            part = slice(c * k, (c + 1) * k)
            panels = [pictures.grid(pictures.upscale(pictures_of[part].astype(np.float32) / 255, factor), side)[None]
                      for pictures_of in (shown, patches)]  # fmt: skip
            if optimized is not None:
                panels.append(_beside(optimized.images[c], panels[0].shape[1]))
            pair = pictures.stitch(panels)[0]
            pair = np.pad(pair, ((0, 0), (0, 3 * pictures.GAP), (0, 0)), constant_values=1.0)
            write_png(os.path.join(out, layer, f"channel_{c:03d}.png"), pair)
            tiles.append(_thumbnail(pair))
            index[str(c)] = {
                "image_ids": ids[part].tolist(),
                "labels": labels[part].tolist(),
                "values": top["values"][c].tolist(),
                "locations": [[int(r), int(q)] for r, q in zip(rows[part], cols[part])],
                "boxes": [list(self.fields.box(layer, int(r), int(q))) for r, q in zip(rows[part], cols[part])],
            }
            if files:
                index[str(c)]["files"] = [self.source.describe(i) for i in ids[part]]
            if optimized is not None:
                index[str(c)]["optimized_activation"] = float(optimized.activations[c])
        if optimized is not None:
            np.savez(
                os.path.join(out, layer, "optimized.npz"),
                images=pictures.to_bytes(optimized.images),
                activations=optimized.activations,
                method=optimized.method,
                steps=optimized.steps,
            )
        tiles = np.stack(tiles)
        write_png(os.path.join(out, f"{layer}_overview.png"), pictures.grid(tiles, int(np.ceil(np.sqrt(channels)))))
        tf.summary.image(
            f"explore/{split}/{layer}",
            tiles,
            step=0,
            max_outputs=len(tiles),
            description=f"{layer}, {self.mode}: image i is channel i; left the "
            "top projections, right the receptive-field patches",
        )
        return index

    def compare(self, layer: str, image_ids) -> np.ndarray:
        """Rows per image: original | deconvnet | bias_subtract | guided | plain gradient (modes that
        the network allows), of the
        strongest unit of the image's strongest feature map in `layer`. Returns [H, W, 3]."""
        inputs = self._inputs(np.asarray(image_ids))
        name = self.graph.resolve(layer)
        channels, positions = strongest_unit(self.graph.forward(inputs)[name])
        panels = [self.preprocess.pictures(self._read(image_ids)[0])]
        for mode in self.modes(layer):
            projector = Deconvnet(self.graph, mode, rectify=self.rectify)
            panels.append(pictures.to_display(projector.project(inputs, layer, channels, positions).numpy()))
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            tensors = self.graph.forward(inputs)
            unit = unit_signal(tensors[name], channels, positions, impulse=True)
            objective = tf.reduce_sum(unit * tensors[name])
        panels.append(pictures.to_display(tape.gradient(objective, inputs).numpy()))
        strips = pictures.stitch([pictures.upscale(np.asarray(p, np.float32), 4) for p in panels])
        return pictures.grid(strips, 1)

    def modes(self, layer: str) -> list[str]:
        """The projection modes `layer` allows (bias_subtract only above plain chains)."""
        allowed = []
        for mode in reconstruct.MODES:
            try:
                if mode == "bias_subtract":
                    reconstruct.check_bias_subtract(self.graph, [self.graph.resolve(layer)])
                allowed.append(mode)
            except ValueError:
                pass
        return allowed


def _thumbnail(tile: np.ndarray) -> np.ndarray:
    """[H, W, 3] float in [0, 1] -> uint8, every f-th pixel where H > TILE_LIMIT (f the smallest that fits):
    the overview and the summary of thousands of channels at 224x224 stay a few hundred MB."""
    step = -(-tile.shape[0] // TILE_LIMIT)
    return pictures.to_bytes(tile[::step, ::step])
