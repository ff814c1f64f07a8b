"""`vizdeconv analyze attribute`: why the model gave each image its class, by every attribution method.

Per image: a figure (the image, then each method's map over it with a colour bar, the class and its score
in the title), an `.npz` of every method's maps and raw output, and in `attribute.json` each method's
deletion and insertion AUC (`methods.metrics`) beside a random and a centre-Gaussian map; TensorBoard
images under `analyze/attribute`.
"""

import json
import os

import numpy as np

from vizdeconv.analyze import figures
from vizdeconv.analyze.options import AttributeOptions
from vizdeconv.methods import attribution, metrics
from vizdeconv.viz.pictures import write_png

DEFAULT_METHODS = attribution.METHODS


def check(options: AttributeOptions, files: list[str] | None = None) -> list[str]:
    """The methods, the image `files` and the labels file, checked before a model is loaded (one-line errors)."""
    methods = list(options.methods or DEFAULT_METHODS)
    for method in methods:
        attribution.check_method(method)
    if options.smooth < 0 or options.steps < 1 or options.limit < 0:
        raise ValueError("--smooth, --limit must be >= 0 and --steps >= 1")
    for path in files or []:
        if not os.path.exists(path):
            raise FileNotFoundError(f"image file {path} does not exist")
    if options.labels is not None and not os.path.isfile(options.labels):
        raise FileNotFoundError(f"labels file {options.labels} does not exist")
    return methods


def parse_target(target: str | None, names: list[str]):
    """None for the top class, else the class index (a number or one of `names`)."""
    if target is None or target == "top":
        return None
    if target.lstrip("-").isdigit():
        index = int(target)
    elif target in names:
        index = names.index(target)
    else:
        raise ValueError(f"--target must be top, a class index or a class name, got {target!r}")
    if not 0 <= index < len(names):
        raise ValueError(f"--target {index} is out of range: the model has {len(names)} outputs (0..{len(names) - 1})")
    return index


def read_files(paths: list[str], size, log=print):
    """Images [N, H, W, C] uint8 of the readable files (decoded as the explorer decodes a folder: the
    central window of the model's aspect ratio, resized), their names, and the skipped files with why."""
    import tensorflow as tf

    from vizdeconv.data.sources import decode, first_error_line

    images, names, skipped = [], [], []
    channels = int(size[2])
    for path in paths:
        try:
            with open(path, "rb") as handle:
                contents = handle.read()
            if not contents:
                raise ValueError("empty file")
            images.append(decode(tf.constant(contents), size[:2], channels).numpy())
            names.append(os.path.basename(path))
        except (tf.errors.OpError, ValueError, OSError) as error:
            reason = first_error_line(error)
            skipped.append({"file": path, "why": reason})
            log(f"skipped {path}: {reason}")
    if not images:
        raise ValueError(f"none of the {len(paths)} image file(s) could be decoded")
    return np.stack(images), names, skipped


def _load(subject, options: AttributeOptions, ids: str | None, files: list[str] | None, log):
    """(uint8 images, their names, their labels or None, skipped files) of image `files`, else of the split's
    `ids` ("0,5,17" or "first:N"), else of its first `options.limit` (default 4)."""
    if files:
        images, names, skipped = read_files(files, subject.graph.input_shape, log)
        return images, names, None, skipped
    from vizdeconv.analyze.analyses import pick_images

    images, labels = subject.load(options.split)
    spec = ids or f"first:{min(options.limit or 4, len(images))}"
    ids = pick_images(spec, len(images))
    return images[ids], [f"{options.split} {i}" for i in ids], labels[ids], []


def run_attribute(subject, options: AttributeOptions, ids=None, files=None, log=print) -> dict:
    """Explains the chosen images (`_load`) with every method; writes figures, `.npz`, `attribute.json` and
    summaries.

    Returns:
      {"out": folder, "images": [...], "methods": {method: {"deletion": mean AUC, "insertion": mean AUC}}}
    """
    from vizdeconv.analyze.analyses import _out, _summary

    methods = check(options, files)
    names = subject.class_names(options.labels)
    target = parse_target(options.target, names)
    raw_images, image_names, labels, skipped = _load(subject, options, ids, files, log)
    inputs = np.asarray(subject.pixels.inputs(raw_images))
    pictures = subject.pixels.pictures(raw_images)
    folder = _out(subject, "attribute", options.out)
    results, rectify = {}, options.rectify or subject.rectify
    for method in methods:
        settings = {"steps": options.steps} if method == "integrated_gradients" else {}
        settings["rectify"] = rectify  # Guided Grad-CAM guides where the run's projections do (a GELU run: all)
        if method == "scorecam":
            settings["max_maps"] = options.max_maps
        elif options.smooth:
            settings["smooth"] = options.smooth
        layer = options.layer if method in attribution.LAYER_METHODS else None
        results[method] = attribution.Attribution(subject.model, method, layer, **settings).explain(inputs, target)
        log(f"{method}: {len(inputs)} image(s)")
    report = _faithfulness(subject, inputs, results)
    entries, figures_drawn = [], []
    for i, name in enumerate(image_names):
        first = results[methods[0]]
        caption = name if labels is None else f"{name}: {names[int(labels[i])]}"
        panels = [{"method": m, "map": r.maps[i],
                   "title": f"{names[int(r.targets[i])]} ({r.scores[i]:.2f})"} for m, r in results.items()]  # fmt: skip
        figure = figures.attribution_figure(pictures[i], panels, caption)
        stem = f"image_{i:05d}"
        write_png(os.path.join(folder, f"{stem}.png"), figure)
        np.savez(os.path.join(folder, f"{stem}.npz"), picture=pictures[i],
                 **{f"{m}_map": r.maps[i] for m, r in results.items()},
                 **{f"{m}_raw": r.raw[i] for m, r in results.items()})  # fmt: skip
        figures_drawn.append(figure)
        entries.append({
            "name": name, "file": stem, "label": None if labels is None else int(labels[i]),
            "target": int(first.targets[i]), "class": names[int(first.targets[i])], "score": float(first.scores[i]),
            "auc": {m: {k: float(v[i]) for k, v in per.items()} for m, per in report.items()},
        })  # fmt: skip
    means = {m: {k: float(np.mean(v)) for k, v in per.items()} for m, per in report.items()}
    summary = {"methods": methods, "layer": {m: results[m].layer for m in methods}, "rectify": rectify, "auc": means,
               "deletion": "most-attributed pixels set to 0 in the model's input space (RISE)",
               "insertion": "most-attributed pixels put back into the image blurred by a Gaussian (RISE)",
               "images": entries, "skipped": skipped}  # fmt: skip
    with open(os.path.join(folder, "attribute.json"), "w") as handle:
        json.dump(summary, handle, indent=1)
    _summary(subject, "analyze/attribute", figures_drawn, probes=not files)
    log(f"attribution of {len(entries)} image(s) by {', '.join(methods)} written to {folder}")
    return {"out": folder, "images": entries, "methods": means, "skipped": skipped}


def _faithfulness(subject, inputs, results) -> dict:
    """{method or baseline: {"deletion": [N] AUC, "insertion": [N] AUC}} for each method's own target."""
    size = inputs.shape[1:3]
    first = next(iter(results.values()))
    targets = first.targets if (first.targets >= 0).all() else None
    maps = {m: r.maps for m, r in results.items()}
    maps["random (baseline)"] = metrics.random_maps(len(inputs), size)
    maps["centre (baseline)"] = metrics.center_maps(len(inputs), size)
    report = {}
    for name, values in maps.items():
        target = results[name].targets if name in results else targets
        report[name] = {
            "deletion": metrics.deletion(subject.model, inputs, values, target).auc,
            "insertion": metrics.insertion(subject.model, inputs, values, target).auc,
        }
    return report
