"""`vizdeconv explore`: top-k activations per feature map, projected and cropped.

vizdeconv explore --run logs/default --layer conv2 [--layer conv3] [--split test]
                  [--limit N] [--top_k 9] [--mode deconvnet] [--compare] [--sanity]
                  [--optimize [--method fourier] [--steps 256]]
vizdeconv explore --model my_cnn.keras --data_dir PATH [--preprocess auto] [--layer NAME | --layer all | --layer every]
                  [--shard i/N] [--save_every N] [--strict]
vizdeconv explore merge PART... --out DIR
"""

from vizdeconv.commands import flags


def main(argv=None, program: str = "vizdeconv explore") -> int:
    argv = list(argv) if argv is not None else None
    if argv and argv[0] == "merge":
        return merge(argv[1:], f"{program} merge")
    parser = flags.parser(program, "Top-k activations per feature map, projected and cropped.")
    flags.add_subject(parser)
    flags.add_layer(
        parser,
        "layer to explore (default: every rectified feature map; all: every block's output maps; every: also "
        "the steps inside blocks, such as a convolution before its normalization)",
    )
    flags.add_split(parser)
    flags.add_onednn(parser)
    parser.add_argument("--limit", type=int, default=0, help="scan only the first N images")
    parser.add_argument("--top_k", type=int, default=9)
    flags.add_mode(parser, "projection rule (default: the run's reconstruction.mode, or deconvnet)")
    parser.add_argument(
        "--out", default=None, help="output folder (default: <run>/explore/<split>, or <model>_explore/<split>)"
    )
    parser.add_argument("--batch_size", type=int, default=500)
    parser.add_argument("--compare", action="store_true", help="also render the projection modes side by side")
    parser.add_argument(
        "--sanity",
        action="store_true",
        help="also run the cascading randomization sanity check (as vizdeconv analyze sanity) on each layer",
    )
    parser.add_argument(
        "--optimize",
        action="store_true",
        help="also optimize an image for each feature map (as vizdeconv analyze optimize) and show it beside its top-k",
    )
    flags.add_optimization(parser, "--optimize")
    parser.add_argument(
        "--strategy",
        default="default",
        help="tf.distribute strategy of the scan: default, mirrored (--devices), multi_worker (TF_CONFIG: each "
        "process scans its share into --out/workers/RANK, the chief merges them and renders)",
    )
    parser.add_argument("--devices", default="", help="device list for --strategy mirrored")
    parser.add_argument(
        "--shard",
        default=None,
        help="i/N: scan only part i of N of the data into --out (one part per worker; combine them with merge)",
    )
    parser.add_argument(
        "--save_every", type=int, default=10000, help="save the scan state every N images (a killed scan resumes)"
    )
    parser.add_argument(
        "--strict", action="store_true", help="stop at the first image that cannot be decoded (default: skip it)"
    )
    parser.add_argument(
        "--labels", default=None, help="a file of the model's class names, one a line (shown by the TensorBoard tab)"
    )
    args = parser.parse_args(argv)

    from vizdeconv.analyze import explorer_sanity
    from vizdeconv.explore import ExploreOptions, explore

    options = ExploreOptions(
        run=args.run,
        model=args.model,
        layers=args.layer,
        split=args.split,
        limit=args.limit,
        top_k=args.top_k,
        mode=args.mode,
        rectify=args.rectify,
        data_dir=args.data_dir,
        weights=args.weights,
        preprocess=args.preprocess,
        out=args.out,
        batch_size=args.batch_size,
        compare=args.compare,
        strategy=args.strategy,
        devices=args.devices,
        optimize=args.method if args.optimize else None,
        optimize_steps=args.steps,
        seed=args.seed,
        shard=args.shard,
        save_every=args.save_every,
        strict=args.strict,
        tfds_data_dir=args.tfds_data_dir,
        labels=args.labels,
    )
    report = explore(options, after_scan=explorer_sanity(args.split) if args.sanity else None)
    _print(report)
    return 0


def _print(report: dict) -> None:
    for layer, figures in report.get("optimize", {}).get("layers", {}).items():
        print(
            f"{layer}: the optimized image beats the top-1 activation on {figures['exceeds']}/{figures['channels']} "
            f"feature maps (median ratio {figures['median_ratio']:.2f}, {figures['seconds']:.1f} s)"
        )
    skipped = f", {report['skipped']} skipped" if report.get("skipped") else ""
    what = f"part {report['shard']} of the scan" if "shard" in report else "the explorer's output"
    print(
        f"wrote {what} to {report['out']} (scan of {report['images']} images{skipped}: "
        f"{report['scan_seconds']:.1f} s, {report['images'] / max(report['scan_seconds'], 1e-9):.0f} images/s)"
    )
    if "shard" in report and not report.get("merged_by_chief"):
        print("when every part is done: vizdeconv explore merge PART_FOLDERS... --out DIR")


def merge(argv, program: str) -> int:
    parser = flags.parser(program, "Combine the parts of a sharded scan (--shard i/N) into one explorer output.")
    parser.add_argument("parts", nargs="+", help="the --out folders of the parts (shards 0/N .. N-1/N)")
    parser.add_argument("--out", required=True, help="output folder of the combined result")
    args = parser.parse_args(argv)

    from vizdeconv.explore import merge as merge_parts

    _print(merge_parts(args.parts, args.out))
    return 0
