"""`Deconvnet.project` is the one projection call: every form (several layers, a layer, a channel, its strongest
unit, a unit, units of shared images) against the same projection reached another way, and the four old entry
points as aliases of it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from vizdeconv.methods.deconvnet import Deconvnet


def small_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="conv2")(x)
    outputs = keras.layers.Dense(4, name="logits")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def setup():
    images = np.random.default_rng(0).normal(size=(3, 12, 12, 3)).astype(np.float32)
    return Deconvnet(small_model()), images


def test_every_form_of_project_agrees_with_the_same_projection_reached_another_way(setup):
    deconvnet, images = setup
    several = deconvnet.project(images, ["conv1", "conv2"])
    for layer in ("conv1", "conv2"):
        np.testing.assert_allclose(several[layer].numpy(), deconvnet.project(images, layer).numpy(), atol=1e-6)
    maps = deconvnet.forward(images)["conv2"].numpy()
    # The strongest unit against the unit at the flat position NumPy finds.
    strongest = deconvnet.project(images, "conv2", 2, "max").numpy()
    flat = maps[..., 2].reshape(3, -1).argmax(axis=1)
    np.testing.assert_allclose(strongest, deconvnet.project(images, "conv2", [2, 2, 2], flat).numpy(), atol=1e-6)
    assert np.abs(strongest).sum() > 0
    # units of shared images: the same as projecting the gathered images one unit each
    ids, channels, positions = np.array([0, 2, 0, 1]), np.array([1, 2, 3, 4]), np.array([0, 5, 7, 3])
    shared = deconvnet.project(images, "conv2", channels, positions, image_ids=ids).numpy()
    alone = deconvnet.project(images[ids], "conv2", channels, positions).numpy()
    np.testing.assert_allclose(shared, alone, atol=1e-6)
    impulse = deconvnet.project(images[ids], "conv2", channels, positions, impulse=True).numpy()
    assert not np.allclose(impulse, alone)  # the flag reaches the engine


def test_the_old_entry_points_are_aliases_of_project(setup):
    deconvnet, images = setup
    ids, channels, positions = np.array([0, 2]), np.array([1, 3]), np.array([4, 9])
    pairs = [
        (deconvnet.layers(images, ("conv1",))["conv1"], deconvnet.project(images, ["conv1"])["conv1"]),
        (deconvnet.channels(images, "conv1", [0, 1, 2], True), deconvnet.project(images, "conv1", [0, 1, 2], "max")),
        (deconvnet.units(images[:2], "conv2", channels, positions, True),
         deconvnet.project(images[:2], "conv2", channels, positions, impulse=True)),
        (deconvnet.units_of(images, ids, "conv2", channels, positions),
         deconvnet.project(images, "conv2", channels, positions, image_ids=ids)),
    ]  # fmt: skip
    for old, new in pairs:
        np.testing.assert_array_equal(tf.convert_to_tensor(old).numpy(), tf.convert_to_tensor(new).numpy())


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(layer=["conv1"], channel=0), "projected whole"),
        (dict(layer="conv1", unit="max"), "needs a channel"),
        (dict(layer="conv1", channel=0, unit="min"), "'max' or flat positions"),
        (dict(layer="conv1", channel=0, image_ids=[0]), "image_ids needs"),
        (dict(layer="conv1", channel=6), "out of range"),
    ],
)
def test_project_refuses_what_it_cannot_do_in_one_line(setup, arguments, message):
    deconvnet, images = setup
    with pytest.raises(ValueError, match=message):
        deconvnet.project(images, **arguments)


def test_projecting_many_layers_traces_each_function_once_without_a_retracing_warning(caplog):
    # The trainer projects every layer of a run at each picture summary: each (method, layer) is its own
    # function and traces once; TensorFlow must not see them as one function retracing.
    deconvnet = Deconvnet(small_model())
    images = np.random.default_rng(1).normal(size=(2, 12, 12, 3)).astype(np.float32)
    with caplog.at_level("WARNING", logger="tensorflow"):
        for layer in ("conv1", "pool1", "conv2"):
            for _ in range(2):
                deconvnet.project(images, layer)
                deconvnet.project(images, layer, 1)
                deconvnet.project(images, layer, [0, 1], "max")
    assert len(deconvnet._functions) == 9
    assert [f.experimental_get_tracing_count() for f in deconvnet._functions.values()] == [1] * 9
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
