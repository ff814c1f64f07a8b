"""`vizdeconv bench`: forward / forward-backward / projection / training-step timings (see vizdeconv.bench)."""

import json
import os

from vizdeconv.commands import flags


def main(argv=None, program: str = "vizdeconv bench") -> int:
    from vizdeconv.bench import NETWORKS, PHASES, add_baseline, benchmark
    from vizdeconv.config import PRECISIONS

    parser = flags.parser(program, "Timings: forward, backward, projections, training steps.")
    parser.add_argument("--network", choices=NETWORKS, default="cifar", help="what to time")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--num_batches", type=int, default=100)
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    parser.add_argument("--what", choices=PHASES, help="one phase (default: forward and forward_backward)")
    parser.add_argument("--with_data", action="store_true", help="train_step: include the input pipeline")
    parser.add_argument("--data_dir", default="", help="train_step --with_data: real CIFAR-10 (else random)")
    parser.add_argument(
        "--steps_per_call",
        type=int,
        default=1,
        help="train_step: optimizer steps per compiled call (the trainer runs up to log_every); timings stay per step",
    )
    flags.add_onednn(parser)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument(
        "--baseline",
        help="train_step: 'keras' also times the same network and "
        "recipe with Keras model.fit in this process; a path runs that TF1-graph yardstick "
        "script (batch 128, float32) for --num_batches steps; prints the speed ratio",
    )
    args = parser.parse_args(argv)
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        raise FileNotFoundError(f"--json: folder {os.path.dirname(args.json)} does not exist")
    if args.baseline and args.what != "train_step":
        raise ValueError("--baseline compares training steps: use --what train_step")
    if args.baseline and args.baseline != "keras" and args.network != "cifar":
        raise ValueError("the TF1 yardstick is the reference network: use --network cifar")
    if args.baseline and args.baseline != "keras" and args.batch_size != 128:
        raise ValueError("the TF1 yardstick trains batches of 128: use --batch_size 128")
    if args.steps_per_call < 1:
        raise ValueError("--steps_per_call must be positive")
    report = benchmark(
        args.network,
        args.batch_size,
        args.num_batches,
        args.precision,
        args.what or "",
        args.with_data,
        args.data_dir,
        steps_per_call=args.steps_per_call,
    )
    if args.baseline:
        add_baseline(report, args.baseline, args.num_batches, args.with_data, args.data_dir, args.steps_per_call)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0
