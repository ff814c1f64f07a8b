"""`analyze(options)`: runs the analysis whose options it is given (one class per analysis, `options.ANALYSES`),
checked before a model loads, with the run folder held while it writes there; and the explorer's `--sanity`."""

from vizdeconv.analyze.options import ANALYSES, SanityOptions

IMAGE_IDS = r"(first:\d+|[\d,\s]+)"  # --images as ids of a split; anything else is a file (attribute)


def split_images(images) -> tuple[str | None, list[str] | None]:
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


def _check(options) -> dict:
    """What is checked before a model is loaded (one-line errors); returns what the run needs of it."""
    from vizdeconv.analyze import attribute, optimize

    kind = next(name for name, cls in ANALYSES.items() if type(options) is cls)
    if kind == "optimize":
        from vizdeconv.methods import feature_vis

        feature_vis.check_method(options.method)
        if options.steps is not None and options.steps <= 0:
            raise ValueError(f"--steps must be positive, got {options.steps}")
        optimize.parse_channels(options.channels)
        return {"kind": kind}
    if kind == "attribute":
        ids, files = split_images(options.images)
        attribute.check(options, files)
        return {"kind": kind, "ids": ids, "files": files}
    images = getattr(options, "images", None)
    if images is not None and split_images([images])[1]:
        raise ValueError(f"--images of {kind} are ids of the split like 0,5,17 or first:N, got {images!r}")
    return {"kind": kind}


def analyze(options, log=print) -> dict:
    """Runs one analysis, given its `options` (`OcclusionOptions`, ..., `AttributeOptions`); the run folder is
    held while it writes there; `log` takes the progress lines. Returns the last report (one per layer for
    evolution and sanity), each with `out`."""
    import contextlib

    from vizdeconv.analyze import analyses, attribute, optimize
    from vizdeconv.runs.lock import RunLock
    from vizdeconv.runs.subject import open_subject

    if type(options) not in ANALYSES.values():
        raise ValueError(f"analyze takes the options of one analysis ({', '.join(ANALYSES)}), got {options!r}")
    checked, o = _check(options), options
    kind = checked["kind"]
    subject = open_subject(o.run, o.model, o.data_dir, o.preprocess, log,
                           need_data=kind != "optimize" and not checked.get("files"), weights=o.weights,
                           tfds_data_dir=o.tfds_data_dir)  # fmt: skip
    layers = getattr(o, "layers", None) or [getattr(o, "layer", None)]
    for layer in layers:
        if layer is not None:
            subject.graph.resolve(layer)
    # One runner per analysis: (subject, options, what _check found, log) -> the last report.
    runners = {
        "occlusion": lambda: analyses.run_occlusion(subject, o, log),
        "evolution": lambda: [analyses.run_evolution(subject, o, layer, log) for layer in layers][-1],
        "invariance": lambda: analyses.run_invariance(subject, o, log),
        "sanity": lambda: [analyses.run_sanity(subject, o, layer, log) for layer in layers][-1],
        "optimize": lambda: optimize.run_optimize(subject, o, log),
        "attribute": lambda: attribute.run_attribute(subject, o, checked["ids"], checked["files"], log),
    }
    with RunLock(o.run, log, what=f"analyze {kind}") if o.run else contextlib.nullcontext():
        return runners[kind]()


def explorer_sanity(split: str, log=print):
    """The explorer's `--sanity`: an `after_scan` for `explore` that runs the cascading randomization
    analysis on each explored layer of the `split`, its pictures in `<out>/sanity/`, its curves in the report;
    `log` takes one line per layer."""

    def run(subject, layers, out, mode) -> dict:
        from vizdeconv.analyze import analyses

        report = {}
        folder = f"{out}/sanity"
        for layer in layers:
            options = SanityOptions(split=split, mode=mode, out=folder)
            result = analyses.run_sanity(subject, options, layer, log=lambda *_: None)
            report[layer] = {key: [float(v) for v in result[key]] if key != "stages" else result[key]
                             for key in ("stages", "spearman", "ssim")}  # fmt: skip
            log(f"sanity {layer}: spearman {result['spearman'][-1]:.3f}, ssim {result['ssim'][-1]:.3f} "
                f"with every layer randomized (stages in {folder})")  # fmt: skip
        return {"sanity": report}

    return run
