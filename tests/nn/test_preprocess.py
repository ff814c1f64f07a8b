"""The one preprocessing: each scaling against NumPy, the automatic choice per model, the trainer's evaluation
preprocessing equal to a Preprocess, and the refusals."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from vizdeconv.methods.deconvnet import as_graph
from vizdeconv.nn import preprocess


def pixels(shape=(2, 32, 30, 3), seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape).astype(np.uint8)


def standardized(x):
    x = x.astype(np.float64)
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    deviation = np.maximum(x.std(axis=axes, keepdims=True), 1 / np.sqrt(x[0].size))
    return (x - mean) / deviation


@pytest.mark.parametrize(
    "scaling, numpy",
    [("raw", lambda x: x), ("unit", lambda x: x / 255.0), ("symmetric", lambda x: x / 127.5 - 1.0),
     ("standardize", standardized)],
)  # fmt: skip
def test_each_scaling_of_the_central_window(scaling, numpy):
    images = pixels()
    window = images[:, 4:28, 3:27]  # (32 - 24) / 2 rows and (30 - 24) / 2 columns off each side
    inputs = preprocess.Preprocess((24, 24), scaling).inputs(images)
    np.testing.assert_allclose(inputs.numpy(), numpy(window.astype(np.float32)), rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(preprocess.Preprocess((24, 24), scaling).pictures(images), window / np.float32(255))


def test_the_trainers_evaluation_preprocessing_is_the_standardize_preprocess():
    images = pixels((3, 32, 32, 3), seed=1)
    expected = preprocess.Preprocess((24, 24), "standardize").inputs(images).numpy()
    np.testing.assert_allclose(preprocess.preprocess_eval(images).numpy(), expected, atol=1e-6)


def test_auto_picks_raw_for_a_model_that_rescales_and_the_family_function_for_applications():
    inputs = keras.Input((8, 8, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    rescaled = keras.Model(inputs, keras.layers.Conv2D(2, 3)(keras.layers.Rescaling(1 / 255.0)(inputs)))
    assert preprocess.for_model(as_graph(plain)).scaling == "standardize"
    assert preprocess.for_model(as_graph(rescaled)).scaling == "raw"
    family = preprocess.for_model(as_graph(plain), "auto", lambda x: x * 2.0)
    assert family.scaling == "family"
    np.testing.assert_allclose(family.inputs(pixels((1, 8, 8, 3))).numpy(), pixels((1, 8, 8, 3)) * 2.0)


def test_from_unit_is_differentiable_and_matches_inputs():
    unit = tf.Variable(pixels((1, 24, 24, 3), seed=3).astype(np.float32) / 255.0)
    scaler = preprocess.Preprocess((24, 24), "symmetric")
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(scaler.from_unit(unit))
    np.testing.assert_allclose(tape.gradient(total, unit).numpy(), np.full((1, 24, 24, 3), 2.0), rtol=1e-6)


def test_refusals_are_one_line_value_errors():
    with pytest.raises(ValueError, match="smaller than the model's input"):
        preprocess.Preprocess((40, 40), "raw").inputs(pixels())
    with pytest.raises(ValueError, match="--preprocess must be one of"):
        preprocess.Preprocess((8, 8), "auto")
    with pytest.raises(ValueError, match="needs a keras.applications model"):
        preprocess.Preprocess((8, 8), "family")
