"""The Keras callback's attribution strips: written at each epoch, the maps of the model's current weights."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from matplotlib import colormaps

import vizdeconv


def _cnn():
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


def test_attribution_strips_follow_training(tmp_path):
    keras.utils.set_random_seed(0)
    model = _cnn()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    log_dir = str(tmp_path / "logs")
    callback = vizdeconv.keras.DeconvnetCallback(log_dir, x[:3], display_scale=1, attribution=["gradcam", "saliency"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[callback])
    strips = {}
    for file in tf.io.gfile.glob(os.path.join(log_dir, "train", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(file):
            for value in event.summary.value:
                if value.tag.startswith("attribution/"):
                    strips.setdefault(value.tag, {})[event.step] = tf.io.decode_png(value.tensor.string_val[2]).numpy()
    assert {tag: sorted(steps) for tag, steps in strips.items()} == {
        "attribution/gradcam": [0, 1, 2],
        "attribution/saliency": [0, 1, 2],
    }
    # the last strip: the probes in a row, below each 0.5 grey image + 0.5 jet(map) of the trained model
    maps = vizdeconv.Attribution(model, "gradcam").explain(x[:3]).maps
    originals = callback.summary.originals
    below = 0.5 * originals.mean(-1, keepdims=True) + 0.5 * colormaps["jet"](maps)[..., :3]
    strip = strips["attribution/gradcam"][2].astype(int)
    assert strip.shape == (2 * 12 + 2, 3 * 12 + 2 * 2, 3)
    for i in range(3):
        left = i * 14
        assert np.abs(strip[:12, left : left + 12] - np.round(originals[i] * 255)).max() <= 1
        assert np.abs(strip[14:, left : left + 12] - np.round(below[i] * 255)).max() <= 1
    assert not np.array_equal(strips["attribution/gradcam"][0], strips["attribution/gradcam"][2])


def test_unknown_attribution_method_is_refused_at_once(tmp_path):
    with pytest.raises(ValueError, match="attribution method must be one of"):
        vizdeconv.keras.DeconvnetCallback(str(tmp_path), np.zeros((1, 12, 12, 3), np.float32), attribution=["cam"])


def test_a_gelu_model_s_callback_projects_with_its_rule_and_records_it_in_each_snapshot(tmp_path):
    # The callback's `mode` and `rectify` reach its pictures (projections and Guided Grad-CAM) and every
    # snapshot, so the explorer and the tab open a snapshot with the rule its pictures were made with.
    from vizdeconv.methods.deconvnet import Deconvnet
    from vizdeconv.runs.subject import open_subject

    keras.utils.set_random_seed(1)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="gelu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="gelu", name="conv2")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling2D()(x)))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 12, 12, 3)).astype(np.float32)
    snapshots = tmp_path / "snapshots"
    callback = vizdeconv.keras.DeconvnetCallback(
        str(tmp_path / "logs"), x[:2], mode="guided", rectify="all", snapshot_dir=str(snapshots),
        attribution=["guided_gradcam"], display_scale=1,
    )  # fmt: skip
    model.fit(x, rng.integers(0, 3, 8), epochs=1, batch_size=8, verbose=0, callbacks=[callback])
    assert sorted(os.listdir(snapshots)) == ["epoch_0000.keras", "epoch_0001.keras"]  # no temporary file left
    keras.models.load_model(snapshots / "epoch_0001.keras")  # still a plain Keras file
    subject = open_subject(model_path=str(snapshots), need_data=False, log=lambda *_: None)
    assert (subject.mode, subject.rectify) == ("guided", "all")
    # the pictures: the rule at the GELUs, which differs from GELU's own gradient passed back
    ruled = Deconvnet(model, "guided", rectify="all").project(x[:2], "conv2").numpy()
    assert not np.allclose(ruled, Deconvnet(model, "guided", rectify="relu").project(x[:2], "conv2").numpy())
    np.testing.assert_allclose(callback.summary.projector.project(x[:2], "conv2").numpy(), ruled, atol=1e-6)
    guided = vizdeconv.Attribution(model, "guided_gradcam", rectify="all").explain(x[:2]).maps
    plain = vizdeconv.Attribution(model, "guided_gradcam").explain(x[:2]).maps
    assert not np.allclose(guided, plain, atol=1e-3)
    below = 0.5 * callback.summary.originals.mean(-1, keepdims=True) + 0.5 * colormaps["jet"](guided)[..., :3]
    strip = callback.attribution_strip("guided_gradcam")
    np.testing.assert_allclose(strip[14:, :12], below[0], atol=1e-5)


def test_a_callback_refuses_an_unknown_rule_at_once(tmp_path):
    with pytest.raises(ValueError, match="rectify must be one of"):
        vizdeconv.keras.DeconvnetCallback(str(tmp_path), np.zeros((1, 12, 12, 3), np.float32), rectify="gelu")
    with pytest.raises(ValueError, match="projection mode must be one of"):
        vizdeconv.keras.DeconvnetCallback(str(tmp_path), np.zeros((1, 12, 12, 3), np.float32), mode="saliency")
