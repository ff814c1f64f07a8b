"""Builders the tests share: the repository root, a smoke config on given data, a run's final weights, random
weights for every layer, a small Keras CNN and the keras.applications families with their smallest inputs."""

import os

import keras
import numpy as np
import tensorflow as tf

from configs import smoke

A = keras.applications
L = keras.layers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository


def small_config(data_dir, **overrides):
    config = smoke.get_config()
    config.data.data_dir = data_dir
    config.precision = "float32"  # deterministic across runs
    config.eval_batch_size = 32
    for key, value in overrides.items():
        target = config
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return config


def final_weights(workdir):
    reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints"))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name.startswith("model/") and "OPTIMIZER_SLOT" not in name
    }


def randomize(model, seed=0):
    """Random weights everywhere, incl. BatchNormalization statistics, so every op matters."""
    rng = np.random.default_rng(seed)
    for layer in model.layers if hasattr(model, "layers") else []:
        if isinstance(layer, keras.Model):
            randomize(layer, seed + 1)
        elif isinstance(layer, L.Normalization):
            continue
        else:
            weights = [
                rng.normal(0.5 if "variance" in w.path else 0.0, 0.3, w.shape).astype(np.float32) for w in layer.weights
            ]
            weights = [np.abs(w) + 0.1 if "variance" in v.path else w for w, v in zip(weights, layer.weights)]
            layer.set_weights(weights) if weights else None
    return model


def small_cnn() -> keras.Model:
    inputs = keras.Input((32, 32, 3))
    x = L.Rescaling(1 / 255.0, name="rescale")(inputs)
    x = L.Conv2D(6, 3, padding="same", use_bias=False, name="conv1")(x)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(name="relu1")(x)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(8, 3, strides=2, activation="relu", name="conv2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(10, name="logits")(x))


FAMILIES = {
    "VGG16": (A.VGG16, 32),
    "ResNet50": (A.ResNet50, 32),
    "ResNet50V2": (A.ResNet50V2, 32),
    "InceptionV3": (A.InceptionV3, 75),
    "InceptionResNetV2": (A.InceptionResNetV2, 75),
    "Xception": (A.Xception, 71),
    "MobileNet": (A.MobileNet, 32),
    "MobileNetV2": (A.MobileNetV2, 32),
    "MobileNetV3Small": (A.MobileNetV3Small, 32),
    "DenseNet121": (A.DenseNet121, 32),
    "NASNetMobile": (A.NASNetMobile, 32),
    "EfficientNetB0": (A.EfficientNetB0, 32),
    "EfficientNetV2B0": (A.EfficientNetV2B0, 32),
    "ConvNeXtTiny": (A.ConvNeXtTiny, 32),
}
NOT_RELU_ONLY = ("MobileNetV3Small", "EfficientNetB0", "EfficientNetV2B0", "ConvNeXtTiny")
