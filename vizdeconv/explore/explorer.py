"""Dataset-wide feature explorer: the top-k activations of every feature map, projected and cropped.

  python -m vizdeconv.explore --run logs/default --layer conv2 [--layer conv3] [--split test]
                              [--limit N] [--top_k 9] [--mode deconvnet] [--compare] [--sanity]
  python -m vizdeconv.explore --model my_cnn.keras --data_dir PATH [--preprocess auto] [--layer NAME]

For every feature map of the chosen layers it finds the k strongest activations over the data set (a
running top-k, one entry per image), projects each alone from its single strongest unit, and crops
the matching image patch to that unit's receptive field (Zeiler & Fergus 2014, Fig. 2). Outputs PNGs
and `index.json` in `--out` (default `<run>/explore/<split>`) and image summaries under `<run>/explore`.
"""
import argparse
import os
import time

PROBES = 16  # first images of the split that the TensorBoard tab can project on demand


def load_run(run: str):
    """(config, model) of a run folder, with the weights of its latest checkpoint."""
    from vizdeconv.training import runs

    return runs.load_run(run)


def scan(model, images, layers, k: int = 9, batch_size: int = 500, image_size: int = 24,
         strategy=None, progress: bool = True, preprocess=None) -> dict:
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
    from vizdeconv.training import data

    graph = as_graph(model)
    names = {layer: graph.resolve(layer) for layer in layers}
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    tops = [{layer: RunningTopK(graph.shapes[names[layer]][-1], k) for layer in layers}
            for _ in range(replicas)]
    ids = np.arange(len(images), dtype=np.int64)  # in place of labels: each replica's slice keeps its ids
    batches = strategy.distribute_datasets_from_function(
        lambda context: data.eval_dataset(images, ids, batch_size, image_size, context, preprocess))

    @tf.function
    def activations(batch):
        def replica_fn(x):
            tensors = graph.forward(x, tf.float32, record_switches=False, until=tuple(names.values()))
            return {layer: tensors[name] for layer, name in names.items()}
        return strategy.run(replica_fn, args=(batch,))

    for images_batch, batch_ids in tqdm(batches, total=-(-len(images) // batch_size), desc="scan",
                                        disable=not progress, unit="batch"):
        per_replica = activations(images_batch)
        local_ids = strategy.experimental_local_results(batch_ids)
        for replica in range(replicas):
            for layer in layers:
                tops[replica][layer].update(strategy.experimental_local_results(per_replica[layer])[replica],
                                            local_ids[replica])
    for replica in range(1, replicas):
        for layer in layers:
            tops[0][layer].merge(tops[replica][layer])
    return {layer: top.result() for layer, top in tops[0].items()}


def main(argv=None) -> int:
    from vizdeconv.deconv import engine
    from vizdeconv.explore import preprocess

    parser = argparse.ArgumentParser(prog="python -m vizdeconv.explore",
                                     description="Top-k activations per feature map, projected and cropped.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a run folder written by train.py")
    source.add_argument("--model", help="a Keras model file (.keras) to explore")
    parser.add_argument("--layer", action="append", help="layer(s) to explore (default: every "
                        "rectified feature map)")
    parser.add_argument("--split", choices=("test", "train"), default="test")
    parser.add_argument("--limit", type=int, default=0, help="scan only the first N images")
    parser.add_argument("--top_k", type=int, default=9)
    parser.add_argument("--mode", choices=engine.MODES, default=None,
                        help="projection rule (default: the run's reconstruction.mode, or deconvnet)")
    parser.add_argument("--data_dir", default=None, help="CIFAR-10 binary data or a folder of images in "
                        "class subfolders (default for --run: the data source the run used)")
    parser.add_argument("--preprocess", choices=preprocess.CHOICES, default="auto",
                        help="--model only: how pixels 0..255 become inputs (auto: raw where the model "
                             "has Rescaling/Normalization, else per-image standardization)")
    parser.add_argument("--out", default=None, help="output folder (default: <run>/explore/<split>, "
                        "or <model>_explore/<split>)")
    parser.add_argument("--batch_size", type=int, default=500)
    parser.add_argument("--compare", action="store_true", help="also render the projection modes side by side")
    parser.add_argument("--sanity", action="store_true", help="also run the cascading randomization sanity check "
                        "(as python -m vizdeconv.analyze sanity) on each layer")
    parser.add_argument("--strategy", default="default", help="tf.distribute strategy for the scan")
    parser.add_argument("--devices", default="", help="device list for --strategy mirrored")
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.limit < 0 or args.batch_size < 1:
        raise ValueError("--top_k and --batch_size must be positive and --limit not negative")
    if args.run is not None and not os.path.isdir(args.run):
        raise FileNotFoundError(f"run folder {args.run} does not exist")
    report = explore(args.run, args.layer, args.split, args.limit, args.top_k, args.mode, args.data_dir,
                     args.out, args.batch_size, args.compare, args.sanity, args.strategy, args.devices,
                     model_path=args.model, preprocess=args.preprocess)
    print(f"wrote {report['out']} (scan of {report['images']} images: {report['scan_seconds']:.1f} s, "
          f"{report['images'] / max(report['scan_seconds'], 1e-9):.0f} images/s)")
    return 0


def explore(run: str | None, layers=None, split: str = "test", limit: int = 0, top_k: int = 9, mode=None,
            data_dir=None, out=None, batch_size: int = 500, compare: bool = False, sanity: bool = False,
            strategy: str = "default", devices: str = "", log=print, *, model_path: str | None = None,
            preprocess: str = "auto") -> dict:
    """The whole explorer as a function (what the command runs) on a run folder or a `.keras` file;
    returns a summary dict. A run folder is held (one writer at a time) while the explorer writes
    into it; a refused write (full disk) is a one-line WriteError."""
    import contextlib

    import tensorflow as tf

    from vizdeconv.errors import WriteError, is_write_failure, reason
    from vizdeconv.training.lock import RunLock

    holding = RunLock(run, log, what="explore") if run is not None else contextlib.nullcontext()
    with holding:
        try:
            return _explore(run, layers, split, limit, top_k, mode, data_dir, out, batch_size, compare,
                            sanity, strategy, devices, log, model_path, preprocess)
        except (OSError, tf.errors.OpError) as error:
            if isinstance(error, WriteError) or not is_write_failure(error):
                raise
            raise WriteError(f"could not write the explorer's output ({reason(error)}); free space "
                             "and run the same command again") from None


def _explore(run, layers, split, limit, top_k, mode, data_dir, out, batch_size, compare, sanity,
             strategy, devices, log, model_path, preprocess) -> dict:
    import numpy as np

    from vizdeconv.deconv.deconvnet import Deconvnet
    from vizdeconv.explore import render as explore_render
    from vizdeconv.explore.subject import open_subject
    from vizdeconv.training import distribute
    from vizdeconv.viz import display, summaries

    subject = open_subject(run, model_path, data_dir, preprocess, log)
    mode, seed, root, pixels = mode or subject.mode, subject.seed, subject.root, subject.pixels
    deconvnet = Deconvnet(subject.model, mode)
    graph = deconvnet.graph
    images, labels = subject.load(split)
    layers = layers or summaries.default_layers(graph)
    for layer in layers:
        name = graph.resolve(layer)
        if len(graph.shapes[name]) != 3:
            raise ValueError(f"layer {layer!r} has no feature maps (shape {graph.shapes[name]}); pick one "
                             f"of {', '.join(graph.feature_layers)}")
    if limit:
        images, labels = images[:limit], labels[:limit]
    if len(images) < top_k:
        raise ValueError(f"only {len(images)} images to scan, fewer than --top_k {top_k}")
    out = out or (os.path.join(root, "explore", split) if run else os.path.join(root, split))
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    tops = scan(graph, images, layers, top_k, batch_size, pixels.size[0],
                distribute.make_strategy(strategy, devices), preprocess=pixels.inputs)
    scan_seconds = time.perf_counter() - start
    log(f"scanned {len(images)} {split} images for {', '.join(layers)} in {scan_seconds:.1f} s")
    renderer = explore_render.Renderer(deconvnet, images, labels, pixels)
    index = {layer: renderer.render_layer(layer, tops[layer], out) for layer in layers}
    events = os.path.join(root, "explore") if run else root
    renderer.write_summaries(events, split)
    subject.write_probes(events, images, labels, count=PROBES)
    report = {"out": out, "images": int(len(images)), "scan_seconds": scan_seconds, "mode": mode}
    if compare:
        probe = np.unique(tops[layers[-1]]["image_ids"][:, 0])[:6]  # images that top some channel
        display.write_png(os.path.join(out, f"compare_{layers[-1]}.png"),
                          renderer.compare(layers[-1], probe))
    if sanity:  # the cascading randomization test, from the top layer down (analyze sanity)
        from vizdeconv.explore import analyses

        report["sanity"] = {}
        for layer in layers:
            result = analyses.run_sanity(subject, layer, "first:6", split, mode,
                                         os.path.join(out, "sanity"), log=lambda *_: None)
            report["sanity"][layer] = {key: [float(v) for v in result[key]] if key != "stages"
                                       else result[key] for key in ("stages", "spearman", "ssim")}
            log(f"sanity {layer}: spearman {result['spearman'][-1]:.3f}, ssim {result['ssim'][-1]:.3f} "
                f"with every layer randomized (stages in {os.path.join(out, 'sanity')})")
    explore_render.write_index(os.path.join(out, "index.json"), index, report)
    return report
