"""Compares what trained runs learned: accuracy, conv1 filters side by side, class purity of the top-9.

    python scripts/compare_runs.py logs/ref3000 logs/tuned logs/deep [--out logs/compare]

For each run folder: its test accuracy (metrics.json), its first layer's filters (one PNG per run,
plus all of them side by side in OUT/conv1_filters.png), and, where the explorer has run on it
(`python -m vizdeconv.explore --run RUN`), how class-specific the top-9 of its last explored layer are:
for each feature map, the share of its 9 images that belong to the map's most common class, averaged
over maps (1.0: every map's top-9 are all one class; 0.1 would be chance for CIFAR-10's 10 classes).
"""

import argparse
import collections
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def class_purity(index_path: str) -> tuple[str, float, list[float]]:
    """(layer, mean purity, purity per map) of the last layer in an explorer index.json."""
    with open(index_path) as handle:
        layers = json.load(handle)["layers"]
    layer = list(layers)[-1]
    purity = []
    for entry in layers[layer].values():
        counts = collections.Counter(entry["labels"])
        purity.append(counts.most_common(1)[0][1] / len(entry["labels"]))
    return layer, float(np.mean(purity)), purity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out", default=os.path.join("logs", "compare"))
    args = parser.parse_args()

    from vizdeconv.runs.subject import open_subject
    from vizdeconv.viz import pictures
    from vizdeconv.viz.inspection import Inspector

    os.makedirs(args.out, exist_ok=True)
    print("| run | steps | test accuracy | explored layer | top-9 class purity |\n|---|---|---|---|---|")
    grids = []
    for run in args.runs:
        model = open_subject(run=run, log=lambda *_: None, need_data=False).model
        name = os.path.basename(os.path.normpath(run))
        grid = Inspector(model).first_layer_filters()
        pictures.write_png(os.path.join(args.out, f"conv1_{name}.png"), grid)
        grids.append(grid)
        with open(os.path.join(run, "metrics.json")) as handle:
            metrics = json.load(handle)
        index = os.path.join(run, "explore", "test", "index.json")
        layer, purity = ("-", float("nan"))
        if os.path.isfile(index):
            layer, purity, _ = class_purity(index)
        print(f"| {name} | {metrics.get('step')} | {metrics.get('test_accuracy')} | {layer} | {purity:.3f} |")
    height, width = max(g.shape[0] for g in grids), max(g.shape[1] for g in grids)
    padded = [
        np.pad(g, ((0, height - g.shape[0]), (0, width - g.shape[1]), (0, 0)), constant_values=1.0) for g in grids
    ]
    pictures.write_png(os.path.join(args.out, "conv1_filters.png"), pictures.stitch([p[None] for p in padded])[0])
    print(f"conv1 filters: {os.path.join(args.out, 'conv1_filters.png')} (runs left to right: {', '.join(args.runs)})")


if __name__ == "__main__":
    main()
