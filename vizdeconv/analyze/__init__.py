"""The paper's other analyses on a run folder or a `.keras` file: occlusion (Fig. 7), feature evolution
(Fig. 4), invariance (Fig. 5), the cascading randomization sanity check (Adebayo et al. 2018), and
feature visualization (`optimize`: an image optimized to excite each channel, Olah et al. 2017).

`analyze(AnalyzeOptions(...))` is what `vizdeconv analyze` runs; the single analyses are in `analyses`.
"""

import dataclasses

ANALYSES = ("occlusion", "evolution", "invariance", "sanity", "optimize")


@dataclasses.dataclass
class AnalyzeOptions:
    """One analysis and its settings (the flags of `vizdeconv analyze`).

    Attributes:
      analysis: one of ANALYSES.
      run: a run folder, or model: a `.keras` file (exactly one); data_dir, preprocess: as the explorer's.
      split: the split the images come from; images: ids like "0,5,17" or "first:N" (None: the analysis's
        default).
      layers: the layers (occlusion: at most one; evolution and sanity: each in turn; invariance: all
        together); None: the analysis's default.
      mode: projection rule of occlusion, evolution and sanity (None: deconvnet, or the run's for sanity);
        rectify: where it applies ("relu" or "all", see `Deconvnet`); weights: for `applications:NAME`;
        tfds_data_dir: where a `data_dir` of `tfds:NAME` is prepared.
      patch, stride: occlusion's grey square; limit: evolution's images; snapshots: evolution's `.keras`
        snapshots of a model; out: output folder.
      channels: optimize's channels ("0,5,17" or "all"); method: its method (fourier or pixel); steps:
        its steps (None: 256); unit: None (the channel's mean) or "center"; seed: its randomness.
    """

    analysis: str
    run: str | None = None
    model: str | None = None
    data_dir: str | None = None
    preprocess: str = "auto"
    split: str = "test"
    images: str | None = None
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
    method: str = "fourier"
    steps: int | None = None
    unit: str | None = None
    seed: int = 0


def analyze(options: AnalyzeOptions, log=print) -> dict:
    """Runs one analysis; the run folder is held while it writes there. Returns the last report (one per
    layer for evolution and sanity), each with `out`."""
    import contextlib

    from vizdeconv.analyze import analyses
    from vizdeconv.io.lock import RunLock
    from vizdeconv.io.subject import open_subject

    kind, layers = options.analysis, options.layers or [None]
    if kind not in ANALYSES:
        raise ValueError(f"analysis must be one of {', '.join(ANALYSES)}, got {kind!r}")
    if kind in ("occlusion", "optimize") and len(layers) > 1:
        raise ValueError(f"{kind} takes one layer: pass --layer once")
    if kind == "optimize":  # checked before a model is loaded
        from vizdeconv.analyze import optimize
        from vizdeconv.deconv import feature_vis

        channels = optimize.parse_channels(options.channels)
        feature_vis.check_method(options.method)
        if options.steps is not None and options.steps <= 0:
            raise ValueError(f"--steps must be positive, got {options.steps}")
    subject = open_subject(options.run, options.model, options.data_dir, options.preprocess, log,
                           need_data=kind != "optimize", weights=options.weights,
                           tfds_data_dir=options.tfds_data_dir)  # fmt: skip
    for layer in options.layers or []:
        subject.graph.resolve(layer)
    o = options
    holding = RunLock(o.run, log, what=f"analyze {kind}") if o.run else contextlib.nullcontext()
    with holding:
        if kind == "optimize":
            return optimize.run_optimize(subject, layers[0], channels, o.method, o.steps, o.unit, o.seed, o.out, log)
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
