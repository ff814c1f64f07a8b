"""Benchmarks of the explorer's streamed scan over an image folder (not a test).

  # a synthetic folder: CIFAR-10 images (test, then train) upscaled to 256x256 JPEGs, 100 per subfolder
  python scripts/bench_scan.py make --data_dir ../shared/cifar10 --out /tmp/folder --count 10000

  # images/s of the scan of every feature layer (--layer all: each block's output maps; --layer every: every
  # map an op produces; --layer rectified: the explorer's default), beside its two limits measured alike:
  # the forward pass alone (in-memory batches) and the input pipeline alone (read, decode, resize);
  # `scan_late` is the rate over the second half of the images, nearer a long scan's (fewer images
  # still enter a top-k, and only those need the position of their strongest unit)
  python scripts/bench_scan.py speed --folder /tmp/folder --model applications:ResNet50 --images 4096

  # where a late scan's time goes (forward; + every map's maximum; + positions of the pairs above the
  # running k-th values after --images images; + the fold), in one process on in-memory batches
  python scripts/bench_scan.py breakdown --folder /tmp/folder --model applications:ResNet50 --layer every --images 4096

  # peak resident memory of a whole scan (run it at 10,000 and at 100,000 images: it must stay flat); a
  # 4-layer CNN at 224x224 (`tiny`) lets the input pipeline set the pace, so 100,000 images take minutes
  python scripts/bench_scan.py tiny --out /tmp/tiny224.keras
  python scripts/bench_scan.py memory --folder /tmp/folder --model /tmp/tiny224.keras --images 100000

Each command prints one JSON line naming the CPU.
"""

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

STAGES = ("pipeline", "forward", "keras_forward", "forward_reduce", "forward_values", "scan")


def make(args) -> dict:
    import numpy as np
    import tensorflow as tf

    from vizdeconv.data import cifar10

    parts = [cifar10.load_binary(args.data_dir, split)[0] for split in ("test", "train")]
    images = np.concatenate(parts)
    written, started = 0, time.perf_counter()
    for start in range(0, args.count, 500):
        stop = min(start + 500, args.count)
        index = np.arange(start, stop) % len(images)
        big = tf.cast(tf.round(tf.image.resize(images[index], (args.size, args.size))), tf.uint8)
        for i, picture in zip(range(start, stop), big):
            folder = os.path.join(args.out, f"{i // 100:05d}")
            os.makedirs(folder, exist_ok=True)
            tf.io.write_file(os.path.join(folder, f"{i:07d}.jpg"), tf.io.encode_jpeg(picture, quality=90))
            written += 1
    return {"what": "make", "images": written, "size": args.size, "seconds": round(time.perf_counter() - started, 1)}


def tiny(args) -> dict:
    """A 4-layer CNN for 224x224 pixels (Rescaling inside), saved with model.save: cheap to run, so a
    scan's pace and memory are those of the input pipeline and the running top-k."""
    import keras

    inputs = keras.Input((224, 224, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0, name="rescale")(inputs)
    for index, filters in enumerate((16, 32, 64, 64), start=1):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu", name=f"conv{index}")(x)
    outputs = keras.layers.Dense(10, name="logits")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    keras.Model(inputs, outputs, name="tiny224").save(args.out)
    return {"what": "tiny", "out": args.out}


def _open(args):
    from vizdeconv.data import sources
    from vizdeconv.explore.explorer import _layers
    from vizdeconv.runs.subject import open_subject

    subject = open_subject(model_path=args.model, data_dir=args.folder, log=lambda *_: None)
    source = sources.open_source(args.folder, "test", subject.graph.input_shape)
    wanted = args.layer or ["all"]
    return subject, source, _layers(subject.graph, None if wanted == ["rectified"] else wanted)


def _rate(function, images: int) -> float:
    started = time.perf_counter()
    function()
    return images / (time.perf_counter() - started)


def one_rate(args) -> dict:
    """images/s of one of: pipeline, forward (the engine's, op by op), keras_forward (the model's own call),
    forward_reduce (values and positions of every map), forward_values (values only, or their bounds: the
    late scan's work), scan (in this process, alone)."""
    import numpy as np
    import tensorflow as tf

    from vizdeconv.explore import topk
    from vizdeconv.explore.scanning import scan_source

    subject, source, layers = _open(args)
    graph, pixels, batch = subject.graph, subject.pixels, args.batch_size
    count = min(args.images, source.count)
    names = tuple(graph.resolve(layer) for layer in layers)
    if args.what == "pipeline":

        def run():
            for _ in source.elements(0, count).batch(batch).prefetch(tf.data.AUTOTUNE):
                pass

        return {"rate": _rate(run, count)}
    if args.what == "scan":
        # One scan, the time each batch is folded in: its rate after the first batch (which traces the
        # network) and its late rate over the second half of the images.
        folded, done = [], []

        def timed(position):
            folded.append(time.perf_counter())
            done.append(position)

        scan_source(graph, source, layers, 9, batch, pixels.inputs, limit=count, progress=False, on_batch=timed)
        half = next(i for i, n in enumerate(done) if n >= count // 2)
        return {"rate": (done[-1] - done[0]) / (folded[-1] - folded[0]),
                "late": (done[-1] - done[half]) / (folded[-1] - folded[half])}  # fmt: skip
    images = np.stack([x.numpy() for x, _ in source.elements(0, batch)])
    reduce = args.what in ("forward_reduce", "forward_values")  # and what the scan keeps of each layer
    never = float("inf") if args.what == "forward_values" else None  # a threshold no image reaches: no positions

    @tf.function
    def forward(x):
        # The forward pass alone runs op by op, as the model itself does; with the reductions it runs as the
        # scan does, batch normalizations folded into the convolutions nobody reads.
        tensors = graph.forward(pixels.inputs(x), tf.float32, record_switches=False, until=names, fold_affine=reduce)
        if not reduce:
            return tf.reduce_max(tensors[names[-1]])
        best = topk.maxima(graph, tensors, names) if never is not None else {}
        return [topk.reduce(tensors[name], None if never is None else tf.fill(tensors[name].shape[-1:], never),
                            best.get(name)) for name in names]  # fmt: skip

    if args.what == "keras_forward":  # the Keras model's own call, as `model.predict` runs it
        forward = tf.function(lambda x: subject.model(pixels.inputs(x), training=False))
    forward(images)  # traced outside the timing
    return {"rate": _rate(lambda: [forward(images) for _ in range(count // batch)], count // batch * batch)}


def speed(args) -> dict:
    """Each measurement in a child process of its own (one at a time, interleaved over the repeats), as a
    user's scan runs: no function traced or memory held by another measurement weighs on it."""
    import subprocess

    rates = {}
    for _ in range(args.repeats):
        for what in STAGES:
            command = [sys.executable, __file__, "one", "--what", what, "--folder", args.folder, "--model", args.model,
                       "--images", str(args.images), "--batch_size", str(args.batch_size)]  # fmt: skip
            for layer in args.layer or []:
                command += ["--layer", layer]
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            rates.setdefault(what, []).append(measured["rate"])
            if "late" in measured:
                rates.setdefault("scan_late", []).append(measured["late"])
    subject, source, layers = _open(args)
    best = {name: round(max(values), 2) for name, values in rates.items()}
    return {
        "what": "speed",
        "model": args.model,
        "layers": len(layers),
        "images": min(args.images, source.count),
        "batch_size": args.batch_size,
        "images_per_second": best,
        "scan_over_limit": round(best["scan"] / min(best["pipeline"], best["forward"]), 3),
        "scan_late_over_limit": round(best["scan_late"] / min(best["pipeline"], best["forward"]), 3),
        "scan_late_over_forward_values": round(best["scan_late"] / best["forward_values"], 3),
        "scan_late_over_keras_forward": round(best["scan_late"] / best["keras_forward"], 3),
    }


def breakdown(args) -> dict:
    """Where a late scan's time goes, in one process on in-memory batches, alternating: the forward pass
    alone; with every scanned map's maximum (read, or bounded from another's); with the positions of the
    pairs above the running k-th values of a scan of the first `--images` images (as late in such a
    scan); and the whole compiled step (with the fold into the running top-k). The scan itself adds the
    input pipeline on the same cores."""
    import numpy as np
    import tensorflow as tf

    from vizdeconv.explore import topk
    from vizdeconv.explore.scanning import scan_source

    subject, source, layers = _open(args)
    graph, pixels, batch = subject.graph, subject.pixels, args.batch_size
    count = min(args.images, source.count - batch)
    names = {layer: graph.resolve(layer) for layer in layers}
    state = scan_source(graph, source, layers, 9, batch, pixels.inputs, limit=count, progress=False)
    held = {layer: tuple(tf.constant(state.tops[layer][key]) for key in ("values", "image_ids", "positions"))
            for layer in layers}  # fmt: skip
    images = np.stack([x.numpy() for x, _ in source.elements(count, count + batch)])
    ids = tf.range(count, count + batch, dtype=tf.int64)

    def scanned(x, fold=True):
        return graph.forward(pixels.inputs(x), tf.float32, record_switches=False, until=tuple(names.values()),
                             fold_affine=fold)  # fmt: skip

    def maxima(x):
        tensors = scanned(x)
        return tensors, topk.maxima(graph, tensors, set(names.values()))

    def with_positions(x):
        tensors, best = maxima(x)
        return [topk.reduce(tensors[name], held[layer][0][:, -1], best[name]) for layer, name in names.items()]

    def step(x):
        tensors, best = maxima(x)
        return topk.fold_layers(held, {layer: tensors[name] for layer, name in names.items()}, ids,
                                {layer: best[name] for layer, name in names.items()})  # fmt: skip

    stages = {
        "forward": lambda x: tf.reduce_max(scanned(x, False)[names[layers[-1]]]),
        "forward_maxima": lambda x: list(maxima(x)[1].values()),
        "forward_maxima_positions": with_positions,
        "step": step,
    }
    stages = {name: tf.function(function) for name, function in stages.items()}
    rates = {name: [] for name in stages}
    for function in stages.values():
        function(images)  # traced outside the timing
    for _ in range(args.repeats):
        for name, function in stages.items():
            rates[name].append(_rate(lambda f=function: [f(images) for _ in range(8)], 8 * batch))
    tensors, best = maxima(images)
    above = sum(int(tf.reduce_sum(tf.cast(best[name][:, 0, 0] > held[layer][0][None, :, -1], tf.int32)))
                for layer, name in names.items())  # fmt: skip
    pairs = sum(int(tf.size(best[name])) for name in names.values())
    best_rates = {name: round(max(values), 2) for name, values in rates.items()}
    return {
        "what": "breakdown",
        "model": args.model,
        "layers": len(layers),
        "after_images": count,
        "batch_size": batch,
        "pairs_above_kth_percent": round(100 * above / pairs, 3),
        "images_per_second": best_rates,
        "over_forward": {name: round(rate / best_rates["forward"], 3) for name, rate in best_rates.items()},
    }


def memory(args) -> dict:
    from vizdeconv.explore.scanning import scan_source

    subject, source, layers = _open(args)
    count = min(args.images, source.count)
    started = time.perf_counter()
    state = scan_source(
        subject.graph, source, layers, 9, args.batch_size, subject.pixels.inputs, limit=count, progress=False
    )
    seconds = time.perf_counter() - started
    return {
        "what": "memory",
        "model": args.model,
        "layers": len(layers),
        "images": state.scanned,
        "seconds": round(seconds, 1),
        "images_per_second": round(state.scanned / seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    making = sub.add_parser("make")
    making.add_argument("--data_dir", required=True, help="CIFAR-10 binary data")
    making.add_argument("--out", required=True)
    making.add_argument("--count", type=int, default=10000)
    making.add_argument("--size", type=int, default=256)
    sub.add_parser("tiny").add_argument("--out", required=True, help="where the .keras file goes")
    for name in ("speed", "memory", "one", "breakdown"):
        command = sub.add_parser(name)
        if name == "one":
            command.add_argument("--what", choices=STAGES, required=True)
        command.add_argument("--folder", required=True)
        command.add_argument("--model", default="applications:ResNet50")
        command.add_argument(
            "--layer",
            action="append",
            default=None,
            help="default: all (every block's output maps); every: every feature layer; rectified: the explorer's "
            "default, every rectified feature layer",
        )
        command.add_argument("--images", type=int, default=512)
        command.add_argument("--batch_size", type=int, default=32)
        command.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from vizdeconv.hardware.precision import hardware

    commands = {"make": make, "tiny": tiny, "speed": speed, "memory": memory, "one": one_rate, "breakdown": breakdown}
    result = commands[args.command](args)
    result["cpu"] = hardware()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
