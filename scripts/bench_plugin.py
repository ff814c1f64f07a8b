"""Latency of the Deconvnet tab's on-demand projections, through TensorBoard's WSGI app in-process.

    python scripts/bench_plugin.py --logdir logs --run ref3000 [--repeats 30]

Times the first projection request of a run (loads the checkpoint, traces the compiled functions),
then warm requests: the same feature map again, other images and channels of that layer, single
units, and guided backprop. Each time covers the whole request: routing, projection, PNG encoding and
JSON. Prints the CPU model and a JSON summary (milliseconds: first, then median and 90th percentile).
"""

import argparse
import json
import time

import numpy as np
from werkzeug.test import Client

from vizdeconv.hardware.cpu import cpu_model
from vizdeconv.viz.plugin.plugin import standalone_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logdir", default="logs")
    parser.add_argument("--run", required=True, help="a run of the logdir with probe summaries")
    parser.add_argument("--layer", default="conv3")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    app, _ = standalone_app(args.logdir)
    client = Client(app)

    def request(**parameters) -> float:
        started = time.perf_counter()
        response = client.get(
            "/data/plugin/vizdeconv/project", query_string=dict(run=args.run, layer=args.layer, **parameters)
        )
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(response.get_data(as_text=True))
        return elapsed

    results = {
        "cpu": cpu_model(),
        "run": args.run,
        "layer": args.layer,
        "first_request_ms": round(request(image=0, channel=0), 1),
    }
    rng = np.random.default_rng(0)
    cases = {
        "same_map": lambda i: dict(image=0, channel=0),
        "other_images_and_channels": lambda i: dict(image=int(rng.integers(8)), channel=int(rng.integers(10))),
        "units": lambda i: dict(
            image=int(rng.integers(8)),
            channel=int(rng.integers(10)),
            row=int(rng.integers(6)),
            col=int(rng.integers(6)),
        ),
        "guided": lambda i: dict(image=int(rng.integers(8)), channel=int(rng.integers(10)), mode="guided"),
    }
    for name, make in cases.items():
        request(**make(-1))  # the first of a kind traces its function once
        times = [request(**make(i)) for i in range(args.repeats)]
        results[name] = {
            "median_ms": round(float(np.median(times)), 1),
            "p90_ms": round(float(np.percentile(times, 90)), 1),
            "max_ms": round(float(np.max(times)), 1),
        }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
