"""Normalization by the data set (airbench's, `data.normalize = "dataset"`): each channel (x / 255 - mean) /
deviation with the training split's statistics, in the training and evaluation batches, the whitening layer,
the evaluation, a run's consumers and its exported Keras file, all against the formula written in NumPy."""

import json
import os

import keras
import numpy as np
import pytest

from tests.conftest import real_cifar_or_skip
from tests.support.builders import small_config
from vizdeconv import config as config_lib
from vizdeconv.config import speedrun_layers
from vizdeconv.data import cifar10, pipeline
from vizdeconv.nn import preprocess
from vizdeconv.nn.initializers import whitening_kernel

MEAN, STD = (0.4913, 0.4821, 0.4465), (0.2452, 0.2428, 0.2606)


def _normalized(pixels):
    """The formula, in float64: [..., 3] pixels 0..255 -> (x / 255 - mean) / std per channel."""
    return (np.asarray(pixels, np.float64) / 255.0 - np.array(MEAN)) / np.array(STD)


def _center(images, size):
    offset = (images.shape[1] - size) // 2
    return images[:, offset : offset + size, offset : offset + size]


def test_the_default_statistics_are_cifar10s_training_split():
    root = real_cifar_or_skip()
    images, _ = cifar10.load_binary(os.path.join(root, cifar10.TARBALL), "train")
    pixels = images.astype(np.float64) / 255.0
    config = config_lib.default_config()
    assert (tuple(config.data.mean), tuple(config.data.std)) == (MEAN, STD)
    np.testing.assert_allclose(MEAN, pixels.mean(axis=(0, 1, 2)), atol=1e-4)
    np.testing.assert_allclose(STD, pixels.std(axis=(0, 1, 2)), atol=1e-4)


def test_training_and_evaluation_batches_are_normalized_per_channel():
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(16, dtype=np.int32)
    batches = pipeline.train_dataset(images, labels, 8, seed=3, start_step=0, end_step=4, size=32,
                                     flip="alternating", statistics=(MEAN, STD))  # fmt: skip
    for pictures, examples in batches:
        for picture, example in zip(pictures.numpy(), examples.numpy()):
            expected = _normalized(images[example])
            assert np.allclose(picture, expected, atol=1e-5) or np.allclose(picture, expected[:, ::-1], atol=1e-5)
    inputs, ids = next(iter(pipeline.eval_dataset(images, labels, 16, size=24, statistics=(MEAN, STD))))
    np.testing.assert_allclose(inputs.numpy(), _normalized(_center(images, 24)), atol=1e-5)
    # the per-image default is unchanged
    inputs, _ = next(iter(pipeline.eval_dataset(images, labels, 16, size=24)))
    np.testing.assert_allclose(inputs.numpy(), preprocess.standardize(_center(images, 24)).numpy())


def test_a_bad_normalization_is_refused():
    config = config_lib.default_config()
    config.data.normalize = "channel"
    with pytest.raises(ValueError, match="data.normalize must be one of image, dataset"):
        config_lib.validate(config)
    config = config_lib.default_config()
    config.data.std = (0.2, 0.0, 0.2)
    with pytest.raises(ValueError, match="data.std must be positive"):
        config_lib.validate(config)


def test_a_run_normalized_by_its_data_set_trains_evaluates_opens_and_exports(cifar_session, tmp_path):
    from vizdeconv.methods.deconvnet import as_graph
    from vizdeconv.runs.subject import load_model, open_subject
    from vizdeconv.training.loop import train_and_evaluate

    config = small_config(cifar_session, **{"data.normalize": "dataset", "data.image_size": 32, "steps": 2})
    config.model.layers = speedrun_layers(widths=(8, 12, 12))
    config.reconstruction.rectify = "all"
    run = str(tmp_path / "run")
    train_and_evaluate(config, run, log=lambda *_: None)
    train, _ = cifar10.load_split(config.data, "train")
    test, test_labels = cifar10.load_split(config.data, "test")
    subject = open_subject(run=run, need_data=False)
    # the frozen whitening layer was set from the first 5,000 training images as normalized
    expected_kernel = whitening_kernel(_normalized(train[:5000]).astype(np.float32), 2).numpy()
    np.testing.assert_allclose(subject.model.kernels[0].numpy(), expected_kernel, rtol=1e-4, atol=1e-4)
    # consumers give the network the same inputs, and the evaluation used them
    np.testing.assert_allclose(subject.pixels.inputs(test[:4]).numpy(), _normalized(test[:4]), atol=1e-5)
    logits = subject.model(_normalized(test).astype(np.float32)).numpy()
    metrics = json.load(open(os.path.join(run, "metrics.json")))
    assert metrics["test_accuracy"] == pytest.approx(np.mean(logits.argmax(1) == test_labels), abs=1e-6)
    # the trainer's evaluation batches and probe images are normalized the same way
    import tensorflow as tf

    from vizdeconv.training.loop import Trainer

    trainer = Trainer(config, run, tf.distribute.get_strategy(), chief=False, requested="float32")
    trainer.load_data()
    trainer.build()
    inputs, _ = next(iter(trainer.eval_data))
    np.testing.assert_allclose(inputs.numpy(), _normalized(test[: len(inputs)]), atol=1e-5)
    np.testing.assert_allclose(trainer.summary_inputs.numpy(), _normalized(test[trainer.probe_index]), atol=1e-5)
    assert trainer.summary.projector.rectify == "all"  # its pictures take the run's rule at the GELUs
    # the exported file takes pixels 0..255 as they are and gives the same logits; `auto` feeds it raw pixels
    path = str(tmp_path / "model.keras")
    load_model(run).save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded(test[:4].astype(np.float32)).numpy(), logits[:4], rtol=1e-4, atol=1e-4)
    assert preprocess.for_model(as_graph(reloaded)).scaling == "raw"
