"""`open_subject`, the one way to open a network: a `.keras` file, a folder of snapshots (the newest), an
`applications:` model with a weights file, a run folder at its newest or a kept checkpoint, and the errors a
user can cause, each in one line."""

import os

import keras
import numpy as np
import pytest

from tests.support.builders import small_config
from vizdeconv.runs.subject import SETTINGS_ENTRY, open_subject, read_labels, record_settings
from vizdeconv.training.loop import train_and_evaluate


def tiny(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3, activation="relu", name="conv")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))


def kernel(model):
    return model.get_layer("conv").kernel.numpy()


def test_a_keras_file_and_the_newest_of_a_snapshot_folder(tmp_path):
    first, second = tiny(0), tiny(1)
    first.save(tmp_path / "model.keras")
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    first.save(snapshots / "epoch_0001.keras")
    second.save(snapshots / "epoch_0002.keras")
    opened = open_subject(model_path=str(tmp_path / "model.keras"), need_data=False)
    np.testing.assert_array_equal(kernel(opened.model), kernel(first))
    assert opened.root == str(tmp_path / "model_explore") and opened.pixels.scaling == "standardize"
    newest = open_subject(model_path=str(snapshots), need_data=False)
    np.testing.assert_array_equal(kernel(newest.model), kernel(second))
    assert (opened.mode, opened.rectify, newest.mode, newest.rectify) == ("deconvnet", "relu") * 2


def test_an_exported_files_recorded_rule_is_its_default_and_keras_still_opens_it(tmp_path):
    """`vizdeconv export` records the run's projection defaults in an archive entry: the toolbox opens the
    file with them, plain Keras opens it as before, and an entry from elsewhere (damaged, unknown values)
    is ignored rather than trusted."""
    import zipfile

    path = str(tmp_path / "model.keras")
    tiny(0).save(path)
    record_settings(path, "guided", "all")
    opened = open_subject(model_path=path, need_data=False)
    assert (opened.mode, opened.rectify) == ("guided", "all")
    np.testing.assert_array_equal(kernel(keras.models.load_model(path)), kernel(tiny(0)))
    for entry in (b"{not json", b'{"mode": "sideways", "rectify": "everywhere"}', b"[1, 2]"):
        damaged = str(tmp_path / "damaged.keras")
        tiny(0).save(damaged)
        with zipfile.ZipFile(damaged, "a") as archive:
            archive.writestr(SETTINGS_ENTRY, entry)
        opened = open_subject(model_path=damaged, need_data=False)
        assert (opened.mode, opened.rectify) == ("deconvnet", "relu"), entry


def test_an_applications_model_is_built_offline_and_takes_the_users_weights(tmp_path):
    keras.utils.set_random_seed(3)
    built = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3))
    path, other = str(tmp_path / "w.weights.h5"), str(tmp_path / "narrow.weights.h5")
    built.save_weights(path)
    keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35).save_weights(other)
    opened = open_subject(model_path="applications:MobileNetV2:32", need_data=False, weights=path)
    assert opened.graph.input_shape == (32, 32, 3) and opened.pixels.scaling == "family"
    name = "Conv1"
    np.testing.assert_array_equal(opened.model.get_layer(name).kernel.numpy(), built.get_layer(name).kernel.numpy())
    with pytest.raises(ValueError, match="cannot load"):  # alpha 0.35's weights do not fit alpha 1.0
        open_subject(model_path="applications:MobileNetV2:32", need_data=False, weights=other)


def test_a_run_at_its_newest_or_at_a_kept_checkpoint(cifar_session, tmp_path):
    run = str(tmp_path / "run")
    train_and_evaluate(small_config(cifar_session, keep_steps=(2,)), run, log=lambda *_: None)
    newest = open_subject(run=run, log=lambda *_: None)
    kept = os.path.join(run, "checkpoints", "kept", "ckpt-2")
    early = open_subject(run=run, log=lambda *_: None, checkpoint=kept)
    assert (newest.step, early.step) == (6, 2)
    assert not np.allclose(newest.model.kernels[0].numpy(), early.model.kernels[0].numpy())


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        (dict(), ValueError, "either a run folder"),
        (dict(run="r", model_path="m.keras"), ValueError, "either a run folder"),
        (dict(model_path="m.keras"), ValueError, "needs --data_dir"),
        (dict(model_path="missing.keras", need_data=False), FileNotFoundError, "does not exist"),
        (dict(model_path="x.keras", need_data=False, weights="w.h5"), ValueError, "--weights goes with"),
        (dict(model_path="applications:NoSuchNet", need_data=False), ValueError, "unknown keras.applications"),
        (dict(run="no/such/run"), FileNotFoundError, "does not exist"),
    ],
)
def test_what_a_user_gets_wrong_is_one_line(arguments, error, message):
    with pytest.raises(error, match=message):
        open_subject(**arguments)


def test_a_damaged_keras_file_and_labels_files(tmp_path):
    (tmp_path / "bad.keras").write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="cannot load Keras model"):
        open_subject(model_path=str(tmp_path / "bad.keras"), need_data=False)
    (tmp_path / "labels.txt").write_text("cat\n\ndog\n")
    assert read_labels(str(tmp_path / "labels.txt")) == ["cat", "dog"]
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="names no class"):
        read_labels(str(tmp_path / "empty.txt"))
