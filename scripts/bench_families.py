"""Projection cost per keras.applications family, against a compiled GradientTape modified-ReLU gradient.

  python scripts/bench_families.py [--families ResNet50,EfficientNetB0,MobileNetV2,ConvNeXtTiny]
                                   [--size 224] [--batch 8] [--repeats 5] [--scan_images 512]

For each family (weights=None), side by side in one run: the milliseconds of `Deconvnet.project` of the
last feature block (whole layer, deconvnet mode) and of a `tf.function` GradientTape gradient of the same
signal through the Keras model itself with its ReLU backward rule replaced (tests/support/relu_rules.py), each
one in a child process of its own so its peak memory (max RSS) can be read; then the explorer's scan of
every rectified layer (images/s over the second half of `--scan_images` in-memory uint8 images, batches
of 32) against the model's own forward pass. Prints a Markdown table and the CPU. Not a test: figures
depend on the machine.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(family: str, method: str, size: int, batch: int, repeats: int, scan_images: int = 512) -> dict:
    """One measurement in this process: 'project', 'gradient' or 'scan'."""
    sys.path[:0] = [ROOT, os.path.join(ROOT, "tests", "support")]
    import keras
    import numpy as np
    import tensorflow as tf

    from vizdeconv.methods.deconvnet import Deconvnet

    model = getattr(keras.applications, family)(weights=None, input_shape=(size, size, 3))
    deconvnet = Deconvnet(model, "deconvnet")
    graph = deconvnet.graph
    names = {layer.name for layer in model.layers}
    layer = [n for n in graph.feature_layers if n in names and graph.by_name[graph.resolve(n)].kind != "layer"][-1]
    images = tf.random.stateless_normal([batch, size, size, 3], [1, 2])
    if method == "project":
        run = lambda: deconvnet.project(images, layer)  # noqa: E731
    elif method == "gradient":
        from relu_rules import modified_keras_model

        twin = modified_keras_model(model, "deconvnet")
        part = keras.Model(twin.inputs, twin.get_layer(layer)._inbound_nodes[-1].output_tensors[0])

        @tf.function
        def run_compiled(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                output = part(x)
            return tape.gradient(output, x, output_gradients=tf.stop_gradient(output))

        run = lambda: run_compiled(images)  # noqa: E731
    else:
        from vizdeconv.data import sources
        from vizdeconv.explore.scanning import scan_source
        from vizdeconv.nn.preprocess import Preprocess

        # In-memory images, batches of 32 as the explorer reads them: the model's forward pass alone, then
        # one scan of every rectified layer, timed per batch; its late rate (second half) is what a long
        # scan tends to, once few images can still enter a map's top-k.
        count, scan_batch = scan_images, 32
        pixels = np.random.default_rng(0).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
        pre = Preprocess((size, size), "symmetric")
        forward = tf.function(lambda x: model(x, training=False))
        forward(pre.inputs(pixels[:scan_batch])).numpy()
        started = time.perf_counter()
        for start in range(0, count // 2, scan_batch):
            forward(pre.inputs(pixels[start : start + scan_batch])).numpy()
        forward_rate = count // 2 / (time.perf_counter() - started)
        layers = [n for n in graph.feature_layers if graph.by_name[graph.resolve(n)].kind in ("relu", "activation")]
        times, done = [], []

        def timed(position):
            times.append(time.perf_counter())
            done.append(position)

        source = sources.ArraySource(pixels, np.zeros(count, np.int32), "images")
        scan_source(graph, source, layers, 9, scan_batch, pre.inputs, progress=False, on_batch=timed)
        half = next(i for i, n in enumerate(done) if n >= count // 2)
        late = (done[-1] - done[half]) / (times[-1] - times[half])
        return {"forward_images_per_s": forward_rate, "scan_images_per_s": late, "scanned_layers": len(layers)}
    np.asarray(run())  # traces and compiles
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        np.asarray(run())
        times.append(time.perf_counter() - started)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"layer": layer, "ms": 1000 * float(np.median(times)), "peak_mb": peak_mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", default="ResNet50,EfficientNetB0,MobileNetV2,ConvNeXtTiny")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scan_images", type=int, default=512, help="images of the scan (late rate: second half)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        family, method = args.child.split(":")
        print(json.dumps(child(family, method, args.size, args.batch, args.repeats, args.scan_images)))
        return 0
    sys.path.insert(0, ROOT)
    from vizdeconv.hardware.precision import hardware

    machine = hardware()
    print(f"cpu {machine['cpu']} ({machine['cpu_kind']}, {machine['cores']} cores), oneDNN "
          f"{'on' if machine['onednn'] else 'off'}; {args.size}x{args.size}, batch {args.batch}")  # fmt: skip
    print("| family | layer | project ms | gradient ms | time ratio | project MB | gradient MB | memory ratio "
          "| scan img/s | forward img/s | scan / forward |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for family in args.families.split(","):
        results = {}
        for method in ("project", "gradient", "scan"):
            command = [sys.executable, __file__, "--child", f"{family}:{method}", "--size", str(args.size),
                       "--batch", str(args.batch), "--repeats", str(args.repeats),
                       "--scan_images", str(args.scan_images)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            if done.returncode:
                print(f"| {family} | {method} failed: {done.stderr.strip().splitlines()[-1:]} |")
                break
            results[method] = json.loads(done.stdout.strip().splitlines()[-1])
        else:
            p, g, s = results["project"], results["gradient"], results["scan"]
            print(f"| {family} | {p['layer']} | {p['ms']:.0f} | {g['ms']:.0f} | {p['ms'] / g['ms']:.2f} | "
                  f"{p['peak_mb']:.0f} | {g['peak_mb']:.0f} | {p['peak_mb'] / g['peak_mb']:.2f} | "
                  f"{s['scan_images_per_s']:.1f} | {s['forward_images_per_s']:.1f} | "
                  f"{s['scan_images_per_s'] / s['forward_images_per_s']:.2f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
