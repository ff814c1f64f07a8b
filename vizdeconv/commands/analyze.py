"""`vizdeconv analyze {occlusion,evolution,invariance,sanity,optimize,attribute}`: the rest of Zeiler & Fergus
(2014), the cascading sanity check (Adebayo et al. 2018), feature visualization and class attribution, on a run
folder or a model.

  vizdeconv analyze occlusion  --run logs/default --images 0,5,17 [--patch 4] [--stride 1] [--layer conv3]
  vizdeconv analyze evolution  --run logs/default --layer conv1 [--limit 2000] [--mode guided]
  vizdeconv analyze invariance --run logs/default --images first:5 [--layer conv1 --layer conv2]
  vizdeconv analyze sanity     --run logs/default --layer conv3 [--images first:6]
  vizdeconv analyze optimize   --run logs/default --layer conv2 [--channels 0,5] [--method pixel] [--steps 256]
  vizdeconv analyze attribute  --run logs/default [--images 0,5 | --limit 8] [--method gradcam --method scorecam]
  vizdeconv analyze attribute  --model my.keras --images cat.jpg dog.png [--labels labels.txt] [--target cat]

Each writes PNGs and .json/.npz data into <run>/analyze/<name>/ (or --out) and image summaries under
<run>/analyze for TensorBoard.
"""

from vizdeconv.commands import flags


def main(argv=None, program: str = "vizdeconv analyze") -> int:
    from vizdeconv.analyze import ANALYSES, AnalyzeOptions, analyze
    from vizdeconv.methods import attribution

    parser = flags.parser(program, __doc__.split("\n")[0])
    parser.add_argument("analysis", choices=ANALYSES)
    flags.add_subject(parser)
    flags.add_split(parser)
    flags.add_onednn(parser)
    parser.add_argument(
        "--images",
        nargs="+",
        default=None,
        help="image ids of the split, e.g. 0,5,17, or first:N; attribute: or image files (broken ones are skipped)",
    )
    flags.add_layer(parser, "the layer (default: the top feature layer; invariance: the rectified ones)")
    flags.add_mode(parser, "projection rule of occlusion, evolution and sanity")
    parser.add_argument("--patch", type=int, default=4, help="occlusion: side of the grey square")
    parser.add_argument("--stride", type=int, default=1, help="occlusion: step of the grey square")
    parser.add_argument(
        "--limit", type=int, default=0, help="evolution: scan only the first N images; attribute: explain them"
    )
    parser.add_argument("--snapshots", default=None, help="evolution of a .keras model: its snapshots")
    parser.add_argument("--channels", default=None, help="optimize: channel ids like 0,5,17 (default: all)")
    parser.add_argument(
        "--method",
        action="append",
        default=None,
        help="optimize: fourier (default) or pixel parametrization; attribute: "
        f"{', '.join(attribution.METHODS)} (repeat for several; default: all)",
    )
    flags.add_optimization(parser, "optimize", method=False)
    parser.add_argument("--target", default=None, help="attribute: top (default), a class index or a class name")
    parser.add_argument("--smooth", type=int, default=0, help="attribute: SmoothGrad samples per image (0: off)")
    parser.add_argument("--max_maps", type=int, default=None, help="attribute: Score-CAM's strongest N maps")
    parser.add_argument("--labels", default=None, help="attribute: a file of class names, one a line")
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
        methods=args.method,
        steps=args.steps,
        unit=args.unit,
        seed=args.seed,
        target=args.target,
        smooth=args.smooth,
        max_maps=args.max_maps,
        labels=args.labels,
    )
    print(f"wrote {analyze(options)['out']}")
    return 0
