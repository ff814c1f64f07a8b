"""The paper's other analyses on a run folder or a `.keras` file: occlusion (Fig. 7), feature evolution
(Fig. 4), invariance (Fig. 5), the cascading randomization sanity check (Adebayo et al. 2018), and
feature visualization (`optimize`: an image optimized to excite each channel, Olah et al. 2017), and class
attribution (`attribute`: Grad-CAM and its family, with deletion/insertion faithfulness; `attribute.py`).

`analyze(AnalyzeOptions(...))` is what `vizdeconv analyze` runs; the single analyses are in `analyses`.
"""

import dataclasses

ANALYSES = ("occlusion", "evolution", "invariance", "sanity", "optimize", "attribute")
IMAGE_IDS = r"(first:\d+|[\d,\s]+)"  # --images as ids of a split; anything else is a file (attribute)


@dataclasses.dataclass
class AnalyzeOptions:
    """One analysis and its settings (the flags of `vizdeconv analyze`).

    Attributes:
      analysis: one of ANALYSES.
      run: a run folder, or model: a `.keras` file (exactly one); data_dir, preprocess: as the explorer's.
      split: the split the images come from; images: ids like "0,5,17" or "first:N" (None: the analysis's
        default), or a list of them; attribute also takes image files.
      layers: the layers (occlusion: at most one; evolution and sanity: each in turn; invariance: all
        together); None: the analysis's default.
      mode: projection rule of occlusion, evolution and sanity (None: deconvnet, or the run's for sanity);
        rectify: where it applies ("relu" or "all", see `Deconvnet`); weights: for `applications:NAME`;
        tfds_data_dir: where a `data_dir` of `tfds:NAME` is prepared.
      patch, stride: occlusion's grey square; limit: evolution's images; snapshots: evolution's `.keras`
        snapshots of a model; out: output folder.
      channels: optimize's channels ("0,5,17" or "all"); methods: optimize's method (one of fourier, pixel;
        default fourier) or attribute's methods (default: all); steps: optimize's steps (None: 256) or
        integrated gradients' (None: 64); unit: None (the channel's mean) or "center"; seed: its randomness.
      target, smooth, max_maps, labels: attribute's (see `attribute.AttributeOptions`).
    """

    analysis: str
    run: str | None = None
    model: str | None = None
    data_dir: str | None = None
    preprocess: str = "auto"
    split: str = "test"
    images: str | list[str] | None = None
    layers: list[str] | None = None
    mode: str | None = None
    rectify: str = "relu"
    weights: str | None = None
    tfds_data_dir: str | None = None
    patch: int = 4
    stride: int = 1
    limit: int = 0
    snapshots: str | None = None
    out: str | None = None
    channels: str | None = None
    methods: list[str] | None = None
    steps: int | None = None
    unit: str | None = None
    seed: int = 0
    target: str | None = None
    smooth: int = 0
    max_maps: int | None = None
    labels: str | None = None


def _split_images(images) -> tuple[str | None, list[str] | None]:
    """(ids spec or None, image files or None) from --images."""
    import re

    if images is None or isinstance(images, str):
        return images, None
    ids = [item for item in images if re.fullmatch(IMAGE_IDS, item)]
    if len(ids) == len(images):
        return ",".join(ids), None
    if ids:
        raise ValueError("--images takes either image ids of the split or image files, not both")
    return None, list(images)


def analyze(options: AnalyzeOptions, log=print) -> dict:
    """Runs one analysis; the run folder is held while it writes there. Returns the last report (one per
    layer for evolution and sanity), each with `out`."""
    import contextlib

    from vizdeconv.analyze import analyses
    from vizdeconv.runs.lock import RunLock
    from vizdeconv.runs.subject import open_subject

    kind, layers = options.analysis, options.layers or [None]
    if kind not in ANALYSES:
        raise ValueError(f"analysis must be one of {', '.join(ANALYSES)}, got {kind!r}")
    image_ids, files = _split_images(options.images)
    if files and kind != "attribute":
        raise ValueError(f"--images of {kind} are ids of the split like 0,5,17 or first:N, got {files[0]!r}")
    if kind != "attribute" and options.methods and len(options.methods) > 1:
        raise ValueError(f"{kind} takes one --method")
    method = (options.methods or ["fourier"])[0]
    options = dataclasses.replace(options, images=image_ids)
    if kind in ("occlusion", "optimize", "attribute") and len(layers) > 1:
        raise ValueError(f"{kind} takes one layer: pass --layer once")
    if kind == "optimize":  # checked before a model is loaded
        from vizdeconv.analyze import optimize
        from vizdeconv.methods import feature_vis

        channels = optimize.parse_channels(options.channels)
        feature_vis.check_method(method)
        if options.steps is not None and options.steps <= 0:
            raise ValueError(f"--steps must be positive, got {options.steps}")
    if kind == "attribute":
        from vizdeconv.analyze import attribute

        attribute_options = attribute.AttributeOptions(
            options.methods, files, image_ids, options.limit, options.split, options.target, layers[0],
            options.smooth, options.steps or 64, options.max_maps, options.labels, options.out)  # fmt: skip
        attribute.check(attribute_options)
    subject = open_subject(options.run, options.model, options.data_dir, options.preprocess, log,
                           need_data=kind != "optimize" and not files, weights=options.weights,
                           tfds_data_dir=options.tfds_data_dir)  # fmt: skip
    for layer in options.layers or []:
        subject.graph.resolve(layer)
    o = options
    holding = RunLock(o.run, log, what=f"analyze {kind}") if o.run else contextlib.nullcontext()
    with holding:
        if kind == "optimize":
            return optimize.run_optimize(subject, layers[0], channels, method, o.steps, o.unit, o.seed, o.out, log)
        if kind == "attribute":
            return attribute.run_attribute(subject, attribute_options, log)
        if kind == "occlusion":
            return analyses.run_occlusion(subject, o.images or "first:3", o.patch, o.stride, layers[0], o.split, o.out,
                                          log, mode=o.mode or "deconvnet", rectify=o.rectify)  # fmt: skip
        if kind == "invariance":
            return analyses.run_invariance(subject, o.images or "first:5", o.layers, o.split, o.out, log)
        for layer in layers:
            if kind == "sanity":
                report = analyses.run_sanity(subject, layer, o.images or "first:6", o.split, o.mode, o.out, log,
                                             rectify=o.rectify)  # fmt: skip
            else:
                report = analyses.run_evolution(subject, layer, o.split, o.limit, o.snapshots, o.out, log,
                                                mode=o.mode or "deconvnet", rectify=o.rectify)  # fmt: skip
        return report


def explorer_sanity(split: str, log=print):
    """The explorer's `--sanity`: an `after_scan` for `explore` that runs the cascading randomization
    analysis on each explored layer, its pictures in `<out>/sanity/`, its curves in the report."""

    def run(subject, layers, out, mode) -> dict:
        from vizdeconv.analyze import analyses

        report = {}
        folder = f"{out}/sanity"
        for layer in layers:
            result = analyses.run_sanity(subject, layer, "first:6", split, mode, folder, log=lambda *_: None)
            report[layer] = {key: [float(v) for v in result[key]] if key != "stages" else result[key]
                             for key in ("stages", "spearman", "ssim")}  # fmt: skip
            log(f"sanity {layer}: spearman {result['spearman'][-1]:.3f}, ssim {result['ssim'][-1]:.3f} "
                f"with every layer randomized (stages in {folder})")  # fmt: skip
        return {"sanity": report}

    return run
