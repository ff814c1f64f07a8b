"""Attribution measured: against tf-keras-vis, against one forward + backward pass, the pointing game, and
deletion/insertion faithfulness.

    # tf-keras-vis, for `compare` only (not a dependency): kept out of the environment, because its wheel
    # installs a top-level `tests` package that would hide this project's tests
    pip install scipy deprecated imageio && pip install --no-deps --target /tmp/tkv_site tf-keras-vis==0.8.7
    PYTHONPATH=/tmp/tkv_site python scripts/bench_attribution.py compare --run logs/tuned \
        [--model logs/keras_vgg/model.keras --data_dir ../shared/cifar10] [--applications ResNet50] [--images 16]
    python scripts/bench_attribution.py pointing [--images 256]
    python scripts/bench_attribution.py faithfulness --run logs/tuned [--model M --data_dir D] [--images 500]
    python scripts/bench_attribution.py figure --run logs/tuned --ids 0,1,2,3 --out docs/images/attribution_tuned.png
    python scripts/bench_attribution.py sanity --run logs/tuned [--model M --data_dir D] [--images 64]

`compare`: on each model (its logits: a final softmax is taken off a copy, as tf-keras-vis's ReplaceToLinear
would, which fails on Keras 3 models),
the same images and classes, Grad-CAM, Grad-CAM++ and Score-CAM at the layer's resolution from both
libraries (the largest difference, relative to the map's maximum, after scaling each map to max 1), and
seconds per image of each, batched, beside one forward + backward pass of the Keras model (the limit for
Grad-CAM). `pointing`: the pointing game on red and blue squares pasted at random places (a small CNN trained
here, as tests/methods/test_localization.py). `faithfulness`: each method's mean deletion and insertion AUC
over the test images beside a random and a centre-Gaussian map. `figure`: `vizdeconv analyze attribute`'s
figures of the chosen test images (every method), one row each, stacked into one picture. `sanity`: the model
parameter randomization test (Adebayo et al. 2018) of every method and of the deconvnet's class projections
(deconvnet and guided): the weight layers are redrawn from the top one by one (`methods.sanity.randomize`), the
same images and classes are explained at each stage, and the mean Spearman rank correlation of absolute values
with the trained network's maps is printed per stage (a method whose maps stay alike when the weights are random
does not show what the network learned). Prints the CPU and a JSON summary.
"""

import argparse
import json
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the test helpers' package
from tests.support.localization import hit_rate, squares  # noqa: E402  (the pointing game's task)
from vizdeconv.hardware.cpu import cpu_model
from vizdeconv.methods import metrics
from vizdeconv.methods.attribution import METHODS, Attribution
from vizdeconv.runs.subject import open_subject

CAMS = ("gradcam", "gradcam++", "scorecam")


def _unit(maps):
    maps = np.maximum(np.asarray(maps, np.float32), 0)
    peak = maps.reshape(len(maps), -1).max(1)
    return maps / np.where(peak > 0, peak, 1)[:, None, None]


def _seconds(function, repeats: int) -> float:
    function()  # traces
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def _models(args):
    """(name, Keras model, inputs [N, H, W, C]) of each model asked for."""
    found = []
    if args.run:
        subject = open_subject(args.run, log=lambda *_: None)
        images, _ = subject.load("test")
        inputs = np.asarray(subject.pixels.inputs(images[: args.images]))
        found.append((f"reference run {args.run}", keras.models.clone_model(_keras_of(args.run)), inputs))
    if args.model:
        subject = open_subject(model_path=args.model, data_dir=args.data_dir, log=lambda *_: None)
        images, _ = subject.load("test")
        found.append((args.model, subject.model, np.asarray(subject.pixels.inputs(images[: args.images]))))
    for name in args.applications or []:
        model = open_subject(model_path=f"applications:{name}", need_data=False).model
        rng = np.random.default_rng(0)
        found.append((f"{name} (weights=None)", model, rng.normal(size=(args.images, *model.input_shape[1:]))))
    return found


def _keras_of(run):
    import vizdeconv

    model = vizdeconv.load_model(run)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _linear(model):
    """The model with its last layer's softmax taken off (a copy), as tf-keras-vis's ReplaceToLinear does."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    last = copy.layers[-1]
    if getattr(last, "activation", None) is not None and getattr(last.activation, "__name__", "") == "softmax":
        last.activation = keras.activations.linear
    return copy


def compare(args) -> dict:
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore

    rows = []
    for name, model, inputs in _models(args):
        inputs = tf.constant(np.asarray(inputs, np.float32))
        model = _linear(model)
        ours = {m: Attribution(model, m, max_maps=args.max_maps if m == "scorecam" else None) for m in CAMS}
        layer = ours["gradcam"].layer
        targets = ours["gradcam"].explain(inputs).targets
        score = CategoricalScore(targets.tolist())
        # tf-keras-vis's ReplaceToLinear reads model.output_names, which Keras 3 models no longer have: the
        # softmax is already taken off above (`_linear`), so the models are passed as they are.
        theirs = {
            "gradcam": Gradcam(model, clone=True),
            "gradcam++": GradcamPlusPlus(model, clone=True),
            "scorecam": Scorecam(model, clone=True),
        }

        def run_theirs(method, batch=inputs, score=score):
            # seek_penultimate_conv_layer=False: by default tf-keras-vis moves from a layer that is not a
            # convolution (ResNet50's conv5_block3_out, an Activation) down to the convolution before it
            options = {"penultimate_layer": layer, "expand_cam": False, "normalize_cam": False,
                       "seek_penultimate_conv_layer": False}  # fmt: skip
            if method == "scorecam":
                options.update(max_N=args.max_maps or -1, batch_size=32)
            return theirs[method](score, batch.numpy(), **options)

        @tf.function(reduce_retracing=True)
        def forward_backward(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                scores = tf.gather(model(x, training=False), targets, batch_dims=1)
            return tape.gradient(scores, x)

        row = {"model": name, "layer": layer, "images": int(len(inputs)), "input": list(inputs.shape[1:])}
        row["forward_backward_s_per_image"] = _seconds(lambda: forward_backward(inputs), args.repeats) / len(inputs)
        for method in CAMS:
            mine = ours[method].explain(inputs, targets).raw
            if method == "scorecam" and args.max_maps:
                # tf-keras-vis keeps the union of every image's strongest maps in a batch: one image at a time
                other = np.concatenate([run_theirs(method, inputs[i : i + 1], CategoricalScore([int(t)]))
                                        for i, t in enumerate(targets)])  # fmt: skip
            else:
                other = run_theirs(method)
            row[f"{method}_max_difference"] = float(np.abs(_unit(mine) - _unit(other)).max())
            repeats = max(1, args.repeats // (3 if method == "scorecam" else 1))
            row[f"{method}_s_per_image"] = _seconds(lambda m=method: ours[m].explain(inputs, targets), repeats) / len(
                inputs
            )
            row[f"{method}_tf_keras_vis_s_per_image"] = _seconds(lambda m=method: run_theirs(m), repeats) / len(inputs)
        row["gradcam_over_forward_backward"] = row["gradcam_s_per_image"] / row["forward_backward_s_per_image"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"compare": rows}


def pointing(args) -> dict:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="features")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images, labels, _ = squares(1024, 1)
    model.fit(images, labels, batch_size=64, epochs=6, verbose=0)
    images, labels, corners = squares(args.images, 2)
    rates = {"accuracy": float((model.predict(images, verbose=0).argmax(1) == labels).mean())}
    variants = [(m, {}) for m in METHODS] + [(m, {"smooth": 16}) for m in ("saliency", "gradcam")]
    baselines = {
        "random": metrics.random_maps(len(images), (16, 16)),
        "centre": metrics.center_maps(len(images), (16, 16)),
    }
    for name, settings in variants:
        maps = Attribution(model, name, **settings).explain(images, labels).maps
        rates[name + (" + SmoothGrad 16" if settings else "")] = hit_rate(maps, corners)
    for name, maps in baselines.items():
        rates[f"{name} (baseline)"] = hit_rate(maps, corners)
    rates["chance"] = 36 / 256
    return {"pointing_game": rates}


def _subjects(args) -> list:
    """(name, opened subject) of `--run` and of `--model` with `--data_dir`, those given."""
    subjects = []
    if args.run:
        subjects.append((args.run, open_subject(args.run, log=lambda *_: None)))
    if args.model:
        subjects.append((args.model, open_subject(model_path=args.model, data_dir=args.data_dir, log=lambda *_: None)))
    return subjects


def faithfulness(args) -> dict:
    tables = {}
    for name, subject in _subjects(args):
        images, labels = subject.load("test")
        inputs = np.asarray(subject.pixels.inputs(images[: args.images]))
        size = inputs.shape[1:3]
        table = {}
        targets = None
        for method in METHODS:
            started = time.perf_counter()
            result = Attribution(subject.model, method, batch_size=128).explain(inputs)
            targets = result.targets
            table[method] = _aucs(subject.model, inputs, result.maps, targets)
            table[method]["seconds"] = time.perf_counter() - started
            print(name, method, json.dumps(table[method]), flush=True)
        for baseline, maps in (("random", metrics.random_maps(len(inputs), size)),
                               ("centre", metrics.center_maps(len(inputs), size))):  # fmt: skip
            table[f"{baseline} (baseline)"] = _aucs(subject.model, inputs, maps, targets)
        accuracy = float((targets == labels[: args.images]).mean())
        tables[name] = {"images": int(len(inputs)), "top_class_accuracy": accuracy, "auc": table}
    return {"faithfulness": tables}


def _aucs(model, inputs, maps, targets) -> dict:
    deletion = metrics.deletion(model, inputs, maps, targets, batch_size=256).auc
    insertion = metrics.insertion(model, inputs, maps, targets, batch_size=256).auc
    return {"deletion": float(deletion.mean()), "insertion": float(insertion.mean())}


def figure(args) -> dict:
    import tempfile

    from PIL import Image

    from vizdeconv import cli

    source = ["--run", args.run] if args.run else ["--model", args.model, "--data_dir", args.data_dir]
    with tempfile.TemporaryDirectory() as folder:
        code = cli.run(cli.command("analyze"), ["attribute", *source, "--images", args.ids, "--out", folder])
        if code:
            raise SystemExit(code)
        rows = [np.asarray(Image.open(os.path.join(folder, name)).convert("RGB"))
                for name in sorted(os.listdir(folder)) if name.endswith(".png")]  # fmt: skip
        report = json.load(open(os.path.join(folder, "attribute.json")))
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    Image.fromarray(np.concatenate(rows)).save(args.out)
    return {"figure": args.out, "images": [(e["name"], e["class"], round(e["score"], 2)) for e in report["images"]]}


def sanity(args) -> dict:
    from vizdeconv.methods import similarity
    from vizdeconv.methods.deconvnet import Deconvnet, as_graph
    from vizdeconv.methods.sanity import randomize, weight_layers

    tables = {}
    for name, subject in _subjects(args):
        images, _ = subject.load("test")
        inputs = np.asarray(subject.pixels.inputs(images[: args.images]))
        graph = as_graph(subject.model)
        order = weight_layers(graph)
        targets = Attribution(graph, "gradcam").explain(inputs).targets
        explainers = {method: (lambda g, m=method: Attribution(g, m, batch_size=128).explain(inputs, targets).maps)
                      for method in METHODS}  # fmt: skip
        explainers["smoothgrad (saliency, 16)"] = lambda g: Attribution(g, "saliency", smooth=16).explain(
            inputs, targets).maps  # fmt: skip
        for mode in ("deconvnet", "guided"):  # the class logit projected to the pixels
            explainers[f"{mode} projection of the class"] = lambda g, m=mode: np.abs(Deconvnet(g, m).project(
                inputs, g.output, channel=targets).numpy()).sum(-1)  # fmt: skip
        table = {}
        for method, explain in explainers.items():
            trained = explain(graph)
            curve = []
            for count in range(1, len(order) + 1):
                maps = explain(randomize(graph, set(order[:count]), seed=1))
                curve.append(float(np.nanmean(similarity.spearman(trained, maps))))
            table[method] = dict(zip([layer.removesuffix("/linear") for layer in order], curve))
            print(name, method, json.dumps(table[method]), flush=True)
        tables[name] = {"images": int(len(inputs)), "stages (cumulative, top first)": order, "spearman": table}
    return {"sanity": tables}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("compare", "pointing", "faithfulness", "figure", "sanity"))
    parser.add_argument("--run", default=None, help="a reference run folder")
    parser.add_argument("--model", default=None, help="a .keras model (with --data_dir)")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--applications", action="append", default=None, help="e.g. ResNet50 (weights=None)")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max_maps", type=int, default=None, help="Score-CAM's strongest maps, in both libraries")
    parser.add_argument("--ids", default="0,1,2,3", help="figure: test image ids")
    parser.add_argument("--out", default="docs/images/attribution_tuned.png", help="figure: the picture")
    args = parser.parse_args()
    result = {"pointing": pointing, "compare": compare, "faithfulness": faithfulness, "figure": figure,
              "sanity": sanity}[args.what](args)  # fmt: skip
    print(json.dumps({"cpu": cpu_model(), **result}, indent=1))


if __name__ == "__main__":
    main()
