"""Every Keras CNN: each keras.applications family, every layer kind, both modes and both rectify
settings, against the Keras model itself with its rectifiers' backward rule replaced (tests/support/relu_rules.py,
written without vizdeconv); receptive fields of new op kinds against their Jacobians."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.support.builders import FAMILIES, NOT_RELU_ONLY, randomize
from tests.support.relu_rules import modified_keras_model
from vizdeconv.methods.deconvnet import Deconvnet
from vizdeconv.methods.receptive_field import ReceptiveFields

L = keras.layers
A = keras.applications


# family -> (builder, smallest input side); weights=None builds offline.
def expected_projection(twin, layer: str, images):
    """The gradient of sum(T * stop_gradient(T)) for the layer's output T in the modified Keras model:
    what projecting the whole layer means."""
    part = keras.Model(twin.inputs, twin.get_layer(layer)._inbound_nodes[-1].output_tensors[0])
    with tf.GradientTape() as tape:
        tape.watch(images)
        output = part(images)
    return tape.gradient(output, images, output_gradients=tf.stop_gradient(output)).numpy()


def assert_close(got, expected, what: str):
    scale = np.abs(expected).max()
    assert scale > 0, f"{what}: the reference is all zero; the check would be empty"
    assert np.abs(got - expected).max() <= 2e-4 * scale, (what, np.abs(got - expected).max(), scale)


class Scale(L.Layer):
    """A custom layer the engine has never seen: a learned per-channel scale (as InceptionResNetV2's)."""

    def build(self, shape):
        self.gamma = self.add_weight(shape=(shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.gamma


class StandardizedConv(L.Conv2D):
    """A Conv2D subclass that changes its computation (weight standardization): run as it is."""

    def call(self, x):
        kernel = self.kernel - keras.ops.mean(self.kernel, axis=(0, 1, 2), keepdims=True)
        return keras.ops.relu(keras.ops.conv(x, kernel, strides=self.strides, padding=self.padding) + self.bias)


class Plain(L.Conv2D):
    """A Conv2D subclass that keeps Conv2D's computation: read as a convolution."""


def every_kind_model() -> keras.Model:
    """One small functional model with every layer kind the issue lists."""
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="conv")(inputs)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6", name="depthwise")(x)
    x = L.Conv2D(12, 3, padding="same", groups=6, name="grouped")(x)  # one input channel per group (ConvNeXt)
    x = L.SeparableConv2D(8, 3, padding="same", activation="silu", name="separable")(x)
    x = L.ReLU(max_value=4.0, name="relu_capped")(x)
    x = L.ReLU(threshold=0.1, name="relu_threshold")(x)
    x = Plain(8, 3, padding="same", name="plain_subclass")(x)
    x = L.ReLU(negative_slope=0.1, name="relu_leaky")(x)
    x = L.LeakyReLU(0.2, name="leaky")(x)
    gate = L.GlobalAveragePooling2D(keepdims=True, name="squeeze")(x)
    gate = L.Conv2D(8, 1, activation="hard_sigmoid", name="excite")(gate)
    x = L.Multiply(name="gate")([x, gate])
    x = L.LayerNormalization(name="layer_norm")(x)
    x = L.PReLU(shared_axes=[1, 2], name="prelu")(x)
    x = L.Conv2DTranspose(6, 3, strides=2, padding="same", activation="gelu", name="transpose")(x)
    x = L.Cropping2D(((1, 3), (2, 2)), name="crop")(x)
    x = L.GroupNormalization(groups=2, name="group_norm")(x)
    x = L.ELU(name="elu")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.UpSampling2D(2, name="upsample")(x)
    x = StandardizedConv(6, 3, padding="same", name="standardized")(x)
    x = Scale(name="custom_scale")(x)
    x = L.Lambda(lambda t: t * 0.5 + 0.1, name="lambda")(x)
    x = L.Activation("hard_silu", name="hard_silu")(x)
    x = L.Permute((2, 1, 3), name="permute")(x)
    x = L.Reshape((28, 28, 6), name="reshape")(x)
    x = L.Conv2D(5, 3, name="top")(x)
    x = L.Activation("sigmoid", name="sigmoid")(x)
    return keras.Model(inputs, L.Dense(4, name="head")(L.Flatten(name="flat")(x)))


@pytest.fixture(scope="module")
def every_kind():
    model = randomize(every_kind_model(), seed=4)
    return model, tf.random.stateless_normal([2, 16, 16, 3], [9, 1])


def test_every_kind_forward_equals_keras(every_kind):
    model, images = every_kind
    graph = Deconvnet(model).graph
    np.testing.assert_allclose(graph(images), model(images, training=False), rtol=1e-4, atol=1e-5)
    kinds = {op.kind for op in graph.ops}
    assert {"depthwise_conv", "conv_transpose", "crop", "upsample", "multiply", "activation", "layer"} <= kinds
    assert graph.by_name["plain_subclass"].kind == "conv" and graph.by_name["standardized"].kind == "layer"
    assert graph.by_name["grouped"].kind == "depthwise_conv"
    assert graph.by_name["relu_capped"].params == {"max_value": 4.0}
    assert graph.by_name["relu_leaky"].kind == "activation"


@pytest.mark.parametrize("rectify", ["relu", "all"])
@pytest.mark.parametrize("mode", ["deconvnet", "guided"])
def test_every_kind_projects_as_the_modified_keras_gradient(every_kind, mode, rectify):
    model, images = every_kind
    deconvnet = Deconvnet(model, mode, rectify=rectify)
    twin = modified_keras_model(model, mode, rectify)
    layers = ("depthwise", "grouped", "relu_capped", "gate", "transpose", "upsample", "custom_scale", "reshape")
    for layer in (*layers, "sigmoid"):
        assert_close(deconvnet.project(images, layer).numpy(), expected_projection(twin, layer, images),
                     f"{mode}/{rectify}/{layer}")  # fmt: skip


def test_rectify_all_differs_from_the_default_where_activations_are_not_relus(every_kind):
    model, images = every_kind
    default = Deconvnet(model, "deconvnet").project(images, "separable").numpy()
    everywhere = Deconvnet(model, "deconvnet", rectify="all").project(images, "separable").numpy()
    assert not np.allclose(default, everywhere)
    with pytest.raises(ValueError, match="rectify must be one of relu, all"):
        Deconvnet(model, rectify="silu")


def test_receptive_fields_of_new_kinds_equal_their_jacobians():
    # Smooth activations only, so every pixel a unit reads moves it (no dead ReLU hides a dependence).
    inputs = keras.Input((12, 12, 2))
    x = L.DepthwiseConv2D(3, padding="same", name="depthwise")(inputs)
    x = L.Conv2D(4, 3, strides=2, padding="same", groups=2, name="grouped")(x)
    x = L.DepthwiseConv2D(3, strides=1, padding="valid", depth_multiplier=2, name="multiplier")(x)
    x = L.SeparableConv2D(3, 3, strides=1, padding="valid", activation="tanh", name="separable")(x)
    branch = L.UpSampling2D(2, name="upsample")(x)
    x = L.Conv2DTranspose(3, 3, strides=2, padding="valid", name="transpose")(x)
    x = L.Cropping2D(((1, 0), (0, 1)), name="crop")(x)
    x = L.Add(name="merge")([x, branch])
    x = L.LayerNormalization(name="norm")(x)
    x = L.ZeroPadding2D(1, name="pad")(x)
    x = L.Conv2D(2, 3, dilation_rate=2, name="dilated")(x)
    model = randomize(keras.Model(inputs, x), seed=2)
    fields = ReceptiveFields(model)
    layers = ("depthwise", "grouped", "multiplier", "separable", "upsample", "transpose", "crop", "merge", "norm")
    for layer in (*layers, "dilated"):
        part = keras.Model(model.inputs, model.get_layer(layer).output)
        height, width = part.output.shape[1:3]
        for row, col in ((0, 0), (height // 2, width // 3), (height - 1, width - 1)):
            reach = np.zeros((12, 12), bool)
            for seed in range(2):
                images = tf.random.stateless_normal([1, 12, 12, 2], [seed, 3])
                with tf.GradientTape() as tape:
                    tape.watch(images)
                    unit = tf.reduce_sum(part(images)[0, row, col])
                reach |= np.abs(tape.gradient(unit, images).numpy()[0]).sum(-1) > 0
            rows, cols = np.nonzero(reach)
            assert fields.box(layer, row, col) == (rows.min(), cols.min(), rows.max(), cols.max()), (layer, row, col)


def check_family(name: str, modes=(("guided", "relu"), ("deconvnet", "relu"))):
    build, size = FAMILIES[name]
    model = build(weights=None, input_shape=(size, size, 3), classes=10)
    images = tf.random.stateless_normal([1, size, size, 3], [1, 2])
    for mode, rectify in modes:
        deconvnet = Deconvnet(model, mode, rectify=rectify)
        names = {layer.name for layer in model.layers}  # Keras layers (not x + y operations) the twin can cut at
        graph = deconvnet.graph
        # The rectified feature maps (after an activation), as the explorer shows them by default.
        layers = [layer for layer in graph.feature_layers if layer in names
                  and graph.by_name[graph.resolve(layer)].kind in ("relu", "activation")]  # fmt: skip
        twin = modified_keras_model(model, mode, rectify)
        checked = 0
        # A middle and the deepest live feature layer: with random weights a deep layer can be dead (all its
        # units at 0 or saturated ReLU6s) for this image; its reference is then all zero and so is the
        # projection, so the deepest layer with signal is the one compared.
        for layer in [layers[len(layers) // 2], *reversed(layers[-12:])]:
            expected = expected_projection(twin, layer, images)
            if np.abs(expected).max() == 0:
                continue
            assert_close(deconvnet.project(images, layer).numpy(), expected, f"{name} {mode}/{rectify}/{layer}")
            checked += 1
            if checked == 2:
                break
        assert checked == 2, f"{name}: no live deep layer to compare"
    return model, images


@pytest.mark.slow
def test_a_family_as_the_nested_backbone_of_a_transfer_model():
    base = A.MobileNetV2(weights=None, include_top=False, input_shape=(32, 32, 3), alpha=0.35)
    inputs = keras.Input((32, 32, 3))
    features = L.GlobalAveragePooling2D()(base(inputs))
    transfer = keras.Model(inputs, L.Dense(10, name="classes")(features))
    images = tf.random.stateless_normal([1, 32, 32, 3], [1, 2])
    twin = modified_keras_model(base, "guided")
    for layer in ("block_3_expand_relu", "out_relu"):  # by their own names, inside the backbone
        inside = Deconvnet(transfer, "guided").project(images, layer).numpy()
        assert_close(inside, expected_projection(twin, layer, images), layer)
    assert Deconvnet(transfer).graph.resolve(base.name) == Deconvnet(transfer).graph.resolve("out_relu")


# A family takes 20 s to minutes on a 2-core CPU: `python -m pytest -m families` runs them all (the
# default run leaves them out, see pyproject.toml) but MobileNetV3Small, which has ReLUs, hard_silu and
# squeeze-and-excitation gates in one small network; the nested-backbone test covers MobileNetV2.
IN_SUITE = ("MobileNetV3Small",)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", [name if name in IN_SUITE else pytest.param(name, marks=pytest.mark.families) for name in sorted(FAMILIES)]
)
def test_every_application_family_projects_as_its_modified_keras_gradient(name):
    modes = (("guided", "relu"), ("deconvnet", "relu"))
    if name in NOT_RELU_ONLY:
        modes += (("guided", "all"),)
    check_family(name, modes)


def test_models_by_name_build_offline_take_a_weights_file_and_their_family_preprocessing(tmp_path):
    from vizdeconv.runs.subject import open_subject

    opened = open_subject(model_path="applications:MobileNetV2:32", need_data=False)
    assert opened.graph.input_shape == (32, 32, 3) and opened.pixels.scaling == "family"
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    # MobileNetV2's own preprocess_input maps 0..255 to -1..1.
    np.testing.assert_allclose(opened.pixels.inputs(pixels), pixels / 127.5 - 1.0, rtol=1e-6, atol=1e-6)
    trained = A.MobileNetV2(weights=None, input_shape=(32, 32, 3))
    randomize(trained, seed=3)
    trained.save_weights(str(tmp_path / "mine.weights.h5"))
    mine = open_subject(model_path="applications:MobileNetV2:32", weights=str(tmp_path / "mine.weights.h5"),
                        need_data=False)  # fmt: skip
    for a, b in zip(mine.model.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)
    # A family built for any input size gets ImageNet's 224, or the size asked for.
    assert open_subject(model_path="applications:MobileNetV3Small", need_data=False).graph.input_shape == (224, 224, 3)
    assert open_subject(model_path="applications:MobileNetV3Small:64", need_data=False).graph.input_shape == (64, 64, 3)
    for spec, message in (("applications:NoSuchNet", "unknown keras.applications model 'NoSuchNet'"),
                          ("applications:MobileNetV2:big", "must be a number of pixels")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            open_subject(model_path=spec, need_data=False)
    with pytest.raises(ValueError, match="cannot load"):
        open_subject(model_path="applications:VGG16:32", weights=str(tmp_path / "mine.weights.h5"), need_data=False)


@pytest.mark.slow
def test_the_explorer_takes_a_family_by_name(cifar_session, tmp_path):
    from tests.support.commands import in_process

    layers = ["--layer", "block_6_expand_relu", "--layer", "out_relu"]
    code, _, err = in_process(
        "explore", "--model", "applications:MobileNetV2:32", "--data_dir", cifar_session, *layers,
        "--top_k", "2", "--limit", "16", "--rectify", "all", "--out", str(tmp_path / "out"))  # fmt: skip
    assert code == 0, err
    import json

    report = json.load(open(tmp_path / "out" / "index.json"))
    assert report["report"]["rectify"] == "all" and sorted(report["layers"]) == ["block_6_expand_relu", "out_relu"]


def test_folding_batch_normalization_into_convolutions_changes_only_rounding():
    inputs = keras.Input((12, 12, 3))
    x = L.Conv2D(6, 3, padding="same", name="conv")(inputs)  # with a bias
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(6.0, name="relu6")(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, use_bias=False, name="dw")(x)
    x = L.BatchNormalization(name="dw_bn")(x)
    x = L.ReLU(name="dw_relu")(x)
    x = L.Conv2D(12, 3, padding="same", groups=12, name="grouped")(x)
    x = L.BatchNormalization(name="grouped_bn")(x)
    shared = L.Conv2D(4, 1, use_bias=False, name="shared")(x)  # read twice: not folded
    x = L.Add(name="add")([L.BatchNormalization(name="shared_bn")(shared), shared])
    model = randomize(keras.Model(inputs, L.Activation("relu", name="out")(x)), seed=5)
    graph = Deconvnet(model).graph
    images = tf.random.stateless_normal([2, 12, 12, 3], [4, 4])
    wanted = ("relu6", "dw_relu", "grouped_bn", "add", "out", "grouped")
    plain = graph.forward(images, record_switches=False, until=wanted)
    folded = graph.forward(images, record_switches=False, until=wanted, fold_affine=True)
    assert not {"conv", "dw"} & set(folded)  # ran inside their batch normalization
    assert {"shared", "grouped"} <= set(folded)  # read twice, or asked for: kept
    for name in (*wanted, "shared_bn"):
        np.testing.assert_allclose(folded[name], plain[name], rtol=1e-5, atol=1e-5 * np.abs(plain[name]).max())
    np.testing.assert_allclose(plain["out"], model(images), rtol=1e-5, atol=1e-5)


def test_the_default_layers_are_the_outputs_of_relus_and_other_activations():
    from vizdeconv.viz.summaries import default_layers

    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, name="conv_a")(inputs)
    x = L.Activation("silu", name="silu")(x)
    x = L.Conv2D(4, 3, activation="gelu", name="conv_b")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    smooth = Deconvnet(keras.Model(inputs, x)).graph
    assert default_layers(smooth) == ["silu", "conv_b", "relu"]  # conv_b's own activation is its output
    linear = Deconvnet(keras.Model(inputs, L.Conv2D(2, 3, name="only")(inputs))).graph
    assert default_layers(linear) == ["only"]  # no activation: every feature layer


def test_every_layer_means_each_blocks_output_maps_not_the_steps_inside_blocks():
    """`--layer all` (Graph.block_outputs): what a block hands on, after its activation, residual sum,
    pooling, gating or concatenation; not a convolution read only by its normalization, that by its
    activation, a branch by the sum it ends in, or the rescaled image. `--layer every`: all of them."""
    from vizdeconv.explore.explorer import _layers

    inputs = keras.Input((16, 16, 3))
    x = L.Rescaling(1 / 255.0, name="rescale")(inputs)
    x = L.Conv2D(8, 3, padding="same", name="stem_conv")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    pool = L.MaxPooling2D(name="pool")(x)
    x = L.Conv2D(8, 3, padding="same", name="a_conv")(pool)
    x = L.BatchNormalization(name="a_bn")(x)
    act = L.Activation("swish", name="a_act")(x)
    squeeze = L.GlobalAveragePooling2D(keepdims=True, name="se_squeeze")(act)
    gate = L.Conv2D(8, 1, activation="sigmoid", name="se_gate")(squeeze)
    x = L.Multiply(name="se_excite")([act, gate])
    x = L.Conv2D(8, 1, name="a_project")(x)
    x = L.BatchNormalization(name="a_project_bn")(x)
    x = L.Dropout(0.1, name="a_drop")(x)
    x = L.Add(name="a_add")([x, pool])
    x = L.Conv2D(8, 3, activation="relu", name="b_conv")(x)
    x = L.Concatenate(name="cat")([L.Conv2D(4, 1, name="c1")(x), L.Conv2D(4, 1, name="c2")(x)])
    x = L.Conv2D(8, 1, name="proj")(x)
    x = L.BatchNormalization(name="proj_bn")(x)
    outputs = L.Dense(10, name="logits")(L.GlobalAveragePooling2D(name="gap")(x))
    graph = Deconvnet(keras.Model(inputs, outputs)).graph

    blocks = ["stem_relu", "pool", "a_act", "se_squeeze", "se_gate", "se_excite", "a_add", "b_conv", "c1", "c2",
              "cat", "proj_bn"]  # fmt: skip
    inside = ["stem_conv", "stem_bn", "a_conv", "a_bn", "a_project", "a_project_bn", "proj"]
    assert graph.block_outputs == blocks
    assert sorted(graph.feature_layers) == sorted(["rescale", *blocks, *inside])
    assert _layers(graph, ["all"]) == blocks and _layers(graph, ["every"]) == graph.feature_layers


def test_every_layer_of_resnet50_and_mobilenetv2_are_their_block_outputs():
    """Against the Keras layers' own names: ResNet50's rectifiers and first pooling (the ~50 block outputs
    a person counts), MobileNetV2's rectifiers, residual sums and the projections that no sum follows."""
    resnet = A.ResNet50(weights=None, input_shape=(32, 32, 3))
    names = [layer.name for layer in resnet.layers]
    expected = [n for n in names if n.endswith(("_relu", "_out")) or n == "pool1_pool"]
    assert len(expected) == 50 and Deconvnet(resnet).graph.block_outputs == expected

    mobile = A.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35)
    names = [layer.name for layer in mobile.layers]
    summed = {name.replace("_add", "_project_BN") for name in names if name.endswith("_add")}  # a branch's end
    ends = [n for n in names if n.endswith(("relu", "_add")) or (n.endswith("project_BN") and n not in summed)]
    assert Deconvnet(mobile).graph.block_outputs == ends
