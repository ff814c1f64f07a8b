"""A Keras CNN trained on CIFAR-10 with model.fit and explored with vizdeconv.

    python examples/keras_cifar10.py --data_dir ../shared/cifar10 --epochs 10 --out logs/keras_vgg
    python examples/keras_cifar10.py --data_dir ../shared/cifar10 --architecture MobileNetV2 --epochs 5 \
        --out logs/keras_mobilenetv2 --layer block_2_add --layer block_5_add

`--architecture vgg` (default) is a VGG-style CNN with BatchNormalization; any `keras.applications`
family name (MobileNetV2, EfficientNetB0, ResNet50, ...) is that backbone, built with `weights=None`
for 32x32 inputs, nested inside a classifier (the usual transfer-learning shape), its layers explored by
their own names. Writes `<out>/model.keras`, TensorBoard logs in `<out>` (keras.callbacks.TensorBoard and
vizdeconv's DeconvnetCallback side by side: `tensorboard --logdir <out>`), and the explorer's top-9 grids
in `<out>/model_explore/test/`.
"""

import argparse
import os
import time

import keras
import numpy as np

import vizdeconv
from vizdeconv.analyze import explorer_sanity
from vizdeconv.data import cifar10
from vizdeconv.explore import ExploreOptions, explore


def build_model() -> keras.Model:
    """Input 32x32x3 uint8-valued floats; Rescaling inside, so the explorer feeds raw pixels."""
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0, name="rescale")(inputs)
    for stage, filters in enumerate((32, 64, 128), start=1):
        for conv in (1, 2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{stage}_{conv}")(x)
            x = keras.layers.BatchNormalization(name=f"bn{stage}_{conv}")(x)
            x = keras.layers.ReLU(name=f"relu{stage}_{conv}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{stage}")(x)
        x = keras.layers.Dropout(0.1 * stage, name=f"drop{stage}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name="vgg_bn")


def build_application(family: str) -> keras.Model:
    """A keras.applications backbone (weights=None, 32x32) nested in a 10-class classifier.

    Pixels [0, 255] are scaled to [-1, 1] inside the model (what MobileNet/ResNetV2-style families
    expect; the others' BatchNormalization adapts), so the explorer feeds raw pixels.
    """
    build = getattr(keras.applications, family, None)
    if build is None:
        raise SystemExit(f"error: keras.applications has no {family!r}")
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(inputs)
    base = build(include_top=False, weights=None, input_shape=(32, 32, 3))
    for layer in base.layers:
        # Some families' BatchNormalization averages over ~1,000 steps (momentum 0.999, for long ImageNet
        # runs): a few epochs from scratch would leave the inference statistics near their initial values.
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = min(layer.momentum, 0.99)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(base(x))
    outputs = keras.layers.Dense(10, name="logits")(keras.layers.Dropout(0.2, name="drop")(x))
    return keras.Model(inputs, outputs, name=f"{family.lower()}_cifar10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", required=True, help="CIFAR-10 binary tarball or folder")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--out", default="logs/keras_vgg")
    parser.add_argument("--limit", type=int, default=0, help="train on the first N images only")
    parser.add_argument("--architecture", default="vgg", help="vgg, or a keras.applications family name")
    parser.add_argument(
        "--layer", action="append", help="layers to explore (repeatable; default: vgg's relu2_2, relu3_2)"
    )
    args = parser.parse_args()
    model = build_model() if args.architecture == "vgg" else build_application(args.architecture)
    layers = args.layer or (["relu2_2", "relu3_2"] if args.architecture == "vgg" else [])
    if not layers:
        raise SystemExit("error: name the layers to explore with --layer for a keras.applications backbone")
    train_x, train_y = cifar10.load_binary(args.data_dir, "train")
    test_x, test_y = cifar10.load_binary(args.data_dir, "test")
    if args.limit:
        train_x, train_y = train_x[: args.limit], train_y[: args.limit]
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=10,
    )
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomTranslation(0.1, 0.1)])
    import tensorflow as tf

    train = (
        tf.data.Dataset.from_tensor_slices((train_x, train_y))
        .shuffle(10_000, seed=0)
        .batch(args.batch_size)
        .map(lambda x, y: (augment(tf.cast(x, tf.float32), training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    probes = test_x[:8].astype(np.float32)
    callbacks = [
        keras.callbacks.TensorBoard(args.out),
        # The snapshots (one per epoch) are what `vizdeconv analyze evolution --snapshots` reads.
        vizdeconv.keras.DeconvnetCallback(
            args.out, probes, originals=probes / 255.0, snapshot_dir=os.path.join(args.out, "snapshots")
        ),
    ]
    start = time.perf_counter()
    model.fit(
        train, epochs=args.epochs, validation_data=(test_x.astype(np.float32), test_y), callbacks=callbacks, verbose=2
    )
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(test_x.astype(np.float32), test_y, verbose=0)
    path = os.path.join(args.out, "model.keras")
    model.save(path)
    print(f"test accuracy {accuracy:.4f} after {args.epochs} epochs in {seconds:.0f} s; saved {path}")
    options = ExploreOptions(model=path, layers=layers, data_dir=args.data_dir, compare=True)
    report = explore(options, after_scan=explorer_sanity("test"))
    print(f"explored: {report['out']} ({report['images'] / report['scan_seconds']:.0f} images/s scan)")


if __name__ == "__main__":
    main()
