"""`analyze optimize`: a layer's images optimized by `methods.feature_vis.FeatureVisualization`, written as
a PNG grid, an `.npz` and TensorBoard images."""

import json
import os

import numpy as np

from vizdeconv.analyze.options import OptimizeOptions
from vizdeconv.methods import feature_vis
from vizdeconv.viz.pictures import grid, upscale, write_png


def parse_channels(spec: str | None):
    """ "0,5,17" -> [0, 5, 17]; None or "all" -> None (every channel)."""
    if spec is None or spec == "all":
        return None
    try:
        return [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--channels must be ids like 0,5,17 or all, got {spec!r}") from None


def figure(result: feature_vis.Optimized, columns: int = 16) -> np.ndarray:
    """The optimized images as one grid [rows * h', columns * w', 3], enlarged to at least 64 px a side."""
    factor = max(1, 64 // result.images.shape[1])
    return grid(upscale(result.images, factor), min(columns, len(result.images)))


def run_optimize(subject, options: OptimizeOptions | None = None, log=print):
    """Optimizes an image for each chosen channel of the options' layer of the subject and writes them.

    Writes `<out>/<layer>_<method>.png` (the grid, channels in order), `.npz` (images [C, H, W, 3],
    activations [C], channels [C]) and `.json`, and the images under `analyze/optimize/<layer>` in
    TensorBoard. Returns a report with `out`, `png`, `npz` and the optimization's figures.
    """
    from vizdeconv.analyze.analyses import _out, _summary

    o = options or OptimizeOptions()
    channels, method, steps, unit, seed, out = parse_channels(o.channels), o.method, o.steps, o.unit, o.seed, o.out
    layer = o.layer or subject.graph.feature_layers[-1]
    visualization = feature_vis.FeatureVisualization(subject.model, method, True, subject.pixels)
    steps_note = steps or feature_vis.DEFAULT_STEPS
    count = len(channels) if channels is not None else subject.graph.shapes[subject.graph.resolve(layer)][-1]
    log(f"optimize {layer}: {count} channel(s), {method}, {steps_note} steps, one batch")
    result = visualization.optimize(layer, channels, unit, steps, seed)
    folder = _out(subject, "optimize", out)
    stem = os.path.join(folder, f"{layer}_{method}")
    write_png(stem + ".png", figure(result))
    np.savez(stem + ".npz", images=result.images, activations=result.activations, channels=result.channels)
    report = {
        "layer": layer,
        "method": method,
        "steps": result.steps,
        "unit": unit or "mean",
        "seed": seed,
        "seconds": round(result.seconds, 2),
        "channels": result.channels.tolist(),
        "activations": [round(float(a), 4) for a in result.activations],
    }
    with open(stem + ".json", "w") as handle:
        json.dump(report, handle, indent=1)
    has_data = subject.run is not None or subject.data_dir is not None  # a bare model file has no images
    _summary(subject, f"analyze/optimize/{layer}", list(result.images), probes=has_data)
    log(
        f"{count} image(s) optimized in {result.seconds:.1f} s ({result.seconds / count:.2f} s a channel), "
        f"median strongest activation {np.median(result.activations):.3f}: {stem}.png"
    )
    return {**report, "out": folder, "png": stem + ".png", "npz": stem + ".npz"}
