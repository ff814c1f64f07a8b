"""Dataset-wide feature explorer: the top-k activations of every feature map, projected and cropped.

  vizdeconv explore --run logs/default --layer conv2 [--layer conv3] [--split test]
                    [--limit N] [--top_k 9] [--mode deconvnet] [--compare] [--sanity]
  vizdeconv explore --model my_cnn.keras --data_dir PATH [--preprocess auto] [--layer NAME]

For every feature map of the chosen layers it finds the k strongest activations over the data set (a
running top-k, one entry per image), projects each alone from its single strongest unit, and crops
the matching image patch to that unit's receptive field (Zeiler & Fergus 2014, Fig. 2). Outputs PNGs
and `index.json` in `--out` (default `<run>/explore/<split>`) and image summaries under `<run>/explore`.
"""

import contextlib
import dataclasses
import os
import time

from vizdeconv.config import RECTIFY_HELP, SPLITS
from vizdeconv.errors import make_folder
from vizdeconv.methods import feature_vis
from vizdeconv.methods.reconstruct import MODES, RECTIFY
from vizdeconv.options import option
from vizdeconv.runs.subject import SubjectOptions

PROBES = 16  # first images of the split that the TensorBoard tab can project on demand


# 9 parameters: the explorer's scan of images already in memory (evolution's), over ScanOptions.
def scan(
    model,
    images,
    layers,
    k: int = 9,
    batch_size: int = 500,
    image_size: int = 24,
    strategy=None,
    progress: bool = True,
    preprocess=None,
) -> dict:
    """Running top-k of every feature map of `layers` over `images` [N, H, W, C] uint8 in memory (the
    explorer itself streams its source: `scanning.scan_source`).

    Args:
      model: a Keras model, the reference convnet or a Graph.
      images: [N, H, W, C] uint8 pixels.
      layers: the layers whose maps are scanned.
      k: how many strongest activations (one per image) each map keeps.
      batch_size: images per step.
      image_size: the side of the reference trainer's central crop (used by the default `preprocess`).
      strategy: a tf.distribute strategy; each replica keeps its own running top-k, merged exactly.
      progress: show a progress bar.
      preprocess: uint8 batch -> model inputs (default: the reference trainer's central crop of
        `image_size` and standardization).

    Returns:
      {layer: {"values", "image_ids", "positions"}}, NumPy arrays [channels, k], strongest first.
    """
    import numpy as np

    from vizdeconv.data import sources
    from vizdeconv.explore.scanning import Scan, ScanOptions
    from vizdeconv.methods.deconvnet import as_graph
    from vizdeconv.nn.preprocess import preprocess_eval

    source = sources.ArraySource(images, np.zeros(len(images), np.int32), "images")
    preprocess = preprocess or (lambda x: preprocess_eval(x, image_size))
    scan_options = ScanOptions(k=k, batch_size=batch_size, preprocess=preprocess, strategy=strategy, progress=progress)
    state = Scan(as_graph(model), source, layers, scan_options).run()
    return state.tops


@dataclasses.dataclass(kw_only=True)
class ExploreOptions(SubjectOptions):
    """What the explorer looks at and how: the flags of `vizdeconv explore`, derived from these fields (their
    defaults are the only ones; `run`, `model`, `weights`, `data_dir`, `tfds_data_dir` and `preprocess` come
    from `SubjectOptions`)."""

    layers: list[str] | None = option(
        help="layer to explore (default: every rectified feature map; all: every block's output maps; every: "
        "also the steps inside blocks, such as a convolution before its normalization); repeat for several",
        flag="--layer",
        repeat=True,
    )
    split: str = option("test", "the split scanned", choices=SPLITS)
    limit: int = option(0, "scan only the first N images")
    top_k: int = option(9, "activations kept per feature map")
    mode: str | None = option(None, "projection rule (default: the run's reconstruction.mode, or deconvnet)",
                              choices=MODES)  # fmt: skip
    rectify: str | None = option(None, RECTIFY_HELP, choices=RECTIFY)
    out: str | None = option(None, "output folder (default: <run>/explore/<split>, or <model>_explore/<split>)")
    batch_size: int = option(500, "images per scan batch")
    compare: bool = option(False, "also render the projection modes side by side")
    sanity: bool = option(False, "also run the cascading randomization sanity check (as vizdeconv analyze "
                                 "sanity) on each layer")  # fmt: skip
    optimize: bool = option(False, "also optimize an image for each feature map (as vizdeconv analyze optimize) "
                                   "and show it beside its top-k")  # fmt: skip
    method: str = option("fourier", "--optimize: fourier (Olah et al. 2017) or pixel (Yosinski et al. 2015) "
                                    "parametrization", choices=feature_vis.METHODS)  # fmt: skip
    steps: int | None = option(None, f"--optimize: optimization steps (default: {feature_vis.DEFAULT_STEPS})")
    seed: int = option(0, "--optimize: the images' randomness")
    strategy: str = option("default", "tf.distribute strategy of the scan: default, mirrored (--devices), "
                           "multi_worker (TF_CONFIG: each process scans its share into --out/workers/RANK, the "
                           "chief merges them and renders)")  # fmt: skip
    devices: str = option("", "device list for --strategy mirrored")
    shard: str | None = option(None, "i/N: scan only part i of N of the data into --out (one part per worker; "
                                     "combine them with merge)")  # fmt: skip
    save_every: int = option(10000, "save the scan state every N images (a killed scan resumes)")
    strict: bool = option(False, "stop at the first image that cannot be decoded (default: skip it)")
    labels: str | None = option(None, "a file of the model's class names, one a line (shown by the TensorBoard tab)")

    def check(self) -> None:
        """ValueError / FileNotFoundError for settings a user got wrong, before anything loads."""
        from vizdeconv.explore.scanning import parse_shard

        if self.top_k < 1 or self.limit < 0 or self.batch_size < 1 or self.save_every < 1:
            raise ValueError("--top_k, --batch_size and --save_every must be positive and --limit not negative")
        parse_shard(self.shard)
        if self.optimize:
            feature_vis.check_method(self.method)
            if self.steps is not None and self.steps < 1:
                raise ValueError(f"--steps must be positive, got {self.steps}")
        if self.run is not None and not os.path.isdir(self.run):
            raise FileNotFoundError(f"run folder {self.run} does not exist")


def explore(options: ExploreOptions, log=print, after_scan=None) -> dict:
    """The whole explorer as a function (what the command runs) on a run folder or a `.keras` file;
    returns a summary dict, also written to `<out>/index.json`. A run folder is held (one writer at a
    time) while the explorer writes into it; a refused write (full disk) is a one-line WriteError.

    Args:
      options: the command's flags as an `ExploreOptions`.
      log: where the progress lines go (one string each).
      after_scan: called as `after_scan(subject, layers, out, mode)` before index.json is written; what it
        returns joins the report (the command's `--sanity` runs the analysis there).
    """
    import tensorflow as tf

    from vizdeconv.errors import WriteError, is_write_failure, reason
    from vizdeconv.runs.lock import RunLock

    options.check()
    if options.strategy == "multi_worker":
        return _multi_worker(options, log, after_scan)
    # A part of a sharded scan only reads the run (its output folder is held instead), so the parts of
    # one run can be scanned at the same time.
    writes_run = options.run is not None and options.shard is None
    holding = RunLock(options.run, log, what="explore") if writes_run else contextlib.nullcontext()
    with holding:
        try:
            return _explore(options, log, after_scan)
        except (OSError, tf.errors.OpError) as error:
            if isinstance(error, WriteError) or not is_write_failure(error):
                raise
            raise WriteError(
                f"could not write the explorer's output ({reason(error)}); free space and run the same command again"
            ) from None


def _optimize(subject, layers, tops, options: ExploreOptions, log) -> dict:
    """{layer: feature_vis.Optimized} for every channel of each explored layer."""
    from vizdeconv.methods.feature_vis import FeatureVisualization

    visualization = FeatureVisualization(subject.model, options.method, True, subject.pixels.from_unit)
    height, width = visualization.height, visualization.width
    # Batches of images small enough to backpropagate through a large network at its input size.
    batch = max(4, min(64, 2**19 // (height * width)))
    results = {}
    for layer in layers:
        count = tops[layer]["values"].shape[0]
        log(f"optimizing an image for each of {layer}'s {count} feature maps ({options.method}, {batch} at once)")
        # The centre unit, as the Deep Visualization Toolbox does: the top-k beside it are single units too.
        results[layer] = visualization.optimize(
            layer, unit="center", steps=options.steps, seed=options.seed, batch_size=batch
        )
    return results


def _layers(graph, wanted) -> list[str]:
    """The layers to scan: `wanted` (["all"]: every block's output maps, `Graph.block_outputs`; ["every"]:
    every feature layer, also the steps inside blocks; None: the rectified feature maps)."""
    from vizdeconv.viz import summaries

    if wanted and "every" in wanted:
        return list(graph.feature_layers)
    if wanted and "all" in wanted:
        return list(graph.block_outputs)
    layers = wanted or summaries.default_layers(graph)
    for layer in layers:
        name = graph.resolve(layer)
        if len(graph.shapes[name]) != 3:
            raise ValueError(
                f"layer {layer!r} has no feature maps (shape {graph.shapes[name]}); pick one of "
                f"{', '.join(graph.feature_layers)}, all or every"
            )
    return list(layers)


def _settings(subject, source, options: ExploreOptions) -> dict:
    """What makes two scans the same: a resumed scan (or the parts of a merge) must agree on all of it.
    Folders and files may move: the network is named by its checkpoint step or its file's name, size and
    time, the data by its fingerprint."""
    model, identity = options.model, None
    if model is not None and os.path.isfile(model):
        info = os.stat(model)
        model, identity = os.path.basename(model), [info.st_size, int(info.st_mtime)]
    return {
        "model": model,
        "model_file": identity,
        "step": subject.step,
        "weights": os.path.basename(options.weights) if options.weights else None,
        "source": source.fingerprint,
        "split": options.split,
        "preprocess": subject.pixels.scaling,
    }


OPTIONS_FILE = "explore_options.json"


def _explore(options: ExploreOptions, log, after_scan) -> dict:
    from vizdeconv.runs.lock import RunLock
    from vizdeconv.runs.subject import open_subject

    subject = open_subject(options.run, options.model, options.data_dir, options.preprocess, log,
                           weights=options.weights, tfds_data_dir=options.tfds_data_dir)  # fmt: skip
    subject.class_names(options.labels)  # a labels file is read and checked against the outputs before the scan
    split = options.split
    out = options.out or (
        os.path.join(subject.root, "explore", split) if options.run else os.path.join(subject.root, split)
    )
    make_folder(out, "explorer output folder", "--out")
    same = options.run is not None and os.path.realpath(out) == os.path.realpath(options.run)
    holding = RunLock(out, log, what="explore", folder="explorer output folder", flag="--out")
    with contextlib.nullcontext() if same else holding:
        return _explore_into(subject, out, options, log, after_scan)


# 81 lines: the explorer's steps in order (scan, render, probes, report); each step is a call.
def _explore_into(subject, out: str, options: ExploreOptions, log, after_scan) -> dict:
    import json

    import numpy as np
    import tensorflow as tf
    from tqdm import tqdm

    from vizdeconv.explore import render as explore_render
    from vizdeconv.explore import scanning
    from vizdeconv.hardware import cpu, distribute, precision
    from vizdeconv.methods.deconvnet import Deconvnet
    from vizdeconv.viz import pictures
    from vizdeconv.viz.plugin import probes as probes_lib

    mode, root, pixels, split = options.mode or subject.mode, subject.root, subject.pixels, options.split
    rectify = options.rectify or subject.rectify
    deconvnet = Deconvnet(subject.model, mode, rectify=rectify)
    graph = deconvnet.graph
    source = subject.source(split)
    layers = _layers(graph, options.layers)
    count = min(source.count, options.limit) if options.limit else source.count
    if count < options.top_k:
        raise ValueError(f"only {count} images to scan, fewer than --top_k {options.top_k}")
    with open(os.path.join(out, OPTIONS_FILE), "w") as handle:
        json.dump(_portable(options), handle, indent=1)
    shard = scanning.parse_shard(options.shard)
    log(f"scanning {source.name} with {cpu.onednn_header(precision.onednn_enabled())}")
    scan_options = scanning.ScanOptions(
        k=options.top_k,
        batch_size=options.batch_size,
        preprocess=pixels.inputs,
        strategy=distribute.make_strategy(options.strategy, options.devices),
        shard=shard,
        limit=options.limit,
        state_path=os.path.join(out, scanning.STATE_FILE),
        settings=_settings(subject, source, options),
        save_every=options.save_every,
        strict=options.strict,
    )
    state = scanning.Scan(graph, source, layers, scan_options, log).run()
    tops, scanned, skipped = state.tops, state.scanned, state.skipped
    if len(skipped):
        scanning.write_skipped(os.path.join(out, scanning.SKIPPED_FILE), source, skipped)
    where = f" ({len(skipped)} skipped: listed in {os.path.join(out, scanning.SKIPPED_FILE)})" if len(skipped) else ""
    log(f"scanned {scanned} {split} images{where} for {len(layers)} layers in {state.seconds:.1f} s")
    report = {"out": out, "images": int(scanned), "skipped": int(len(skipped)), "scan_seconds": state.seconds,
              "mode": mode, "rectify": rectify, "source": source.name, "layers": layers}  # fmt: skip
    if options.shard is not None:
        report["shard"] = options.shard
        return report
    optimized = _optimize(subject, layers, tops, options, log) if options.optimize else {}
    renderer = explore_render.Renderer(deconvnet, source, pixels)
    events = os.path.join(root, "explore") if options.run else root
    index = {}
    # The second pass (projections and crops of every map's top-k) takes minutes to hours with many or wide
    # layers: a bar over the units projected. Each layer's summary is written as soon as it is drawn, so
    # memory holds one layer's pictures at a time.
    units = sum(tops[layer]["image_ids"].size for layer in layers)
    with tqdm(total=units, desc="project", unit="unit", unit_scale=True, dynamic_ncols=True) as bar:
        with tf.summary.create_file_writer(events).as_default():
            for number, layer in enumerate(layers, 1):
                bar.set_postfix_str(f"{layer} ({number}/{len(layers)})")
                index[layer] = renderer.render_layer(layer, tops[layer], out, split, optimized.get(layer), bar.update)
    probes, probe_ids = [], []
    for image, image_id in source.elements(0, min(count, PROBES * 4)).take(PROBES):
        probes.append(image.numpy())
        probe_ids.append(int(image_id))
    probes_lib.write_subject_probes(subject, events, np.stack(probes), source.labels(probe_ids), count=PROBES,
                                    ids=probe_ids, explorations={split: out})  # fmt: skip
    if optimized:
        report["optimize"] = {
            "method": options.method,
            "steps": next(iter(optimized.values())).steps,
            "layers": {layer: explore_render.beats_top1(result, tops[layer]) for layer, result in optimized.items()},
        }
    if options.compare:
        probe = np.unique(tops[layers[-1]]["image_ids"][:, 0])[:6]  # images that top some channel
        pictures.write_png(os.path.join(out, f"compare_{layers[-1]}.png"), renderer.compare(layers[-1], probe))
    if after_scan is not None:
        report.update(after_scan(subject, layers, out, mode))
    explore_render.write_index(os.path.join(out, "index.json"), index, report)
    return report


def _portable(options: ExploreOptions) -> dict:
    """The options as JSON, paths absolute, so `merge` can reopen what the parts scanned from anywhere."""
    values = dataclasses.asdict(options)
    for key in ("run", "data_dir", "weights", "tfds_data_dir", "out"):
        if values[key] and os.path.exists(values[key]):
            values[key] = os.path.abspath(values[key])
    if values["model"] and os.path.exists(values["model"]):
        values["model"] = os.path.abspath(values["model"])
    return values


def _multi_worker(options: ExploreOptions, log, after_scan) -> dict:
    """The scan on every process of a TF_CONFIG cluster: process r of W scans shard r/W of the data with its
    own devices into `<out>/workers/<r>` (`--out` on a file system they share); the chief (rank 0) waits for
    every part, merges them and renders, as `merge` does. The others return their part's report."""
    from vizdeconv.explore import scanning
    from vizdeconv.hardware import distribute

    if options.shard is not None:
        raise ValueError("--strategy multi_worker shards the data itself; leave out --shard")
    if options.out is None:
        raise ValueError("--strategy multi_worker needs an --out folder that every worker can reach")
    rank, workers = distribute.tf_config_rank()
    parts = [os.path.join(options.out, "workers", str(r)) for r in range(workers)]
    part = dataclasses.replace(options, strategy="default", devices="", shard=f"{rank}/{workers}", out=parts[rank])
    report = explore(part, log)
    if rank:
        return dict(report, merged_by_chief=True)
    waiting = set(parts)
    started = last_notice = time.monotonic()
    while waiting:
        for folder in sorted(waiting):
            try:
                if scanning.ScanState.load(os.path.join(folder, scanning.STATE_FILE)).done:
                    waiting.discard(folder)
            except (ValueError, FileNotFoundError):
                pass  # not started or being written
        if waiting and time.monotonic() - last_notice > 60:
            log(f"waiting {time.monotonic() - started:.0f} s for the parts of {', '.join(sorted(waiting))}")
            last_notice = time.monotonic()
        time.sleep(0.2 if waiting else 0)
    return merge(parts, options.out, log, after_scan=after_scan)


def merge(parts: list[str], out: str, log=print, after_scan=None, **overrides) -> dict:
    """Combines the folders of a sharded scan (`--shard i/N` with the same settings, i = 0..N-1) into the
    result of one scan in `out`, then renders it as `explore` does (with the parts' options, updated by
    `overrides`, e.g. mode or optimize). Returns the report.

    Args:
      parts: the parts' `--out` folders, one per shard.
      out: the merged result's folder.
      log: where the progress lines go (one string each).
      after_scan: as for `explore`.
      **overrides: options that replace the parts' own for rendering.

    Raises:
      ValueError / FileNotFoundError: a part is missing, unfinished, or of another scan.
    """
    import json

    from vizdeconv.explore import scanning

    states = []
    for part in parts:
        path = os.path.join(part, scanning.STATE_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{part} holds no scan ({scanning.STATE_FILE}); is it the --out of a --shard scan?")
        states.append(scanning.ScanState.load(path))
    merged = scanning.merge_states(states)
    with open(os.path.join(parts[0], OPTIONS_FILE)) as handle:
        values = json.load(handle)
    values.update(overrides, out=out, shard=None)
    options = ExploreOptions(**values)
    make_folder(out, "explorer output folder", "--out")
    state_path = os.path.join(out, scanning.STATE_FILE)
    if os.path.exists(state_path):
        existing = scanning.ScanState.load(state_path)
        if existing.settings != merged.settings:
            raise ValueError(f"{out} holds another scan; pass another --out, or delete {state_path}")
    merged.save(state_path)
    log(f"merged {len(parts)} parts: {merged.scanned} images, {len(merged.skipped)} skipped")
    return explore(options, log, after_scan)
