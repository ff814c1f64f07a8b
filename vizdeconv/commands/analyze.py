"""`vizdeconv analyze {occlusion,evolution,invariance,sanity,optimize}`: the rest of Zeiler & Fergus (2014),
the cascading sanity check (Adebayo et al. 2018) and feature visualization, on a run folder or a model.

  vizdeconv analyze occlusion  --run logs/default --images 0,5,17 [--patch 4] [--stride 1] [--layer conv3]
  vizdeconv analyze evolution  --run logs/default --layer conv1 [--limit 2000] [--mode guided]
  vizdeconv analyze invariance --run logs/default --images first:5 [--layer conv1 --layer conv2]
  vizdeconv analyze sanity     --run logs/default --layer conv3 [--images first:6]
  vizdeconv analyze optimize   --run logs/default --layer conv2 [--channels 0,5] [--method pixel] [--steps 256]

Each writes PNGs and .json/.npz data into <run>/analyze/<name>/ (or --out) and image summaries under
<run>/analyze for TensorBoard.
"""

from vizdeconv.commands import flags


def main(argv=None, program: str = "vizdeconv analyze") -> int:
    from vizdeconv.analyze import ANALYSES, AnalyzeOptions, analyze

    parser = flags.parser(program, __doc__.split("\n")[0])
    parser.add_argument("analysis", choices=ANALYSES)
    flags.add_subject(parser)
    flags.add_split(parser)
    flags.add_onednn(parser)
    parser.add_argument("--images", default=None, help="image ids of the split, e.g. 0,5,17, or first:N")
    flags.add_layer(parser, "the layer (default: the top feature layer; invariance: the rectified ones)")
    flags.add_mode(parser, "projection rule of occlusion, evolution and sanity")
    parser.add_argument("--patch", type=int, default=4, help="occlusion: side of the grey square")
    parser.add_argument("--stride", type=int, default=1, help="occlusion: step of the grey square")
    parser.add_argument("--limit", type=int, default=0, help="evolution: scan only the first N images")
    parser.add_argument("--snapshots", default=None, help="evolution of a .keras model: its snapshots")
    parser.add_argument("--channels", default=None, help="optimize: channel ids like 0,5,17 (default: all)")
    flags.add_optimization(parser, "optimize")
    parser.add_argument("--unit", default=None, choices=("center",), help="optimize: the centre unit, not the mean")
    parser.add_argument("--out", default=None, help="output folder (default: <run>/analyze/<analysis>)")
    args = parser.parse_args(argv)
    options = AnalyzeOptions(
        args.analysis,
        run=args.run,
        model=args.model,
        data_dir=args.data_dir,
        preprocess=args.preprocess,
        split=args.split,
        images=args.images,
        layers=args.layer,
        mode=args.mode,
        rectify=args.rectify,
        weights=args.weights,
        tfds_data_dir=args.tfds_data_dir,
        patch=args.patch,
        stride=args.stride,
        limit=args.limit,
        snapshots=args.snapshots,
        out=args.out,
        channels=args.channels,
        method=args.method,
        steps=args.steps,
        unit=args.unit,
        seed=args.seed,
    )
    print(f"wrote {analyze(options)['out']}")
    return 0
