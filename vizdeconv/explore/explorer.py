"""Dataset-wide feature explorer: the top-k activations of every feature map, projected and cropped.

  python -m vizdeconv.explore --run logs/default --layer conv2 [--layer conv3] [--split test]
                              [--limit N] [--top_k 9] [--mode deconvnet] [--compare] [--sanity]

For every feature map of the chosen layers it finds the k strongest activations over the data set (a
running top-k, one entry per image), projects each alone from its single strongest unit, and crops
the matching image patch to that unit's receptive field (Zeiler & Fergus 2014, Fig. 2). Outputs PNGs
and `index.json` in `--out` (default `<run>/explore/<split>`) and image summaries under `<run>/explore`.
"""
import argparse
import os
import time


def load_run(run: str):
    """(config, model) of a run folder, with the weights of its latest checkpoint."""
    import tensorflow as tf

    from vizdeconv.training import rundir
    from vizdeconv.nn.convnet import build_model

    config = rundir.load_config(run)
    latest = tf.train.latest_checkpoint(os.path.join(run, "checkpoints"))
    if latest is None:
        raise FileNotFoundError(f"{run} has no checkpoint yet; train it first")
    model = build_model(config)
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return config, model


def scan(model, images, layers, k: int = 9, batch_size: int = 500, image_size: int = 24,
         strategy=None, progress: bool = True) -> dict:
    """Running top-k of every feature map of `layers` over `images` [N, 32, 32, 3] uint8.

    Under a tf.distribute strategy each replica keeps its own running top-k over its slice of each
    batch (sliced as the trainer's evaluation is, so every worker sees the same number of batches),
    and the replicas' lists are merged exactly at the end.

    Returns:
      {layer: {"values", "image_ids", "positions"}}, NumPy arrays [channels, k], strongest first.
    """
    import numpy as np
    import tensorflow as tf
    from tqdm import tqdm

    from vizdeconv.training import data
    from vizdeconv.explore.topk import RunningTopK

    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    tops = [{layer: RunningTopK(model.shapes[layer][-1], k) for layer in layers} for _ in range(replicas)]
    ids = np.arange(len(images), dtype=np.int64)  # in place of labels: each replica's slice keeps its ids
    batches = strategy.distribute_datasets_from_function(
        lambda context: data.eval_dataset(images, ids, batch_size, image_size, context))

    @tf.function
    def activations(batch):
        def replica_fn(x):
            tensors = model.forward(x, tf.float32, record_switches=False)
            return {layer: tensors[layer] for layer in layers}
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
    parser = argparse.ArgumentParser(prog="python -m vizdeconv.explore",
                                     description="Top-k activations per feature map, projected and cropped.")
    parser.add_argument("--run", required=True, help="a run folder written by train.py")
    parser.add_argument("--layer", action="append", help="conv layer(s) to explore (default: all)")
    parser.add_argument("--split", choices=("test", "train"), default="test")
    parser.add_argument("--limit", type=int, default=0, help="scan only the first N images")
    parser.add_argument("--top_k", type=int, default=9)
    parser.add_argument("--mode", choices=("deconvnet", "bias_subtract", "guided"), default=None,
                        help="projection rule (default: the run's reconstruction.mode)")
    parser.add_argument("--data_dir", default=None, help="data source (default: the one the run used)")
    parser.add_argument("--out", default=None, help="output folder (default: <run>/explore/<split>)")
    parser.add_argument("--batch_size", type=int, default=500)
    parser.add_argument("--compare", action="store_true", help="also render the projection modes side by side")
    parser.add_argument("--sanity", action="store_true", help="also compare with randomly re-initialized weights")
    parser.add_argument("--strategy", default="default", help="tf.distribute strategy for the scan")
    parser.add_argument("--devices", default="", help="device list for --strategy mirrored")
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.limit < 0 or args.batch_size < 1:
        raise ValueError("--top_k and --batch_size must be positive and --limit not negative")
    if not os.path.isdir(args.run):
        raise FileNotFoundError(f"run folder {args.run} does not exist")
    report = explore(args.run, args.layer, args.split, args.limit, args.top_k, args.mode, args.data_dir,
                     args.out, args.batch_size, args.compare, args.sanity, args.strategy, args.devices)
    print(f"wrote {report['out']} (scan of {report['images']} images: {report['scan_seconds']:.1f} s)")
    return 0


def explore(run: str, layers=None, split: str = "test", limit: int = 0, top_k: int = 9, mode=None,
            data_dir=None, out=None, batch_size: int = 500, compare: bool = False, sanity: bool = False,
            strategy: str = "default", devices: str = "", log=print) -> dict:
    """The whole explorer as a function (what the command runs); returns a summary dict."""
    import numpy as np

    from vizdeconv.training import data
    from vizdeconv.training import distribute
    from vizdeconv.explore import render as explore_render
    from vizdeconv.viz import display

    config, model = load_run(run)
    layers = layers or model.layer_names
    unknown = [layer for layer in layers if layer not in model.layer_names]
    if unknown:
        raise ValueError(f"unknown layer {unknown[0]!r}; the run has {', '.join(model.layer_names)}")
    if data_dir is not None:
        config.data.data_dir = data_dir
    images, labels = data.load_split(config.data, split)
    if limit:
        images, labels = images[:limit], labels[:limit]
    if len(images) < top_k:
        raise ValueError(f"only {len(images)} images to scan, fewer than --top_k {top_k}")
    out = out or os.path.join(run, "explore", split)
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    tops = scan(model, images, layers, top_k, batch_size, config.data.image_size,
                distribute.make_strategy(strategy, devices))
    scan_seconds = time.perf_counter() - start
    log(f"scanned {len(images)} {split} images for {', '.join(layers)} in {scan_seconds:.1f} s")
    mode = mode or config.reconstruction.mode
    renderer = explore_render.Renderer(model, images, labels, config.data.image_size, mode)
    index = {layer: renderer.render_layer(layer, tops[layer], out) for layer in layers}
    renderer.write_summaries(os.path.join(run, "explore"), split)
    report = {"out": out, "images": int(len(images)), "scan_seconds": scan_seconds, "mode": mode}
    if compare:
        probe = np.unique(tops[layers[-1]]["image_ids"][:, 0])[:6]  # images that top some channel
        display.write_png(os.path.join(out, f"compare_{layers[-1]}.png"),
                                 renderer.compare(layers[-1], probe))
    if sanity:
        report["sanity"] = renderer.sanity(layers, tops, config.seed + 1)
        for layer, figures in report["sanity"].items():
            log(f"sanity {layer}: correlation {figures['correlation']:.3f}, "
                f"SSIM {figures['ssim']:.3f} between trained and random-weight projections")
    explore_render.write_index(os.path.join(out, "index.json"), index, report)
    return report

