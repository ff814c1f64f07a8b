"""Any Keras CNN through the projection engine, against autodiff with a replaced ReLU backward rule.

The independent truth: TensorFlow's own gradient of sum(signal * layer) with respect to the images, in
the same network whose ReLUs have the deconvnet (or guided) backward rule; Keras' own forward pass for
the network's outputs.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.support.builders import randomize
from tests.support.relu_rules import RULES, guided_relu
from vizdeconv.methods.deconvnet import Deconvnet
from vizdeconv.nn import keras_adapter

L = keras.layers


def sequential_model():
    norm = L.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.5, 2.0, 0.5], name="norm")
    return keras.Sequential(
        [
            keras.Input((15, 15, 3)),
            L.Rescaling(0.5, offset=0.1, name="rescale"),
            norm,
            L.Conv2D(5, 3, strides=2, padding="same", activation="relu", name="conv_a"),
            L.ZeroPadding2D(((1, 0), (0, 2)), name="pad"),
            L.Conv2D(4, 2, dilation_rate=2, padding="valid", name="conv_b"),
            L.BatchNormalization(name="bn"),
            L.ReLU(name="relu_b"),
            L.MaxPooling2D(3, 2, padding="same", name="maxpool"),
            L.Dropout(0.5, name="drop"),
            L.Conv2D(6, 1, name="conv_c"),
            L.Activation("relu", name="act_c"),
            L.AveragePooling2D(2, padding="same", name="avgpool"),
            L.Flatten(name="flat"),
            L.Dense(7, activation="relu", name="hidden"),
            L.Dense(3, name="logits"),
        ],
        name="seq",
    )


def residual_model():
    x = keras.Input((12, 12, 3), name="image")
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="stem")(x)
    b = L.Conv2D(4, 3, padding="same", use_bias=False, name="branch")(a)
    b = L.BatchNormalization(name="branch_bn")(b)
    s = L.ReLU(name="sum_relu")(L.Add(name="sum")([a, b]))
    c = L.Concatenate(name="cat")([s, L.Conv2D(2, 1, activation="relu", name="side")(a)])
    c = L.MaxPooling2D(2, name="pool")(c)
    g = L.GlobalMaxPooling2D(name="gmax")(L.Conv2D(5, 3, activation="relu", name="top")(c))
    return keras.Model(x, L.Dense(4, activation="softmax", name="probs")(g), name="residual")


def nested_model():
    backbone = keras.Sequential(
        [
            keras.Input((10, 10, 3)),
            L.Conv2D(4, 3, activation="relu", name="c1"),
            L.MaxPooling2D(2, name="p1"),
            L.Conv2D(5, 3, padding="same", name="c2"),
            L.ReLU(name="r2"),
        ],
        name="backbone",
    )
    x = keras.Input((10, 10, 3))
    y = L.GlobalAveragePooling2D(name="gap")(backbone(x))
    return keras.Model(x, L.Dense(3, name="head")(y), name="nested")


MODELS = {"sequential": sequential_model, "residual": residual_model, "nested": nested_model}


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request):
    model = randomize(MODELS[request.param]())
    shape = model.inputs[0].shape[1:]
    images = tf.random.stateless_normal([3, *shape], [3, 0])
    return request.param, model, images


def test_graph_forward_equals_keras(case):
    _, model, images = case
    graph = keras_adapter.describe(model)
    np.testing.assert_allclose(graph(images), model(images, training=False), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", sorted(RULES))
def test_every_layer_projects_as_the_modified_relu_gradient(case, mode):
    name, model, images = case
    deconvnet = Deconvnet(model, mode)
    graph = deconvnet.graph
    for layer in graph.layer_names:
        tensor = graph.resolve(layer)
        signal = tf.random.stateless_normal([3, *graph.shapes[tensor]], [11, 0])
        with tf.GradientTape() as tape:
            tape.watch(images)
            modified = graph.forward(images, record_switches=False, relu=RULES[mode])
            objective = tf.reduce_sum(signal * modified[tensor])
        expected = tape.gradient(objective, images)
        from vizdeconv.methods import reconstruct

        tensors = graph.forward(images)
        got = reconstruct.project_signals(graph, tensors, {tensor: signal}, mode)[tensor]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=f"{name}/{layer}")
        assert np.abs(expected.numpy()).max() > 0, f"{name}/{layer}"


@pytest.mark.parametrize("build", [sequential_model, residual_model, nested_model])
def test_saved_and_reloaded_models_project_by_their_layer_names(build, tmp_path):
    # keras.models.load_model rebuilds a Sequential by calling its layers again: extra inbound nodes
    # that must not rename them.
    model = randomize(build())
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    images = tf.random.stateless_normal([2, *model.input_shape[1:]], [3, 1])
    original, reopened = Deconvnet(model, "guided"), Deconvnet(loaded, "guided")
    assert reopened.layer_names == original.layer_names
    for layer in original.graph.feature_layers:
        np.testing.assert_allclose(
            reopened.project(images, layer), original.project(images, layer), rtol=1e-5, atol=1e-6, err_msg=layer
        )


def test_a_shared_layer_gets_one_name_per_call():
    conv = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="shared")
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="gap")(conv(conv(inputs))))
    names = keras_adapter.describe(model).layer_names
    assert names[:2] == ["shared", "shared@1"] and names[-1] == "gap"


def test_nested_layers_are_reachable_by_their_own_names():
    model = randomize(nested_model())
    deconvnet = Deconvnet(model)
    assert {"c1", "p1", "r2", "backbone", "gap", "head"} <= set(deconvnet.layer_names + ["backbone"])
    images = tf.random.stateless_normal([2, 10, 10, 3], [1, 0])
    np.testing.assert_allclose(deconvnet.project(images, "backbone"), deconvnet.project(images, "r2"))


def test_dense_head_class_unit_projection_is_that_logits_gradient():
    model = randomize(sequential_model())
    images = tf.random.stateless_normal([2, 15, 15, 3], [4, 0])
    deconvnet = Deconvnet(model, "guided")
    got = deconvnet.project(images, "logits", channel=1)
    graph = deconvnet.graph
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = graph.forward(images, record_switches=False, relu=guided_relu)["logits"]
        objective = tf.reduce_sum(tf.stop_gradient(logits[:, 1]) * logits[:, 1])
    np.testing.assert_allclose(got, tape.gradient(objective, images), rtol=1e-4, atol=1e-5)


def test_project_api_channel_and_strongest_unit():
    model = randomize(residual_model())
    images = tf.random.stateless_normal([2, 12, 12, 3], [5, 0])
    deconvnet = Deconvnet(model)
    whole = deconvnet.project(images, "stem")
    one = deconvnet.project(images, "stem", channel=2)
    per_image = deconvnet.project(images, "stem", channel=[2, 3])
    unit = deconvnet.project(images, "stem", channel=2, unit="max")
    assert whole.shape == one.shape == unit.shape == (2, 12, 12, 3)
    np.testing.assert_allclose(per_image[0], one[0], rtol=1e-6)
    assert np.count_nonzero(np.abs(unit.numpy()[0]).sum(-1)) <= 9  # one 3x3 receptive field
    assert not np.allclose(whole, one)


@pytest.mark.parametrize("mode", ["deconvnet", "guided"])
def test_units_of_shared_images_equal_each_unit_with_its_own_copy(mode):
    # A residual sum, a concatenation and a max pool below "top": every recorded switch and mask is per image.
    model = randomize(residual_model())
    images = tf.random.stateless_normal([3, 12, 12, 3], [7, 0])
    which = np.array([2, 0, 2, 1, 0, 2])
    channels, positions = np.array([0, 1, 4, 2, 0, 3]), np.array([0, 3, 8, 4, 1, 2])
    deconvnet = Deconvnet(model, mode)
    alone = deconvnet.units(tf.gather(images, which), "top", channels, positions).numpy()
    shared = deconvnet.units_of(images, which, "top", channels, positions).numpy()
    assert len({float(np.abs(a).sum()) for a in alone} - {0.0}) >= 3  # several live units, of different images
    np.testing.assert_array_equal(shared, alone)


def test_bad_layer_channel_and_mode_are_clear_errors():
    model = randomize(residual_model())
    images = tf.zeros([1, 12, 12, 3])
    deconvnet = Deconvnet(model)
    with pytest.raises(ValueError, match="unknown layer 'conv9'; the model has"):
        deconvnet.project(images, "conv9")
    with pytest.raises(ValueError, match="channel 4 is out of range: layer 'stem' has 4 channels"):
        deconvnet.project(images, "stem", channel=4)
    with pytest.raises(ValueError, match="bias_subtract.*BatchNormalization 'branch_bn'"):
        Deconvnet(model, "bias_subtract").project(images, "sum_relu")
    with pytest.raises(ValueError, match="mode must be one of"):
        Deconvnet(model, "zeiler")


class Rounding(keras.layers.Layer):
    """A layer with no gradient: projections cannot pass it."""

    def call(self, x):
        return keras.ops.round(x)


@pytest.mark.parametrize(
    "build, culprit",
    [
        (lambda: keras.Sequential([keras.Input((8, 8, 8, 1)), L.Conv3D(2, 3, name="vol")]), r"shape \(8, 8, 8, 1\)"),
        (lambda: keras.Sequential([keras.Input((6, 4)), L.LSTM(3, name="lstm")]), r"shape \(6, 4\)"),
        (
            lambda: keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(2, 3, data_format="channels_first", name="cf")]),
            "'cf'.*channels_first",
        ),
    ],
)
def test_models_that_are_not_image_cnns_are_refused_in_one_line(build, culprit):
    with pytest.raises(ValueError, match=culprit):
        Deconvnet(build())


def test_a_layer_without_gradient_is_named_when_projecting_through_it():
    model = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(2, 3, activation="relu", name="c1"),
                              Rounding(name="round"), L.Conv2D(2, 3, activation="relu", name="c2")])  # fmt: skip
    deconvnet = Deconvnet(model)
    images = tf.random.stateless_normal([1, 8, 8, 3], [1, 1])
    assert deconvnet.project(images, "c1").shape == (1, 8, 8, 3)  # below it: fine
    with pytest.raises(ValueError, match="cannot project through Rounding 'round': it has no gradient"):
        deconvnet.project(images, "c2")
