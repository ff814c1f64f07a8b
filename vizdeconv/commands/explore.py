"""`vizdeconv explore`: top-k activations per feature map, projected and cropped.

vizdeconv explore --run logs/default --layer conv2 [--layer conv3] [--split test]
                  [--limit N] [--top_k 9] [--mode deconvnet] [--compare] [--sanity]
                  [--optimize [--method fourier] [--steps 256]]
vizdeconv explore --model my_cnn.keras --data_dir PATH [--preprocess auto] [--layer NAME]
"""

from vizdeconv.commands import flags


def main(argv=None, program: str = "vizdeconv explore") -> int:
    parser = flags.parser(program, "Top-k activations per feature map, projected and cropped.")
    flags.add_subject(parser)
    flags.add_layer(parser, "layer to explore (default: every rectified feature map)")
    flags.add_split(parser)
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
    parser.add_argument("--strategy", default="default", help="tf.distribute strategy for the scan")
    parser.add_argument("--devices", default="", help="device list for --strategy mirrored")
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
    )
    report = explore(options, after_scan=explorer_sanity(args.split) if args.sanity else None)
    for layer, figures in report.get("optimize", {}).get("layers", {}).items():
        print(
            f"{layer}: the optimized image beats the top-1 activation on {figures['exceeds']}/{figures['channels']} "
            f"feature maps (median ratio {figures['median_ratio']:.2f}, {figures['seconds']:.1f} s)"
        )
    print(
        f"wrote {report['out']} (scan of {report['images']} images: {report['scan_seconds']:.1f} s, "
        f"{report['images'] / max(report['scan_seconds'], 1e-9):.0f} images/s)"
    )
    return 0
