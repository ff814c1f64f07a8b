"""Feature visualization side by side: vizdeconv's batched Fourier and pixel methods against tf-keras-vis.

  pip install tf-keras-vis==0.8.7   # only for this benchmark, not a dependency of vizdeconv
  python scripts/bench_feature_vis.py --run logs/ref15k --layer conv2 [--channels 16] [--steps 256]
  python scripts/bench_feature_vis.py --model logs/keras_vgg/model.keras --layer conv3_2

One run, one model, one layer, the same steps and image size for every method. The methods see the same
network behind the same preprocessing (the explorer's: pixels in [0, 1] -> model inputs): vizdeconv
through `FeatureVisualization(preprocess=...)`, tf-keras-vis through a Keras model that takes [0, 1]
pixels, applies that preprocessing and returns the layer, with `input_range=(0, 1)` and its default
regularizers and input modifiers. tf-keras-vis runs twice: one channel per call (its documented use)
and all channels as one batch (a seed batch and a score that picks channel i of image i). The reached
activation is the strongest unit of the channel in the final image, measured the same way for all.
Prints a Markdown table (seconds per channel, median reached activation, median ratio to the explorer's
top-1 where `--top1` names an explorer index.json) and the CPU. Not a test: figures depend on the machine.
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run")
    source.add_argument("--model")
    parser.add_argument("--layer", required=True)
    parser.add_argument("--channels", type=int, default=16, help="the first N channels of the layer")
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--top1", default=None, help="an explorer index.json: ratios to each channel's top-1")
    parser.add_argument("--skip_single", action="store_true", help="skip tf-keras-vis one channel per call")
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from vizdeconv.hardware.precision import hardware
    from vizdeconv.methods.deconvnet import as_graph
    from vizdeconv.methods.feature_vis import FeatureVisualization
    from vizdeconv.nn import convnet
    from vizdeconv.runs.subject import open_subject

    subject = open_subject(args.run, args.model, log=lambda *_: None, need_data=False)
    model = subject.model
    keras_model = convnet.to_keras(model) if isinstance(model, convnet.ConvNet) else model
    graph = as_graph(model)
    height, width = graph.input_shape[:2]
    channels = list(range(min(args.channels, graph.shapes[graph.resolve(args.layer)][-1])))
    count = len(channels)

    # One Keras model for tf-keras-vis and for measuring every result: [0, 1] pixels -> the layer.
    pixels_in = keras.Input((height, width, 3))
    inputs = keras.layers.Lambda(subject.pixels.from_unit)(pixels_in)
    feature = keras.Model(keras_model.inputs, keras_model.get_layer(args.layer).output)
    measure = keras.Model(pixels_in, feature(inputs))

    def reached(images) -> np.ndarray:
        maps = measure(tf.constant(images, tf.float32)).numpy()
        return np.array([maps[i, ..., c].max() for i, c in enumerate(channels)])

    rows = []
    for method in ("fourier", "pixel"):
        visualization = FeatureVisualization(model, method, True, subject.pixels)
        visualization.optimize(args.layer, channels[:1], steps=2)  # compile outside the timing
        start = time.perf_counter()
        result = visualization.optimize(args.layer, channels, steps=args.steps)
        seconds = time.perf_counter() - start
        rows.append((f"vizdeconv {method}, {count} channels in one batch", seconds / count, reached(result.images)))

    try:
        from tf_keras_vis.activation_maximization import ActivationMaximization
    except ImportError:
        print("tf-keras-vis is not installed (pip install tf-keras-vis==0.8.7): its rows are left out")
    else:
        maximization = ActivationMaximization(measure, clone=False)

        def score_of(picked):
            return lambda output: tf.stack([tf.reduce_mean(output[i, ..., c]) for i, c in enumerate(picked)])

        def seeds(n, seed):
            return tf.random.stateless_uniform([n, height, width, 3], [seed, 0], 0.0, 1.0)

        maximization(score_of(channels[:1]), seeds(1, 0), input_range=(0, 1), steps=2)  # warm up
        start = time.perf_counter()
        images = maximization(score_of(channels), seeds(count, 1), input_range=(0, 1), steps=args.steps)
        rows.append((f"tf-keras-vis 0.8.7, {count} channels in one batch", (time.perf_counter() - start) / count,
                     reached(np.asarray(images))))  # fmt: skip
        if not args.skip_single:
            singles, start = [], time.perf_counter()
            for c in channels:
                singles.append(
                    np.asarray(maximization(score_of([c]), seeds(1, 1), input_range=(0, 1), steps=args.steps))[0]
                )
            rows.append(("tf-keras-vis 0.8.7, one channel per call", (time.perf_counter() - start) / count,
                         reached(np.stack(singles))))  # fmt: skip

    machine = hardware()
    top1 = None
    if args.top1:
        layer = json.load(open(args.top1))["layers"][args.layer]
        top1 = np.array([layer[str(c)]["values"][0] for c in channels])
    print(f"\n{args.run or args.model}, layer {args.layer}, {count} channels, {args.steps} steps, "
          f"{height}x{width}, on {machine['cpu']} ({machine['cpu_kind']}, {machine['cores']} cores), "
          f"TensorFlow {tf.__version__}\n")  # fmt: skip
    header = "| method | s per channel | median reached activation |"
    print(header + (" median ratio to top-1 | beats top-1 |" if top1 is not None else ""))
    print("|---|---|---|" + ("---|---|" if top1 is not None else ""))
    for name, per_channel, values in rows:
        line = f"| {name} | {per_channel:.3f} | {np.median(values):.2f} |"
        if top1 is not None:
            line += f" {np.median(values / top1):.2f} | {int(np.sum(values > top1))}/{count} |"
        print(line)


if __name__ == "__main__":
    main()
