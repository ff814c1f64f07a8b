"""The documentation's gallery: every view of vizdeconv on two networks, on the same images and units.

  python scripts/gallery.py --run logs/tuned --model logs/keras_vgg/model.keras --data_dir ../shared/cifar10 \
      --out docs/images/gallery --notebook docs/notebook.ipynb

For each network (the tuned reference run, and the VGG example's `.keras` file with the snapshots its callback
saved), on test images 0-3 and on the channel of the top feature layer that fires most on image 0, it writes:
`<name>_projections.png` (image | deconvnet | guided projection of each image's strongest unit), `<name>_top9.png`
(that channel's top-9 over the test split beside their patches, and its optimized image), `<name>_occlusion.png`
(Fig. 7 for image 0), `<name>_evolution.png` (the channel and the next strongest ones at every kept checkpoint),
`<name>_sanity.png` (cascading randomization of the four images' units, guided), `<name>_attribution.png`
(every attribution method on the four images) and `gallery.json` with the numbers the captions quote. With
`--notebook`, it also executes `notebooks/inspect_features.ipynb` against `--run` into that file, which the site
renders (the committed notebook itself stays without outputs).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np


def read_png(path: str) -> np.ndarray:
    """[H, W, 3] uint8."""
    import tensorflow as tf

    return tf.io.decode_png(tf.io.read_file(path), channels=3).numpy()


def pictures_of(subject, layer: str, ids: list[int], out: str, name: str, work: str, log) -> dict:
    """Writes one network's views; returns the numbers the captions quote."""
    import vizdeconv
    from vizdeconv.analyze import AttributeOptions, EvolutionOptions, OcclusionOptions, SanityOptions, analyze
    from vizdeconv.analyze.figures import evolution_figure
    from vizdeconv.explore import ExploreOptions, explore
    from vizdeconv.methods.deconvnet import strongest_unit
    from vizdeconv.viz import pictures

    images, labels = subject.load("test")
    inputs = subject.pixels.inputs(images[ids])
    deconvnet = vizdeconv.Deconvnet(subject.model)
    channels, positions = (t.numpy() for t in strongest_unit(deconvnet.feature_maps(inputs, layer)))
    channel = int(channels[0])
    facts = {"layer": layer, "images": ids, "labels": [int(labels[i]) for i in ids], "channels": channels.tolist(),
             "channel": channel}  # fmt: skip

    # Projections of each image's strongest unit, both modes, beside the image as the model sees it.
    shown = [pictures.to_display(subject.pixels.crop(images[ids]).astype(np.float32))]
    for mode in ("deconvnet", "guided"):
        projection = vizdeconv.Deconvnet(subject.model, mode).project(inputs, layer, channels, positions, impulse=True)
        shown.append(pictures.to_display(projection.numpy()))
    strips = pictures.upscale(pictures.stitch(shown), 4)  # [N, h, 3 w, 3]: image | deconvnet | guided
    pictures.write_png(os.path.join(out, f"{name}_projections.png"), pictures.grid(strips, 1))

    common = {"run": subject.run, "model": None if subject.run else subject.model_path, "data_dir": subject.data_dir}
    report = explore(ExploreOptions(**common, layers=[layer], optimize=True, out=os.path.join(work, name, "explore")),
                     log=log)  # fmt: skip
    shutil.copy(os.path.join(report["out"], layer, f"channel_{channel:03d}.png"), os.path.join(out, f"{name}_top9.png"))
    index = json.load(open(os.path.join(report["out"], "index.json")))
    facts["top9_labels"] = index["layers"][layer][str(channel)]["labels"]

    occlusion_options = OcclusionOptions(**common, images=str(ids[0]), layer=layer, out=os.path.join(work, name, "occ"))
    occlusion = analyze(occlusion_options, log=log)
    shutil.copy(os.path.join(occlusion["out"], f"image_{ids[0]:05d}.png"), os.path.join(out, f"{name}_occlusion.png"))

    evolution_options = EvolutionOptions(**common, layers=[layer], limit=2000, out=os.path.join(work, name, "evo"),
                                         snapshots=None if subject.run else os.path.join(os.path.dirname(
                                             subject.model_path), "snapshots"))  # fmt: skip
    evolution = analyze(evolution_options, log=log)
    order = [channel] + [int(c) for c in dict.fromkeys(channels.tolist()) if c != channel]
    picture = evolution_figure(evolution["steps"], evolution["tiles"][order], layer, channels=order)
    pictures.write_png(os.path.join(out, f"{name}_evolution.png"), picture)
    facts["evolution_steps"], facts["evolution_channels"] = evolution["steps"], order

    sanity = analyze(SanityOptions(**common, images=",".join(map(str, ids)), layers=[layer], mode="guided",
                                   out=os.path.join(work, name, "sanity")), log=log)  # fmt: skip
    shutil.copy(os.path.join(sanity["out"], f"sanity_{layer}.png"), os.path.join(out, f"{name}_sanity.png"))
    facts["sanity"] = {stage: round(float(rank), 3) for stage, rank in zip(sanity["stages"], sanity["spearman"])}

    attribute = analyze(AttributeOptions(**common, images=[str(i) for i in ids], out=os.path.join(work, name, "attr")),
                        log=log)  # fmt: skip
    figures = [read_png(os.path.join(attribute["out"], f"image_{i:05d}.png")) for i in range(len(ids))]
    width = max(f.shape[1] for f in figures)
    figures = [np.pad(f, ((0, 0), (0, width - f.shape[1]), (0, 0)), constant_values=255) for f in figures]
    pictures.write_png(os.path.join(out, f"{name}_attribution.png"), np.concatenate(figures, 0))
    facts["attribution"] = {"auc": attribute["methods"], "classes": [entry["class"] for entry in attribute["images"]]}
    return facts


def execute_notebook(run: str, path: str) -> None:
    """Runs the notebook against `run` and writes it, outputs included, to `path` (stderr left out: TensorFlow's
    start-up lines and the progress bars)."""
    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    notebook = nbformat.read(os.path.join(root, "notebooks", "inspect_features.ipynb"), as_version=4)
    # A scratch copy as logs/<name>: the notebook writes the explorer's pictures into the run it opens.
    scratch = tempfile.mkdtemp()
    name = os.path.basename(os.path.abspath(run))
    shutil.copytree(run, os.path.join(scratch, "logs", name), ignore=shutil.ignore_patterns("explore", "analyze"))
    os.environ.update(VIZDECONV_RUN=f"logs/{name}", MPLBACKEND="module://matplotlib_inline.backend_inline",
                      TF_CPP_MIN_LOG_LEVEL="3")  # fmt: skip
    try:
        ExecutePreprocessor(timeout=1800, kernel_name="python3").preprocess(notebook, {"metadata": {"path": scratch}})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    quiet(notebook)
    nbformat.write(notebook, path)


def quiet(notebook) -> None:
    """Leaves out of the outputs what a reader does not need: stderr and TensorFlow's warnings."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.outputs:
            if out.output_type == "stream":
                if out.name == "stderr":
                    continue
                out.text = "".join(line for line in out.text.splitlines(True) if "WARNING:tensorflow" not in line)
                if not out.text:
                    continue
            kept.append(out)
        cell.outputs = kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="the reference run folder (e.g. logs/tuned)")
    parser.add_argument("--run_layer", default="conv3")
    parser.add_argument("--model", required=True, help="the VGG example's .keras file (its snapshots/ beside it)")
    parser.add_argument("--model_layer", default="relu3_2")
    parser.add_argument("--data_dir", required=True, help="CIFAR-10 binary data")
    parser.add_argument("--images", default="0,1,2,3", help="test image ids")
    parser.add_argument("--out", default="docs/images/gallery")
    parser.add_argument("--notebook", default=None, help="also execute the notebook against --run into this file")
    args = parser.parse_args()
    from vizdeconv.runs.subject import open_subject

    os.makedirs(args.out, exist_ok=True)
    ids = [int(i) for i in args.images.split(",")]
    facts = {}
    with tempfile.TemporaryDirectory() as work:
        for name, subject, layer in (
            ("tuned", open_subject(run=args.run, data_dir=args.data_dir), args.run_layer),
            ("vgg", open_subject(model_path=args.model, data_dir=args.data_dir), args.model_layer),
        ):
            facts[name] = pictures_of(
                subject, layer, ids, args.out, name, work, log=lambda *a: print(*a, file=sys.stderr)
            )
    with open(os.path.join(args.out, "gallery.json"), "w") as handle:
        json.dump(facts, handle, indent=1)
    print(json.dumps(facts, indent=1))
    if args.notebook:
        execute_notebook(args.run, args.notebook)
        print(f"executed notebook written to {args.notebook}")


if __name__ == "__main__":
    main()
