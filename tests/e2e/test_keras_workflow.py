"""Keras models end to end: export and reload without vizdeconv, the explorer on a .keras file, the
model.fit callback (event files read back), and the errors a user can cause."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import vizdeconv
from tests.support.builders import small_cnn
from tests.support.commands import in_process
from vizdeconv.analyze import explorer_sanity
from vizdeconv.data import cifar10
from vizdeconv.explore import ExploreOptions, explore
from vizdeconv.nn import preprocess
from vizdeconv.runs import rundir
from vizdeconv.runs.subject import open_subject

L = keras.layers


@pytest.fixture
def smoke_run(trained_smoke_run):
    return trained_smoke_run


def command(module, *args):
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )


@pytest.mark.slow
def test_load_model_and_export_reload_without_vizdeconv(smoke_run, cifar_session, tmp_path):
    reference = open_subject(run=smoke_run, log=lambda *_: None, need_data=False).model
    images = tf.random.normal([5, 24, 24, 3], seed=0)
    np.testing.assert_allclose(vizdeconv.load_model(smoke_run)(images), reference(images), rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "model.keras")
    result = command("vizdeconv.export", "--run", smoke_run, "--out", path)
    assert result.returncode == 0 and "wrote" in result.stdout, result.stderr[-2000:]
    np.save(tmp_path / "x.npy", images.numpy())
    script = (
        "import sys; sys.modules['vizdeconv'] = None\n"  # any import of vizdeconv now fails
        "import numpy as np, keras\n"
        f"m = keras.models.load_model({path!r})\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, np.asarray(m(np.load({str(tmp_path / 'x.npy')!r}))))\n"
    )
    reload = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert reload.returncode == 0, reload.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), reference(images), rtol=1e-5, atol=1e-6)
    # The workflow the README shows: export, then explore the file by the run's own layer names.
    code, out, err = in_process(
        "explore", "--model", path, "--data_dir", cifar_session, "--layer", "conv2", "--top_k", "2", "--limit", "20",
        "--preprocess", "standardize", "--out", str(tmp_path / "explored"))  # fmt: skip
    assert code == 0, err
    index = json.load(open(tmp_path / "explored" / "index.json"))["layers"]
    assert sorted(index) == ["conv2"] and len(index["conv2"]) == 64
    # The file's projections are the run's: the same network under its layer names.
    reloaded = keras.models.load_model(path)
    pictures = preprocess.preprocess_eval(cifar10.load_binary(cifar_session, "test")[0][:3])
    np.testing.assert_allclose(
        vizdeconv.Deconvnet(reloaded).project(pictures, "conv2", channel=1),
        vizdeconv.Deconvnet(reference).project(pictures, "conv2", channel=1), rtol=1e-4, atol=1e-5)  # fmt: skip


@pytest.mark.slow
def test_explorer_on_a_keras_file_with_cifar_and_an_image_folder(cifar_session, tmp_path):
    model = small_cnn()
    path = str(tmp_path / "cnn.keras")
    model.save(path)
    options = ExploreOptions(
        model=path, layers=["relu1", "conv2"], top_k=3, data_dir=cifar_session, batch_size=16, compare=True
    )
    report = explore(options, log=lambda *_: None, after_scan=explorer_sanity("test", log=lambda *_: None))
    assert report["out"] == str(tmp_path / "cnn_explore" / "test")
    index = json.load(open(os.path.join(report["out"], "index.json")))["layers"]
    images, labels = cifar10.load_binary(cifar_session, "test")
    entry = index["conv2"]["5"]
    activations = keras.Model(model.inputs, model.get_layer("conv2").output)(
        images[entry["image_ids"]].astype(np.float32)
    ).numpy()  # raw pixels: the model rescales
    for i, (row, col) in enumerate(entry["locations"]):
        assert activations[i, :, :, 5].max() == pytest.approx(entry["values"][i], rel=1e-4, abs=1e-5)
        assert activations[i, row, col, 5] == pytest.approx(entry["values"][i], rel=1e-4, abs=1e-5)
        top, left, bottom, right = entry["boxes"][i]  # conv2 (3x3/2 VALID) over pool1 over conv1 SAME
        assert (top, left) == (max(4 * row - 1, 0), max(4 * col - 1, 0))
        assert (bottom, right) == (4 * row + 6, 4 * col + 6)
    assert entry["labels"] == labels[entry["image_ids"]].tolist()
    for name in ("relu1/channel_005.png", "conv2_overview.png", "compare_conv2.png"):
        picture = tf.io.decode_png(tf.io.read_file(os.path.join(report["out"], name))).numpy()
        assert picture.std() > 5, name
    # A folder of images in class subfolders, read as keras.utils.image_dataset_from_directory does.
    folder = tmp_path / "pictures"
    for label, name in enumerate(("cats", "dogs")):
        (folder / name).mkdir(parents=True)
        for i in range(4):
            tf.io.write_file(str(folder / name / f"{i}.png"), tf.io.encode_png(images[label * 4 + i]))
    result = command(
        "vizdeconv.explore",
        "--model",
        path,
        "--data_dir",
        str(folder),
        "--layer",
        "conv2",
        "--top_k",
        "2",
        "--out",
        str(tmp_path / "folder_out"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    index = json.load(open(tmp_path / "folder_out" / "index.json"))["layers"]["conv2"]
    assert {label for entry in index.values() for label in entry["labels"]} <= {0, 1}


def test_explorer_command_line_errors_for_keras_files(cifar_session, tmp_path):
    path = str(tmp_path / "cnn.keras")
    small_cnn().save(path)
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip archive")
    cases = [
        (["--model", str(tmp_path / "missing.keras"), "--data_dir", cifar_session], "does not exist"),
        (["--model", str(corrupt), "--data_dir", cifar_session], "cannot load Keras model"),
        (["--model", path, "--data_dir", cifar_session, "--layer", "conv9"], "unknown layer 'conv9'"),
        (["--model", path, "--data_dir", cifar_session, "--layer", "gap"], "has no feature maps"),
        (["--model", path], "--model needs --data_dir"),
    ]
    for args, message in cases:
        code, _, err = in_process("explore", *args, program="vizdeconv.explore")
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0], (args, err[-1000:])
        assert lines[0].startswith("vizdeconv.explore: error:")


@pytest.mark.slow
def test_run_folder_from_a_newer_vizdeconv_is_refused_in_one_line(smoke_run, tmp_path):
    import shutil

    copy = str(tmp_path / "future")
    shutil.copytree(smoke_run, copy)
    assert json.load(open(os.path.join(copy, rundir.VERSION_FILE)))["run_format"] == rundir.RUN_FORMAT
    rundir.write_json(os.path.join(copy, rundir.VERSION_FILE), {"vizdeconv": "9.0", "run_format": 99})
    code, _, err = in_process("export", "--run", copy, "--out", str(tmp_path / "m.keras"))
    assert code == 2 and "written by vizdeconv 9.0" in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "m.keras")


@pytest.mark.slow
def test_callback_writes_strips_beside_keras_tensorboard_during_fit(tmp_path):
    model = small_cnn()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    log_dir = str(tmp_path / "logs")
    callback = vizdeconv.keras.DeconvnetCallback(
        log_dir, x[:3], every_n_epochs=1, snapshot_dir=str(tmp_path / "snapshots")
    )
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[keras.callbacks.TensorBoard(log_dir), callback])
    steps, scalars = {}, set()
    for file in tf.io.gfile.glob(os.path.join(log_dir, "train", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(file):
            for value in event.summary.value:
                if value.tag in ("reconstructions", "top_features/relu1", "top_features/conv2"):
                    steps.setdefault(value.tag, []).append(event.step)
                    if value.tag == "reconstructions":
                        strip = tf.io.decode_png(value.tensor.string_val[2]).numpy()
                        # original | relu1 | conv2 panels of 32 px x 4, with 2 px gaps
                        assert strip.shape == (128, 3 * 128 + 2 * 2, 3) and strip.std() > 5
                else:
                    scalars.add(value.tag)
    assert steps == {tag: [0, 1, 2] for tag in ("reconstructions", "top_features/relu1", "top_features/conv2")}
    assert "epoch_loss" in scalars  # keras.callbacks.TensorBoard wrote into the same folder
    # The snapshots feed the evolution analysis of a Keras model.
    from vizdeconv.analyze import analyses
    from vizdeconv.analyze.options import EvolutionOptions
    from vizdeconv.nn.preprocess import Preprocess
    from vizdeconv.runs.subject import Subject

    subject = Subject(
        model, vizdeconv.describe(model), Preprocess((32, 32), "raw"), str(tmp_path), None, "deconvnet", 1, None
    )
    subject.load = lambda split="test": (x.astype(np.uint8), y)
    report = analyses.run_evolution(
        subject, EvolutionOptions(snapshots=str(tmp_path / "snapshots")), "conv2", log=lambda *_: None
    )
    assert report["steps"] == [0, 1, 2] and report["tiles"].shape[:2] == (8, 3)
    tiles = report["tiles"]  # [maps, steps, field, field, 3]: each the strongest unit's projection
    live = [m for m in range(8) if tiles[m, -1].std() > 0]
    assert len(live) >= 4, "most maps' projections are pictures, not flat grey"
    # The weights changed over the epochs, so the projections did too (a loader that reopened one
    # snapshot for every step would show three equal columns).
    assert sum(not np.allclose(tiles[m, 0], tiles[m, -1]) for m in live) >= len(live) // 2


def test_notebook_helpers_open_a_keras_file(cifar_session, tmp_path):
    from vizdeconv.viz.inspection import KerasFile

    model = small_cnn()
    path = str(tmp_path / "cnn.keras")
    model.save(path)
    opened = KerasFile(path, data_dir=cifar_session)
    images, labels = opened.test_images(4)
    assert images.shape == (4, 32, 32, 3) and opened.layers == ["relu1", "conv2"]
    np.testing.assert_allclose(
        opened.predict(images), tf.nn.softmax(model(images.astype(np.float32))), rtol=1e-4, atol=1e-6
    )
    shown = opened.reconstructions(images)
    assert sorted(shown) == ["deconvnet", "guided"]  # BatchNormalization: no bias_subtract
    assert shown["guided"]["conv2"].shape == (4, 32, 32, 3)
    # Feature maps: each tile is that map of relu1 (read from Keras itself), min-max scaled, enlarged 4x.
    maps = opened.feature_maps(images[0], "relu1", columns=3)
    assert maps.shape == (2 * 128 + 2, 3 * 128 + 4)
    relu1 = keras.Model(model.inputs, model.get_layer("relu1").output)(images[:1].astype(np.float32))[0].numpy()
    for channel in range(6):
        row, column = divmod(channel, 3)
        tile = maps[row * 130 : row * 130 + 128, column * 130 : column * 130 + 128][::4, ::4]
        expected = relu1[..., channel]
        span = expected.max() - expected.min()
        np.testing.assert_allclose(tile, (expected - expected.min()) / span if span else 0 * expected, atol=1e-5)
    # Filters: each tile is a conv1 kernel, zero at mid-grey, scaled by its largest magnitude.
    filters = opened.first_layer_filters(columns=6)
    assert filters.shape == (12, 6 * 12 + 5 * 2, 3)
    kernel = model.get_layer("conv1").get_weights()[0]  # [3, 3, 3, 6]
    for channel in range(6):
        tile = filters[:, channel * 14 : channel * 14 + 12][::4, ::4]
        k = kernel[..., channel]
        np.testing.assert_allclose(tile, 0.5 + 0.5 * k / np.abs(k).max(), atol=1e-5)


@pytest.mark.slow
def test_a_batch_normalized_run_trains_exports_and_projects(cifar_session, tmp_path):
    """The trainer's compiled, distributed step moves the moving statistics; the run, its export and the
    explorer all see the same inference network (the moving statistics' affine map)."""
    from tests.support.builders import small_config
    from vizdeconv.training.loop import train_and_evaluate

    config = small_config(cifar_session)
    config.model.layers = [
        dict(layer, batch_norm=True) if i < 2 else layer for i, layer in enumerate(config.model.layers)
    ]
    run = str(tmp_path / "run")
    train_and_evaluate(config, run, log=lambda *_: None)
    opened = open_subject(run=run, log=lambda *_: None, need_data=False)
    model, step = opened.model, opened.step
    assert step == config.steps and sorted(model.norms) == ["conv1", "conv2"]
    moved = model.norms["conv1"].moving_mean.numpy()
    assert np.abs(moved).max() > 1e-3  # from 0: six training steps updated it, and the checkpoint kept it
    path = str(tmp_path / "model.keras")
    result = command("vizdeconv.export", "--run", run, "--out", path)
    assert result.returncode == 0, result.stderr[-2000:]
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.get_layer("conv1_bn").moving_mean, moved, rtol=1e-6)
    pictures = preprocess.preprocess_eval(cifar10.load_binary(cifar_session, "test")[0][:3])
    np.testing.assert_allclose(reloaded(pictures), model(pictures), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        vizdeconv.Deconvnet(reloaded).project(pictures, "conv2", channel=1),
        vizdeconv.Deconvnet(model).project(pictures, "conv2", channel=1), rtol=1e-4, atol=1e-5)  # fmt: skip
    code, _, err = in_process("explore", "--run", run, "--layer", "conv2", "--top_k", "2", "--limit", "20",
                              "--out", str(tmp_path / "explored"))  # fmt: skip
    assert code == 0, err
    assert len(json.load(open(tmp_path / "explored" / "index.json"))["layers"]["conv2"]) == 64


@pytest.mark.slow
def test_the_speedrun_network_exports_explores_and_takes_every_analysis(cifar_session, tmp_path):
    """configs/speedrun.py's network (narrower, a few steps): a frozen whitening layer, fixed-scale batch
    normalization after 2x2 VALID pools, GELU, a 3x3 pool. Its export reloads without vizdeconv's layers and
    projects as the run does; the run's rule at the GELUs (`reconstruction.rectify`) reaches the notebook
    inspector's pictures, the tab and the explorer, of the run and of its exported file; the explorer (with
    optimized images and the sanity check) and the analyses run on it."""
    from tests.e2e.test_train import AIRBENCH
    from tests.support.builders import small_config
    from vizdeconv.training.loop import train_and_evaluate
    from vizdeconv.viz import inspection
    from vizdeconv.viz import pictures as pictures_lib

    run = str(tmp_path / "run")
    recipe = {**AIRBENCH, "reconstruction.rectify": "all"}
    train_and_evaluate(small_config(cifar_session, **recipe), run, log=lambda *_: None)
    opened = open_subject(run=run, log=lambda *_: None, need_data=False)
    model = opened.model
    assert opened.rectify == "all"
    path = str(tmp_path / "model.keras")
    result = command("vizdeconv.export", "--run", run, "--out", path)
    assert result.returncode == 0, result.stderr[-2000:]
    reloaded = keras.models.load_model(path)
    assert not reloaded.get_layer("whiten").trainable
    # the export takes pixels 0..255 and normalizes them by the data set's statistics itself
    images = cifar10.load_binary(cifar_session, "test")[0][:3]
    inputs = opened.pixels.inputs(images)
    np.testing.assert_allclose(reloaded(images.astype(np.float32)), model(inputs), rtol=1e-4, atol=1e-4)
    std = np.asarray(opened.config.data.std, np.float32)
    for layer in ("whiten", "conv2_1", "pool3_2"):
        exported = vizdeconv.Deconvnet(reloaded, rectify="all").project(images.astype(np.float32), layer, channel=1)
        own = vizdeconv.Deconvnet(model, rectify="all").project(inputs, layer, channel=1)
        # one more linear step down, through its normalization of pixels 0..255: x -> (x / 255 - mean) / std
        np.testing.assert_allclose(exported, own / (255 * std), rtol=1e-3, atol=1e-6, err_msg=layer)
    # the inspector projects with the run's rule: the ReLU rule at every GELU, not GELU's gradient
    shown = inspection.Run(run).project_channel(images, "conv3_2", 1)
    for rectify, same in (("all", True), ("relu", False)):
        expected = vizdeconv.Deconvnet(model, rectify=rectify).project(inputs, "conv3_2", channel=1)
        assert np.allclose(shown, pictures_lib.to_display(expected.numpy()), atol=1e-5) == same, rectify
    explored = str(tmp_path / "explored")
    code, _, err = in_process("explore", "--run", run, "--layer", "conv3_2", "--top_k", "2", "--limit", "20",
                              "--optimize", "--steps", "4", "--sanity", "--out", explored)  # fmt: skip
    assert code == 0, err
    index = json.load(open(os.path.join(explored, "index.json")))
    assert len(index["layers"]["conv3_2"]) == 16
    assert index["report"]["rectify"] == "all"  # the run's rule, not the flag's default
    from vizdeconv.viz.plugin import projector  # and the tab's projections of the run

    loaded = projector._Loaded(None, opened, 0)
    assert loaded.deconvnet("guided").rectify == "all"
    # the exported file carries the rule too: opened by the toolbox, it projects as the run does
    from_file = open_subject(model_path=path, need_data=False)
    assert (from_file.mode, from_file.rectify) == (opened.mode, "all")
    assert projector._Loaded(None, from_file, None).deconvnet("guided").rectify == "all"
    code, _, err = in_process("explore", "--model", path, "--data_dir", cifar_session, "--layer", "conv3_2",
                              "--top_k", "2", "--limit", "20", "--out", str(tmp_path / "explored_file"))  # fmt: skip
    assert code == 0, err
    assert json.load(open(tmp_path / "explored_file" / "index.json"))["report"]["rectify"] == "all"
    for analysis in (["occlusion", "--images", "0", "--patch", "8", "--stride", "8"],
                     ["invariance", "--images", "first:1"], ["sanity", "--layer", "conv3_2", "--images", "first:1"],
                     ["attribute", "--limit", "2", "--method", "gradcam", "--method", "guided_gradcam"]):  # fmt: skip
        code, _, err = in_process("analyze", analysis[0], "--run", run, *analysis[1:])
        assert code == 0, f"{analysis[0]}: {err}"
    # Guided Grad-CAM guides at the GELUs as the run's projections do, in the analysis and in the tab
    assert json.load(open(os.path.join(run, "analyze", "attribute", "attribute.json")))["rectify"] == "all"
    assert loaded.attribution("guided_gradcam")._guided.rectify == "all"
