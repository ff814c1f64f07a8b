"""A VGG-style Keras CNN with BatchNormalization, trained with model.fit and explored with vizdeconv.

    python examples/keras_cifar10.py --data_dir ../shared/cifar10 --epochs 10 --out logs/keras_vgg

Writes `<out>/model.keras`, TensorBoard logs in `<out>` (keras.callbacks.TensorBoard and vizdeconv's
DeconvnetCallback side by side: `tensorboard --logdir <out>`), and the explorer's top-9 grids in
`<out>/model_explore/test/`.
"""

import argparse
import os
import time

import keras
import numpy as np

import vizdeconv
from vizdeconv.analyze import explorer_sanity
from vizdeconv.explore import ExploreOptions, explore
from vizdeconv.io import data


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", required=True, help="CIFAR-10 binary tarball or folder")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--out", default="logs/keras_vgg")
    parser.add_argument("--limit", type=int, default=0, help="train on the first N images only")
    args = parser.parse_args()
    train_x, train_y = data.load_binary(args.data_dir, "train")
    test_x, test_y = data.load_binary(args.data_dir, "test")
    if args.limit:
        train_x, train_y = train_x[: args.limit], train_y[: args.limit]
    model = build_model()
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
        vizdeconv.keras.DeconvnetCallback(args.out, probes, originals=probes / 255.0),
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
    options = ExploreOptions(model=path, layers=["relu2_2", "relu3_2"], data_dir=args.data_dir, compare=True)
    report = explore(options, after_scan=explorer_sanity("test"))
    print(f"explored: {report['out']} ({report['images'] / report['scan_seconds']:.0f} images/s scan)")


if __name__ == "__main__":
    main()
