"""Projection time of the reference net: the first engine (tests/support/old_engine.py) against the Graph
engine, side by side in one process, alternating, on the same weights and images.

    python scripts/compare_engines.py [--run logs/default] [--batch_size 128] [--repeats 30]

Prints the median time per batch of projecting conv1, conv2 and conv3 (stacked, compiled) for both,
their ratio, and the largest difference between their outputs.
"""

import argparse
import os
import sys
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "support"))
import old_engine  # noqa: E402

from configs import default  # noqa: E402
from vizdeconv.hardware import precision  # noqa: E402
from vizdeconv.methods.deconvnet import Deconvnet  # noqa: E402
from vizdeconv.nn.convnet import build_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=None, help="a run folder (default: random reference weights)")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    if args.run:
        from vizdeconv.runs.subject import open_subject

        model = open_subject(run=args.run, log=lambda *_: None, need_data=False).model
    else:
        model = build_model(default.get_config())
    dtype = precision.compute_dtype(precision.resolve(args.precision))
    images = tf.random.normal([args.batch_size, 24, 24, 3], seed=0)
    layers = ("conv1", "conv2", "conv3")

    @tf.function
    def old(x):
        tensors = model.graph().forward(x, dtype)
        return old_engine.project_many(model, tensors, {n: tensors[n] for n in layers}, compute_dtype=dtype)

    deconvnet = Deconvnet(model, compute_dtype=dtype)
    engines = {"old": old, "graph": lambda x: deconvnet.project(x, list(layers))}
    outputs = {name: fn(images) for name, fn in engines.items()}
    difference = max(float(tf.reduce_max(tf.abs(outputs["old"][n] - outputs["graph"][n]))) for n in layers)
    scale = max(float(tf.reduce_max(tf.abs(outputs["old"][n]))) for n in layers)
    times = {name: [] for name in engines}
    for _ in range(5):
        for fn in engines.values():
            fn(images)["conv1"].numpy()
    for _ in range(args.repeats):
        for name, fn in engines.items():
            start = time.perf_counter()
            fn(images)["conv1"].numpy()
            times[name].append(time.perf_counter() - start)
    median = {name: float(np.median(values)) for name, values in times.items()}
    print(f"batch {args.batch_size}, {dtype.name}, {args.repeats} alternating repeats")
    for name, value in median.items():
        print(f"  {name:5s} engine: {value * 1000:.1f} ms/batch ({args.batch_size / value:.0f} images/s)")
    print(
        f"  graph / old time ratio: {median['graph'] / median['old']:.3f}; max |difference| "
        f"{difference:.2e} (largest value {scale:.2e})"
    )


if __name__ == "__main__":
    main()
