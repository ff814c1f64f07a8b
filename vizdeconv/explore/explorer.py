"""Dataset-wide feature explorer: the top-k activations of every feature map, projected and cropped.

  vizdeconv explore --run logs/default --layer conv2 [--layer conv3] [--split test]
                    [--limit N] [--top_k 9] [--mode deconvnet] [--compare] [--sanity]
  vizdeconv explore --model my_cnn.keras --data_dir PATH [--preprocess auto] [--layer NAME]

For every feature map of the chosen layers it finds the k strongest activations over the data set (a
running top-k, one entry per image), projects each alone from its single strongest unit, and crops
the matching image patch to that unit's receptive field (Zeiler & Fergus 2014, Fig. 2). Outputs PNGs
and `index.json` in `--out` (default `<run>/explore/<split>`) and image summaries under `<run>/explore`.
"""

import dataclasses
import os
import time

PROBES = 16  # first images of the split that the TensorBoard tab can project on demand


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
    """Running top-k of every feature map of `layers` over `images` [N, H, W, C] uint8.

    Args:
      model: a Keras model, the reference convnet or a Graph.
      preprocess: uint8 batch -> model inputs (default: the reference trainer's central crop of
        `image_size` and standardization).

    Under a tf.distribute strategy each replica keeps its own running top-k over its slice of each
    batch (sliced as the trainer's evaluation is, so every worker sees the same number of batches),
    and the replicas' lists are merged exactly at the end.

    Returns:
      {layer: {"values", "image_ids", "positions"}}, NumPy arrays [channels, k], strongest first.
    """
    import numpy as np
    import tensorflow as tf
    from tqdm import tqdm

    from vizdeconv.deconv.deconvnet import as_graph
    from vizdeconv.explore.topk import RunningTopK
    from vizdeconv.io import data

    graph = as_graph(model)
    names = {layer: graph.resolve(layer) for layer in layers}
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    tops = [{layer: RunningTopK(graph.shapes[names[layer]][-1], k) for layer in layers} for _ in range(replicas)]
    ids = np.arange(len(images), dtype=np.int64)  # in place of labels: each replica's slice keeps its ids
    batches = strategy.distribute_datasets_from_function(
        lambda context: data.eval_dataset(images, ids, batch_size, image_size, context, preprocess)
    )

    @tf.function
    def activations(batch):
        def replica_fn(x):
            tensors = graph.forward(x, tf.float32, record_switches=False, until=tuple(names.values()))
            return {layer: tensors[name] for layer, name in names.items()}

        return strategy.run(replica_fn, args=(batch,))

    for images_batch, batch_ids in tqdm(
        batches, total=-(-len(images) // batch_size), desc="scan", disable=not progress, unit="batch"
    ):
        per_replica = activations(images_batch)
        local_ids = strategy.experimental_local_results(batch_ids)
        for replica in range(replicas):
            for layer in layers:
                tops[replica][layer].update(
                    strategy.experimental_local_results(per_replica[layer])[replica], local_ids[replica]
                )
    for replica in range(1, replicas):
        for layer in layers:
            tops[0][layer].merge(tops[replica][layer])
    return {layer: top.result() for layer, top in tops[0].items()}


@dataclasses.dataclass
class ExploreOptions:
    """What the explorer looks at and how (the flags of `vizdeconv explore`).

    Attributes:
      run: a run folder, or model: a `.keras` file (exactly one of them).
      layers: the layers to explore (None: the rectified feature maps).
      split, limit: the split scanned and how many of its first images (0: all).
      top_k: activations kept per feature map.
      mode: projection rule (None: the run's reconstruction.mode, or deconvnet); rectify: where it applies
        ("relu" or "all", see `Deconvnet`).
      data_dir: the data (None for a run: the source it was trained on); preprocess: see io.preprocess;
      weights: a weights file for `model="applications:NAME"`.
      out: output folder (None: `<run>/explore/<split>` or `<model>_explore/<split>`).
      optimize: also optimize an image per feature map with this method ("fourier" or "pixel"; None: no),
        optimize_steps steps (None: the default), from `seed`, for the centre unit of each feature map;
        shown beside the top-k.
      batch_size: images per scan batch; compare: also render the modes side by side.
      strategy, devices: tf.distribute strategy of the scan.
    """

    run: str | None = None
    model: str | None = None
    layers: list[str] | None = None
    split: str = "test"
    limit: int = 0
    top_k: int = 9
    mode: str | None = None
    rectify: str = "relu"
    data_dir: str | None = None
    weights: str | None = None
    preprocess: str = "auto"
    out: str | None = None
    batch_size: int = 500
    compare: bool = False
    strategy: str = "default"
    devices: str = ""
    optimize: str | None = None
    optimize_steps: int | None = None
    seed: int = 0

    def check(self) -> None:
        """ValueError / FileNotFoundError for settings a user got wrong, before anything loads."""
        from vizdeconv.deconv import feature_vis

        if self.top_k < 1 or self.limit < 0 or self.batch_size < 1:
            raise ValueError("--top_k and --batch_size must be positive and --limit not negative")
        if self.optimize is not None:
            feature_vis.check_method(self.optimize)
            if self.optimize_steps is not None and self.optimize_steps < 1:
                raise ValueError(f"--steps must be positive, got {self.optimize_steps}")
        if self.run is not None and not os.path.isdir(self.run):
            raise FileNotFoundError(f"run folder {self.run} does not exist")


def explore(options: ExploreOptions, log=print, after_scan=None) -> dict:
    """The whole explorer as a function (what the command runs) on a run folder or a `.keras` file;
    returns a summary dict, also written to `<out>/index.json`. A run folder is held (one writer at a
    time) while the explorer writes into it; a refused write (full disk) is a one-line WriteError.

    Args:
      after_scan: called as `after_scan(subject, layers, out, mode)` before index.json is written; what it
        returns joins the report (the command's `--sanity` runs the analysis there).
    """
    import contextlib

    import tensorflow as tf

    from vizdeconv.errors import WriteError, is_write_failure, reason
    from vizdeconv.io.lock import RunLock

    options.check()
    holding = RunLock(options.run, log, what="explore") if options.run is not None else contextlib.nullcontext()
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
    from vizdeconv.deconv.feature_vis import FeatureVisualization

    visualization = FeatureVisualization(subject.model, options.optimize, True, subject.pixels.from_unit)
    height, width = visualization.height, visualization.width
    # Batches of images small enough to backpropagate through a large network at its input size.
    batch = max(4, min(64, 2**19 // (height * width)))
    results = {}
    for layer in layers:
        count = tops[layer]["values"].shape[0]
        log(f"optimizing an image for each of {layer}'s {count} feature maps ({options.optimize}, {batch} at once)")
        # The centre unit, as the Deep Visualization Toolbox does: the top-k beside it are single units too.
        results[layer] = visualization.optimize(
            layer, unit="center", steps=options.optimize_steps, seed=options.seed, batch_size=batch
        )
    return results


def _explore(options: ExploreOptions, log, after_scan) -> dict:
    import numpy as np

    from vizdeconv.deconv.deconvnet import Deconvnet
    from vizdeconv.explore import render as explore_render
    from vizdeconv.io import distribute, pictures, summaries
    from vizdeconv.io.subject import open_subject

    subject = open_subject(options.run, options.model, options.data_dir, options.preprocess, log,
                           weights=options.weights)  # fmt: skip
    mode, root, pixels, split = options.mode or subject.mode, subject.root, subject.pixels, options.split
    deconvnet = Deconvnet(subject.model, mode, rectify=options.rectify)
    graph = deconvnet.graph
    images, labels = subject.load(split)
    layers = options.layers or summaries.default_layers(graph)
    for layer in layers:
        name = graph.resolve(layer)
        if len(graph.shapes[name]) != 3:
            raise ValueError(
                f"layer {layer!r} has no feature maps (shape {graph.shapes[name]}); pick one of "
                f"{', '.join(graph.feature_layers)}"
            )
    if options.limit:
        images, labels = images[: options.limit], labels[: options.limit]
    if len(images) < options.top_k:
        raise ValueError(f"only {len(images)} images to scan, fewer than --top_k {options.top_k}")
    out = options.out or (os.path.join(root, "explore", split) if options.run else os.path.join(root, split))
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    tops = scan(
        graph,
        images,
        layers,
        options.top_k,
        options.batch_size,
        pixels.size[0],
        distribute.make_strategy(options.strategy, options.devices),
        preprocess=pixels.inputs,
    )
    scan_seconds = time.perf_counter() - start
    log(f"scanned {len(images)} {split} images for {', '.join(layers)} in {scan_seconds:.1f} s")
    optimized = _optimize(subject, layers, tops, options, log) if options.optimize else {}
    renderer = explore_render.Renderer(deconvnet, images, labels, pixels)
    index = {layer: renderer.render_layer(layer, tops[layer], out, optimized.get(layer)) for layer in layers}
    events = os.path.join(root, "explore") if options.run else root
    renderer.write_summaries(events, split)
    subject.write_probes(events, images, labels, count=PROBES)
    report = {"out": out, "images": int(len(images)), "scan_seconds": scan_seconds, "mode": mode,
              "rectify": options.rectify}  # fmt: skip
    if optimized:
        report["optimize"] = {
            "method": options.optimize,
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
