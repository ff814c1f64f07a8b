"""`python -m vizdeconv.analyze {occlusion,evolution,invariance,sanity}`: the rest of Zeiler & Fergus
(2014) and the cascading sanity check (Adebayo et al. 2018), on a run folder or a `.keras` file.

  python -m vizdeconv.analyze occlusion  --run logs/default --images 0,5,17 [--patch 4] [--stride 1] [--layer conv3]
  python -m vizdeconv.analyze evolution  --run logs/default --layer conv1 [--limit 2000]
  python -m vizdeconv.analyze invariance --run logs/default --images first:5
  python -m vizdeconv.analyze sanity     --run logs/default --layer conv3 [--images first:6]

Each writes PNGs and .json/.npz data into <run>/analyze/<name>/ (or --out) and image summaries under
<run>/analyze for TensorBoard.
"""
import argparse
import sys

from vizdeconv import cli

ANALYSES = ("occlusion", "evolution", "invariance", "sanity")


def main(argv=None) -> int:
    from vizdeconv.deconv import engine
    from vizdeconv.explore import preprocess

    parser = argparse.ArgumentParser(prog="python -m vizdeconv.analyze", description=__doc__.split("\n")[0])
    parser.add_argument("analysis", choices=ANALYSES)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a run folder written by train.py")
    source.add_argument("--model", help="a Keras model file (.keras)")
    parser.add_argument("--data_dir", default=None, help="CIFAR-10 binary data or a folder of images")
    parser.add_argument("--preprocess", choices=preprocess.CHOICES, default="auto")
    parser.add_argument("--split", choices=("test", "train"), default="test")
    parser.add_argument("--images", default=None, help="image ids of the split, e.g. 0,5,17, or first:N")
    parser.add_argument("--layer", default=None, help="the layer (default: the top feature layer)")
    parser.add_argument("--layers", default=None, help="invariance: comma-separated layers")
    parser.add_argument("--patch", type=int, default=4, help="occlusion: side of the grey square")
    parser.add_argument("--stride", type=int, default=1, help="occlusion: step of the grey square")
    parser.add_argument("--limit", type=int, default=0, help="evolution: scan only the first N images")
    parser.add_argument("--snapshots", default=None, help="evolution of a .keras model: its snapshots")
    parser.add_argument("--mode", choices=engine.MODES, default=None, help="sanity: projection rule")
    parser.add_argument("--out", default=None, help="output folder (default: <run>/analyze/<analysis>)")
    args = parser.parse_args(argv)
    report = analyze(args.analysis, run=args.run, model_path=args.model, data_dir=args.data_dir,
                     preprocess=args.preprocess, split=args.split, images=args.images, layer=args.layer,
                     layers=args.layers.split(",") if args.layers else None, patch=args.patch,
                     stride=args.stride, limit=args.limit, snapshots=args.snapshots, mode=args.mode,
                     out=args.out)
    print(f"wrote {report['out']}")
    return 0


def analyze(analysis: str, *, run=None, model_path=None, data_dir=None, preprocess="auto", split="test",
            images=None, layer=None, layers=None, patch=4, stride=1, limit=0, snapshots=None, mode=None,
            out=None, log=print) -> dict:
    """Runs one analysis (what the command does); the run folder is held while it writes there."""
    import contextlib

    from vizdeconv.explore import analyses
    from vizdeconv.explore.subject import open_subject
    from vizdeconv.training.lock import RunLock

    if analysis not in ANALYSES:
        raise ValueError(f"analysis must be one of {', '.join(ANALYSES)}, got {analysis!r}")
    subject = open_subject(run, model_path, data_dir, preprocess, log)
    if layer is not None:
        subject.graph.resolve(layer)
    holding = RunLock(run, log, what=f"analyze {analysis}") if run else contextlib.nullcontext()
    with holding:
        if analysis == "occlusion":
            return analyses.run_occlusion(subject, images or "first:3", patch, stride, layer, split, out, log)
        if analysis == "invariance":
            return analyses.run_invariance(subject, images or "first:5", layers, split, out, log)
        if analysis == "sanity":
            return analyses.run_sanity(subject, layer, images or "first:6", split, mode, out, log)
        return analyses.run_evolution(subject, layer, split, limit, snapshots, out, log)


if __name__ == "__main__":
    cli.quiet_tensorflow()
    sys.exit(cli.run(main, sys.argv[1:], "vizdeconv.analyze"))
