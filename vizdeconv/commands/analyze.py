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
    from vizdeconv.analyze import ANALYSES, analyze

    parser = flags.parser(program, __doc__.split("\n")[0])
    analyses = parser.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS", help=", ".join(ANALYSES))
    for name, options_class in ANALYSES.items():
        summary = options_class.__doc__.split("\n")[0]
        analysis = analyses.add_parser(name, help=summary, description=summary)
        flags.add_options(analysis, options_class)
        flags.add_onednn(analysis)
    args = parser.parse_args(argv)
    print(f"wrote {analyze(flags.options_from(args, ANALYSES[args.analysis]))['out']}")
    return 0
