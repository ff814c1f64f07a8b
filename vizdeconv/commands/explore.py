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
    from vizdeconv.analyze import explorer_sanity
    from vizdeconv.explore import ExploreOptions, explore

    parser = flags.parser(program, "Top-k activations per feature map, projected and cropped.")
    flags.add_options(parser, ExploreOptions)
    flags.add_onednn(parser)
    options = flags.options_from(parser.parse_args(argv), ExploreOptions)
    report = explore(options, after_scan=explorer_sanity(options.split) if options.sanity else None)
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
