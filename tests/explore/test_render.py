"""The explorer's renderer on a small model: receptive-field crops against slicing by hand (inside the image, at
its edge, shrunk), the optimized images' comparison with the top-1, and a rendered layer's files read back."""

import json
import os

import keras
import numpy as np
import pytest

from vizdeconv.data.sources import ArraySource
from vizdeconv.explore import render, scan
from vizdeconv.methods.deconvnet import Deconvnet
from vizdeconv.nn.preprocess import Preprocess


@pytest.fixture(scope="module")
def renderer():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    images = np.random.default_rng(0).integers(0, 256, size=(12, 10, 10, 3)).astype(np.uint8)
    source = ArraySource(images, np.arange(12) % 2, "random")
    return render.Renderer(Deconvnet(model), source, Preprocess((10, 10), "unit")), images


def test_a_crop_is_the_units_receptive_field_placed_where_it_lies_in_the_field(renderer):
    renderer, _ = renderer
    pictures = np.random.default_rng(1).random((2, 10, 10, 3)).astype(np.float32)
    assert renderer.canvas_side("conv", 10) == 3
    inside = renderer.crop(pictures, "conv", [4, 4], [6, 6], fill=0.5, enlarge=False)
    np.testing.assert_array_equal(inside, pictures[:, 3:6, 5:8])
    corner = renderer.crop(pictures, "conv", [0, 0], [0, 0], fill=0.5, enlarge=False)
    np.testing.assert_array_equal(corner[:, 1:, 1:], pictures[:, :2, :2])  # the field's part inside the image
    assert (corner[:, 0, :] == 0.5).all() and (corner[:, :, 0] == 0.5).all()  # the padding outside it
    shrunk = renderer.crop(pictures[:1], "conv", [4], [6], fill=0.0, enlarge=False, shrink=2)
    padded = np.zeros((1, 4, 4, 3), np.float32)
    padded[:, :3, :3] = pictures[:1, 3:6, 5:8]
    np.testing.assert_allclose(shrunk, padded.reshape(1, 2, 2, 2, 2, 3).mean((2, 4)), rtol=1e-6)
    assert renderer.crop(pictures, "conv", [4], [6], fill=0.0).shape[1] == 3 * (render.TILE_PIXELS // 3)


def test_beats_top1_compares_each_channels_optimized_activation_with_its_strongest():
    class Optimized:
        channels, activations, seconds = np.array([0, 2]), np.array([3.0, 1.0]), 1.234

    top = {"values": np.array([[2.0, 1.0], [9.0, 8.0], [4.0, 3.0]])}
    assert render.beats_top1(Optimized, top) == {"channels": 2, "exceeds": 1, "median_ratio": 0.875, "seconds": 1.23}


def test_a_rendered_layer_writes_its_grids_and_the_top_k_the_scan_found(renderer, tmp_path):
    renderer, images = renderer
    top = scan(renderer.graph, images, ["conv"], k=3, batch_size=5, preprocess=renderer.preprocess.inputs)["conv"]
    entry = renderer.render_layer("conv", top, str(tmp_path), "test")
    assert sorted(os.listdir(tmp_path / "conv")) == [*(f"channel_{c:03d}.png" for c in range(4)), "top.npz"]
    assert os.path.isfile(tmp_path / "conv_overview.png")
    assert [entry[str(c)]["image_ids"] for c in range(4)] == top["image_ids"].tolist()
    assert [entry[str(c)]["values"] for c in range(4)] == top["values"].tolist()
    saved = np.load(tmp_path / "conv" / "top.npz")
    assert saved["projections"].shape[:2] == (4, 3) and saved["patches"].shape == saved["projections"].shape
    json.dumps(entry)  # what goes into index.json
