"""The examples' model builders: what `examples/keras_cifar10.py` trains is what vizdeconv can explore."""

import importlib.util
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from vizdeconv.methods.deconvnet import Deconvnet

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "keras_cifar10.py")


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("keras_cifar10", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_family_backbone_is_nested_scaled_inside_and_explorable_by_its_own_layer_names(example):
    model = example.build_application("MobileNetV2")
    base = model.get_layer("mobilenetv2_1.00_32")
    momenta = [layer.momentum for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert momenta and max(momenta) == 0.99  # the family's 0.999 capped
    assert model.output.shape[-1] == 10
    # Raw pixels in: [0, 255] becomes [-1, 1] inside the model, as the family expects.
    np.testing.assert_allclose(model.get_layer("rescale")(np.array([[0.0, 127.5, 255.0]])), [[-1.0, 0.0, 1.0]])
    images = tf.random.stateless_uniform([2, 32, 32, 3], [1, 2], maxval=255.0)
    deconvnet = Deconvnet(model, "guided")
    projection = deconvnet.project(images, "block_2_add", channel=3).numpy()
    assert projection.shape == (2, 32, 32, 3) and np.abs(projection).max() > 0
    with pytest.raises(SystemExit, match="keras.applications has no 'NoSuchNet'"):
        example.build_application("NoSuchNet")
