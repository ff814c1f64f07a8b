"""The paper's analyses against hand-built models whose answers are known."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.support.builders import ROOT, randomize, small_config
from tests.support.commands import in_process
from vizdeconv.analyze import analyses
from vizdeconv.analyze.options import EvolutionOptions, OcclusionOptions
from vizdeconv.methods import invariance as invariance_lib
from vizdeconv.methods import occlusion as occlusion_lib
from vizdeconv.methods import sanity as sanity_lib
from vizdeconv.methods.deconvnet import Deconvnet
from vizdeconv.nn.preprocess import Preprocess
from vizdeconv.runs.subject import open_subject
from vizdeconv.training.loop import train_and_evaluate
from vizdeconv.viz.pictures import to_display

L = keras.layers
REGION = (slice(2, 5), slice(3, 6))  # rows 2..4, cols 3..5 of an 8x8 image


def region_model() -> keras.Model:
    """Class 0's score is 20 x the mean of REGION, class 1's the constant 19; a 1x1 conv feature map."""
    inputs = keras.Input((8, 8, 1))
    features = L.Conv2D(1, 1, activation="relu", use_bias=False, name="feat")(inputs)
    logits = L.Dense(2, name="logits")(L.Flatten(name="flat")(features))
    model = keras.Model(inputs, logits)
    model.get_layer("feat").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    kernel = np.zeros((64, 2), np.float32)
    mask = np.zeros((8, 8), bool)
    mask[REGION] = True
    kernel[mask.ravel(), 0] = 20.0 / mask.sum()
    model.get_layer("logits").set_weights([kernel, np.array([0.0, 19.0], np.float32)])
    return model


def test_occluding_the_region_and_only_it_lowers_the_true_class():
    model = region_model()
    picture = np.full((8, 8, 1), 255, np.float32)
    pixels = Preprocess((8, 8), "unit")
    result = occlusion_lib.Occlusion(model, pixels.inputs, grey=[0.0], patch=2, stride=1, layer="feat").explain(
        picture, 0
    )
    assert result["activation"].shape == (7, 7) and result["channel"] == 0
    clean = result["unoccluded"]["probability"]
    for r, top in enumerate(result["rows"]):
        for c, left in enumerate(result["cols"]):
            overlaps = top + 2 > 2 and top < 5 and left + 2 > 3 and left < 6
            if overlaps:
                assert result["probability"][r, c] < clean - 1e-3, (top, left)
            else:
                assert result["probability"][r, c] == pytest.approx(clean, abs=1e-6), (top, left)
            copy = picture.copy()
            copy[top : top + 2, left : left + 2] = 0.0
            feature = keras.Model(model.inputs, model.get_layer("feat").output)(copy[None] / 255.0)
            assert result["activation"][r, c] == pytest.approx(float(np.sum(feature)), rel=1e-5)
    assert result["predicted"][0, 0] == 0 and result["predicted"][2, 3] == 1  # a covered region flips it


def test_batched_occlusion_equals_one_position_at_a_time():
    model = keras.Sequential(
        [
            keras.Input((10, 10, 3)),
            L.Conv2D(4, 3, activation="relu", name="c1"),
            L.MaxPooling2D(2, name="p1"),
            L.Conv2D(5, 3, activation="relu", name="c2"),
            L.GlobalAveragePooling2D(),
            L.Dense(3),
        ]
    )
    randomize(model, seed=4)
    picture = np.random.default_rng(0).integers(0, 256, (10, 10, 3)).astype(np.float32)
    pixels = Preprocess((10, 10), "standardize")
    kwargs = dict(grey=[120.0, 110.0, 100.0], patch=3, stride=2, layer="c2")
    batched = occlusion_lib.Occlusion(model, pixels.inputs, batch_size=512, **kwargs).explain(picture, 1)
    single = occlusion_lib.occlusion(model, picture, 1, pixels.inputs, batch_size=1, **kwargs)  # the 0.2 alias
    for key in ("activation", "probability", "predicted"):
        np.testing.assert_allclose(batched[key], single[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_occlusion_refuses_a_patch_larger_than_the_image_and_a_layer_without_maps():
    model, picture = region_model(), np.zeros((8, 8, 1), np.float32)
    with pytest.raises(ValueError, match="larger than the 8x8 image"):
        occlusion_lib.occlusion(model, picture, 0, Preprocess((8, 8), "unit").inputs, [0.0], patch=9)
    with pytest.raises(ValueError, match="'logits' has no feature maps"):
        occlusion_lib.occlusion(model, picture, 0, Preprocess((8, 8), "unit").inputs, [0.0], layer="logits")


def test_invariance_identity_is_zero_and_a_translation_equivariant_model_gives_the_shift_distance():
    model = region_model()
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 8, 8, 1)).astype(np.float32)
    pixels = Preprocess((8, 8), "unit")
    transforms = {"translation": [0.0, 1.0, -2.0], "scale": [1.0], "rotation": [0.0]}
    result = invariance_lib.Invariance(model, pixels.inputs, ["feat"], transforms).explain(images, np.array([0, 1, 0]))
    result = result.transforms
    clean = tf.nn.softmax(model(images / 255.0)).numpy()[[0, 1, 2], [0, 1, 0]]
    for kind in ("scale", "rotation"):
        np.testing.assert_allclose(result[kind]["distance"]["feat"][:, 0], 0.0, atol=1e-6)
        np.testing.assert_allclose(result[kind]["probability"][:, 0], clean, rtol=1e-5)
    moved = result["translation"]["distance"]["feat"]
    np.testing.assert_allclose(moved[:, 0], 0.0, atol=1e-6)
    for j, shift in ((1, 1), (2, -2)):  # the feature map is the image: distance of the shifted image
        padded = np.pad(images, ((0, 0), (2, 2), (0, 0), (0, 0)), mode="edge")
        shifted = padded[:, 2 - shift : 10 - shift]
        expected = np.linalg.norm((shifted - images).reshape(3, -1), axis=1) / np.linalg.norm(
            images.reshape(3, -1), axis=1
        )
        np.testing.assert_allclose(moved[:, j], expected, rtol=1e-5)


def test_cascading_sanity_stages_and_layers_above_the_projection_change_nothing():
    model = keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            L.Conv2D(4, 3, activation="relu", name="c1"),
            L.MaxPooling2D(2, name="p1"),
            L.Conv2D(5, 3, activation="relu", name="c2"),
            L.GlobalAveragePooling2D(name="gap"),
            L.Dense(3, name="head"),
        ]
    )
    randomize(model, seed=3)  # fixed weights, whatever ran before
    inputs = tf.random.stateless_normal([4, 12, 12, 3], [2, 0])
    cascade = sanity_lib.CascadingRandomization(model, display_of=to_display)
    result = cascade.explain(inputs, "c1", [0, 1, 2, 3], [5, 17, 40, 60])
    assert result["stages"] == ["trained", "head", "c2", "c1"]  # weight layers + 1, top down
    assert result["projections"].shape == (4, 4, 12, 12, 3)
    for stage in range(3):  # head and c2 sit above c1: its projections cannot change
        np.testing.assert_allclose(result["spearman"][stage], 1.0, rtol=1e-6)
        np.testing.assert_allclose(result["ssim"][stage], 1.0, rtol=1e-5)
    assert np.all(result["spearman"][3] < 0.999)  # c1's own filters redrawn


@pytest.fixture(scope="module")
def evolving_run(cifar_session, tmp_path_factory):
    run = str(tmp_path_factory.mktemp("evolution") / "run")
    train_and_evaluate(
        small_config(cifar_session, steps=6, keep_steps=(1, 3), checkpoint_every=6, keep_checkpoints=1),
        run,
        log=lambda *_: None,
    )
    return run


@pytest.mark.slow
def test_evolution_tiles_follow_the_checkpoints_in_training_order(evolving_run):
    subject = open_subject(evolving_run, log=lambda *_: None)
    report = analyses.run_evolution(subject, EvolutionOptions(limit=20), "conv2", log=lambda *_: None)
    assert report["steps"] == [1, 3, 6] and report["tiles"].shape[:2] == (64, 3)
    # Column 1 is what the step-3 checkpoint itself gives for map 7's strongest unit.
    from vizdeconv.explore.explorer import scan
    from vizdeconv.nn.convnet import build_model
    from vizdeconv.viz.pictures import to_display

    model = build_model(subject.config)
    tf.train.Checkpoint(model=model).restore(
        os.path.join(evolving_run, "checkpoints", "kept", "ckpt-3")
    ).expect_partial()
    images, _ = subject.load("test")
    top = scan(model, images[:20], ["conv2"], 1, progress=False)["conv2"]
    unit = (
        Deconvnet(model)
        .units(subject.pixels.inputs(images[top["image_ids"][7:8, 0]]), "conv2", [7], top["positions"][7:8, 0])
        .numpy()
    )
    from vizdeconv.explore.render import TILE_PIXELS
    from vizdeconv.methods.receptive_field import ReceptiveFields

    fields = ReceptiveFields(model)  # the tile is the unit's receptive field, enlarged
    row, col = divmod(int(top["positions"][7, 0]), 12)
    top_row, left, bottom, right = fields.box("conv2", row, col)
    nominal_top, nominal_left = fields.nominal_box("conv2", row, col)[:2]
    factor = max(1, TILE_PIXELS // fields.field("conv2").size)
    tile = report["tiles"][7, 1][::factor, ::factor]
    dy, dx = top_row - nominal_top, left - nominal_left
    np.testing.assert_allclose(
        tile[dy : dy + bottom - top_row + 1, dx : dx + right - left + 1],
        to_display(unit)[0][top_row : bottom + 1, left : right + 1],
        atol=1e-5,
    )
    assert json.load(open(os.path.join(report["out"], "evolution_conv2.json")))["steps"] == [1, 3, 6]


@pytest.mark.slow
def test_occlusion_and_evolution_project_with_the_runs_mode_unless_told(evolving_run, tmp_path):
    """A run recorded with the guided rule gets guided projections from both analyses by default: the same
    as asking for `--mode guided`, not the deconvnet's."""
    quiet = lambda *_: None  # noqa: E731
    subject = open_subject(evolving_run, log=quiet)
    subject.mode = "guided"  # as a run of `reconstruction.mode="guided"` opens
    occlusions = {}
    for name, mode in (("run", None), ("guided", "guided"), ("deconvnet", "deconvnet")):
        options = OcclusionOptions(images="0", patch=12, stride=12, mode=mode, out=str(tmp_path / name))
        report = analyses.run_occlusion(subject, options, log=quiet)
        occlusions[name] = np.load(os.path.join(report["out"], "image_00000.npz"))["projection"]
    np.testing.assert_array_equal(occlusions["run"], occlusions["guided"])
    assert not np.allclose(occlusions["run"], occlusions["deconvnet"])
    tiles = {name: analyses.run_evolution(subject, EvolutionOptions(limit=8, mode=mode, out=str(tmp_path / name)),
                                          "conv2", log=quiet)["tiles"]
             for name, mode in (("run", None), ("guided", "guided"), ("deconvnet", "deconvnet"))}  # fmt: skip
    np.testing.assert_array_equal(tiles["run"], tiles["guided"])
    assert not np.allclose(tiles["run"], tiles["deconvnet"])


@pytest.mark.slow
def test_analysis_command_line_errors_are_one_line(cifar_session, tmp_path):
    run = str(tmp_path / "one")
    train_and_evaluate(
        small_config(cifar_session, steps=2, keep_steps=(2,), checkpoint_every=2), run, log=lambda *_: None
    )
    for args, message in (
        (["evolution", "--run", run], "needs at least two checkpoints"),
        (["occlusion", "--run", run, "--images", "0,64"], "image id 64 is outside"),
        (["occlusion", "--run", run, "--patch", "30", "--images", "0"], "larger than"),
        (["sanity", "--run", run, "--layer", "conv9"], "unknown layer 'conv9'"),
        (["occlusion", "--run", run, "--layer", "conv1", "--layer", "conv2"], "pass --layer once"),
    ):
        code, _, err = in_process("analyze", *args)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0], (args, err[-800:])
        assert lines[0].startswith("vizdeconv analyze: error: ")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    ok = subprocess.run(
        [sys.executable, "-m", "vizdeconv.analyze", "occlusion", "--run", run, "--images", "0", "--stride", "4"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert ok.returncode == 0, ok.stderr[-1000:]
    figure = tf.io.decode_png(tf.io.read_file(os.path.join(run, "analyze", "occlusion", "image_00000.png")))
    assert figure.shape[1] > 4 * figure.shape[0] and float(tf.math.reduce_std(tf.cast(figure, tf.float32))) > 5
