"""The paper's analyses on a run folder or a `.keras` file: each writes PNGs, `.json`/`.npz` data into
`<root>/analyze/<name>/` (or `out`) and image summaries under `<root>/analyze` for TensorBoard."""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from vizdeconv.analyze import figures
from vizdeconv.analyze.options import EvolutionOptions, InvarianceOptions, OcclusionOptions, SanityOptions
from vizdeconv.errors import make_folder
from vizdeconv.methods import invariance as invariance_lib
from vizdeconv.methods import occlusion as occlusion_lib
from vizdeconv.methods import sanity as sanity_lib
from vizdeconv.methods.deconvnet import Deconvnet, strongest_unit
from vizdeconv.viz.pictures import to_display, write_png
from vizdeconv.viz.plugin.probes import write_subject_probes


def pick_images(spec: str, count: int) -> list[int]:
    """Image ids from "0,5,17" or "first:N"; ValueError for ids outside the split."""
    if spec.startswith("first:"):
        ids = list(range(int(spec.split(":", 1)[1])))
    else:
        try:
            ids = [int(part) for part in spec.split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"--images must be ids like 0,5,17 or first:N, got {spec!r}") from None
    bad = [i for i in ids if not 0 <= i < count]
    if bad or not ids:
        raise ValueError(f"image id {bad[0] if bad else '(none)'} is outside the split's 0..{count - 1}")
    return ids


def _out(subject, name: str, out: str | None) -> str:
    folder = out or os.path.join(subject.root, "analyze", name)
    make_folder(folder, "output folder", "--out")
    return folder


def _summary(subject, tag: str, pictures: list[np.ndarray], probes: bool = True) -> None:
    """One TensorBoard image per picture (padded to a common size) under `<root>/analyze`; `probes`: with
    the split's first images, which list the run in the Deconvnet tab."""
    height = max(p.shape[0] for p in pictures)
    width = max(p.shape[1] for p in pictures)
    batch = np.stack(
        [np.pad(p, ((0, height - p.shape[0]), (0, width - p.shape[1]), (0, 0)), constant_values=1.0) for p in pictures]
    )
    with tf.summary.create_file_writer(os.path.join(subject.root, "analyze")).as_default():
        tf.summary.image(tag, batch, step=0, max_outputs=len(batch))
    if probes:
        write_subject_probes(subject, os.path.join(subject.root, "analyze"))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def run_occlusion(subject, options: OcclusionOptions | None = None, log=print) -> dict:
    """Occlusion (Fig. 7) of the chosen images; writes a figure and `.npz` per image, `occlusion.json` and
    summaries."""
    o = options or OcclusionOptions()
    image_ids, patch, stride, layer, split, out, mode, rectify = (
        o.images, o.patch, o.stride, o.layer, o.split, o.out, o.mode, o.rectify)  # fmt: skip
    images, labels = subject.load(split)
    ids = pick_images(image_ids, len(images))
    train_images, _ = subject.load("train")
    grey = train_images.reshape(-1, train_images.shape[-1]).mean(0)  # the mean pixel, per channel
    folder = _out(subject, "occlusion", out)
    deconvnet = Deconvnet(subject.model, mode or subject.mode, rectify=rectify or subject.rectify)
    names = subject.class_names()
    results, pictures = {}, []
    occluder = occlusion_lib.Occlusion(deconvnet, subject.pixels.inputs, grey, patch, stride, layer)
    for image_id in ids:
        picture = subject.pixels.crop(images[image_id : image_id + 1])[0]
        result = occluder.explain(picture, int(labels[image_id]))
        figure = figures.occlusion_figure(result, picture, int(labels[image_id]), names)
        write_png(os.path.join(folder, f"image_{image_id:05d}.png"), figure)
        np.savez(
            os.path.join(folder, f"image_{image_id:05d}.npz"),
            **{k: np.asarray(v) for k, v in dataclasses.asdict(result).items() if k != "unoccluded"},
        )
        results[image_id] = {
            "label": int(labels[image_id]),
            "channel": result["channel"],
            "layer": result["layer"],
            "unoccluded": result["unoccluded"],
            "rows": result["rows"],
            "cols": result["cols"],
        }
        pictures.append(figure)
    with open(os.path.join(folder, "occlusion.json"), "w") as handle:
        json.dump(_jsonable({"patch": patch, "stride": stride, "grey": grey, "images": results}), handle, indent=1)
    _summary(subject, "analyze/occlusion", pictures)
    log(f"occlusion of {len(ids)} image(s) written to {folder}")
    return {"out": folder, "images": results}


def run_invariance(subject, options: InvarianceOptions | None = None, log=print) -> dict:
    """Invariance (Fig. 5) of the chosen images: a figure per transformation and `invariance.json`."""
    from vizdeconv.viz.summaries import default_layers

    o = options or InvarianceOptions()
    image_ids, layers, split, out = o.images, o.layers, o.split, o.out
    images, labels = subject.load(split)
    ids = pick_images(image_ids, len(images))
    layers = layers or default_layers(subject.graph)
    invariance = invariance_lib.Invariance(subject.model, subject.pixels.inputs, layers)
    result = invariance.explain(images[ids], labels[ids]).transforms
    folder = _out(subject, "invariance", out)
    pictures = []
    for kind, values in result.items():
        picture = figures.invariance_figure(kind, values, layers)
        write_png(os.path.join(folder, f"{kind}.png"), picture)
        pictures.append(picture)
    with open(os.path.join(folder, "invariance.json"), "w") as handle:
        json.dump(_jsonable({"images": ids, "layers": layers, "transforms": result}), handle)
    _summary(subject, "analyze/invariance", pictures)
    log(f"invariance of {len(ids)} image(s) written to {folder}")
    return {"out": folder, "result": result}


def run_sanity(subject, options: SanityOptions | None = None, layer: str | None = None, log=print) -> dict:
    """The cascading randomization check of `layer` (default: the top feature layer) on the chosen images."""
    o = options or SanityOptions()
    image_ids, split, mode, out, rectify = o.images, o.split, o.mode, o.out, o.rectify
    images, _ = subject.load(split)
    ids = pick_images(image_ids, len(images))
    graph = subject.graph
    layer = layer or graph.feature_layers[-1]
    name = graph.resolve(layer)
    inputs = subject.pixels.inputs(images[ids])
    activations = graph.forward(inputs, record_switches=False, until=(name,))[name]
    channels, positions = strongest_unit(activations)
    cascade = sanity_lib.CascadingRandomization(subject.model, mode or subject.mode, subject.seed,
                                                display_of=to_display, rectify=rectify or subject.rectify)  # fmt: skip
    result = cascade.explain(inputs, layer, channels, positions)
    folder = _out(subject, "sanity", out)
    picture = figures.sanity_figure(result, layer)
    write_png(os.path.join(folder, f"sanity_{layer}.png"), picture)
    np.savez(
        os.path.join(folder, f"sanity_{layer}.npz"), **{k: np.asarray(v) for k, v in dataclasses.asdict(result).items()}
    )
    summary = {
        "layer": layer,
        "stages": result["stages"],
        "spearman": np.nanmean(result["spearman"], 1),
        "ssim": np.nanmean(result["ssim"], 1),
    }
    with open(os.path.join(folder, f"sanity_{layer}.json"), "w") as handle:
        json.dump(_jsonable(summary), handle, indent=1)
    _summary(subject, f"analyze/sanity/{layer}", [picture])
    for stage, rank, ssim in zip(summary["stages"], summary["spearman"], summary["ssim"]):
        log(f"sanity {layer} {stage}: spearman {rank:.3f}, ssim {ssim:.3f}")
    return {"out": folder, **summary}


def run_evolution(subject, options: EvolutionOptions | None = None, layer: str | None = None, log=print) -> dict:
    """Per feature map of `layer`: its strongest activation over the split at each kept checkpoint of
    the run (or each `.keras` snapshot of `options.snapshots`), projected and cut to the unit's receptive
    field; one grid per layer."""
    o = options or EvolutionOptions()
    split, limit, snapshots, out, mode, rectify = o.split, o.limit, o.snapshots, o.out, o.mode, o.rectify
    from vizdeconv.explore.explorer import scan

    models = _checkpoints(subject, snapshots)
    if len(models) < 2:
        raise ValueError(
            f"evolution needs at least two checkpoints; found {len(models)}"
            + (
                ""
                if snapshots
                else f" in {subject.root}/checkpoints (the trainer keeps "
                "config.keep_steps; train longer or add steps there)"
            )
        )
    images, _ = subject.load(split)
    if limit:
        images = images[:limit]
    from vizdeconv.data.sources import ArraySource
    from vizdeconv.explore.render import Renderer

    layer = layer or subject.graph.feature_layers[-1]
    width = subject.graph.shapes[subject.graph.resolve(layer)][1]
    steps, tiles = [], []
    for step, load in models:
        model = load()
        deconvnet = Deconvnet(model, mode or subject.mode, rectify=rectify or subject.rectify)
        top = scan(
            deconvnet.graph,
            images,
            [layer],
            1,
            500,
            subject.pixels.size[0],
            progress=False,
            preprocess=subject.pixels.inputs,
        )[layer]
        ids, positions = top["image_ids"][:, 0], top["positions"][:, 0]
        projections = deconvnet.project(
            subject.pixels.inputs(images[ids]), layer, np.arange(len(ids)), positions
        ).numpy()
        steps.append(step)
        renderer = Renderer(deconvnet, ArraySource(images, np.zeros(len(images), np.int32), split), subject.pixels)
        # Each tile is the unit's receptive field, as the paper shows them.
        tiles.append(renderer.crop(to_display(projections), layer, positions // width, positions % width, 0.5))
    tiles = np.stack(tiles, axis=1)  # [maps, checkpoints, field, field, 3]
    folder = _out(subject, "evolution", out)
    picture = figures.evolution_figure(steps, tiles, layer)
    write_png(os.path.join(folder, f"evolution_{layer}.png"), picture)
    np.savez(os.path.join(folder, f"evolution_{layer}.npz"), steps=np.array(steps), tiles=tiles)
    with open(os.path.join(folder, f"evolution_{layer}.json"), "w") as handle:
        json.dump({"layer": layer, "steps": steps}, handle)
    _summary(subject, f"analyze/evolution/{layer}", [picture])
    log(f"evolution of {layer} over steps {steps} written to {folder}")
    return {"out": folder, "steps": steps, "tiles": tiles}


def _checkpoints(subject, snapshots: str | None) -> list:
    """(step, loader) of each checkpoint to show, in training order; each loader opens its network through
    `open_subject` (a kept checkpoint of the run, verified first, or a `.keras` snapshot)."""
    from vizdeconv.runs import checkpoints
    from vizdeconv.runs.subject import open_subject

    def loader(**where):
        return lambda: open_subject(**where, log=lambda *_: None, need_data=False).model

    if snapshots:
        return [(step, loader(model_path=path)) for step, path in checkpoints.snapshots(snapshots) if step is not None]
    if subject.run is None:
        raise ValueError(
            "evolution of a .keras model needs --snapshots: the folder where "
            "DeconvnetCallback(snapshot_dir=...) saved it during training"
        )
    kept = checkpoints.kept(os.path.join(subject.run, "checkpoints"))
    return [(step, loader(run=subject.run, checkpoint=path)) for step, path in kept]
