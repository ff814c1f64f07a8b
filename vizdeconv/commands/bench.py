"""`vizdeconv bench`: forward / forward-backward / projection / training-step timings (see vizdeconv.bench)."""

import json
import os

from vizdeconv.commands import flags


def main(argv=None, program: str = "vizdeconv bench") -> int:
    from vizdeconv.bench import add_baseline, benchmark
    from vizdeconv.bench.options import BenchOptions

    parser = flags.parser(program, "Timings: forward, backward, projections, training steps.")
    flags.add_options(parser, BenchOptions)
    flags.add_onednn(parser)
    o = flags.options_from(parser.parse_args(argv), BenchOptions)
    if o.json and not os.path.isdir(os.path.dirname(os.path.abspath(o.json))):
        raise FileNotFoundError(f"--json: folder {os.path.dirname(o.json)} does not exist")
    if o.baseline and o.what != "train_step":
        raise ValueError("--baseline compares training steps: use --what train_step")
    if o.baseline and o.baseline != "keras" and o.network != "cifar":
        raise ValueError("the TF1 yardstick is the reference network: use --network cifar")
    if o.baseline and o.baseline != "keras" and o.batch_size != 128:
        raise ValueError("the TF1 yardstick trains batches of 128: use --batch_size 128")
    if o.steps_per_call < 1:
        raise ValueError("--steps_per_call must be positive")
    report = benchmark(o.network, o.batch_size, o.num_batches, o.precision, o.what or "", o.with_data, o.data_dir,
                       steps_per_call=o.steps_per_call)  # fmt: skip
    if o.baseline:
        add_baseline(report, o.baseline, o.num_batches, o.with_data, o.data_dir, o.steps_per_call)
    if o.json:
        with open(o.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0
