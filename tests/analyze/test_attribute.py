"""`vizdeconv analyze attribute` end to end: a run folder, a `.keras` model with image files (a broken one
among them), the outputs read back, and the one-line errors."""

import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

from tests.support.commands import in_process
from vizdeconv.methods import metrics
from vizdeconv.methods.attribution import Attribution
from vizdeconv.runs.subject import open_subject


def _tags(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for root, _, files in os.walk(folder):
        if any(name.startswith("events.out") for name in files):
            tags |= set(EventAccumulator(root, size_guidance={"tensors": 0}).Reload().Tags()["tensors"])
    return tags


@pytest.mark.slow
def test_attribute_a_run(trained_smoke_run, tmp_path):
    out = str(tmp_path / "attribute")
    code, stdout, stderr = in_process("analyze", "attribute", "--run", trained_smoke_run, "--images", "0,3",
                                      "--method", "gradcam", "--method", "integrated_gradients", "--steps", "16",
                                      "--out", out)  # fmt: skip
    assert code == 0, stderr
    report = json.load(open(os.path.join(out, "attribute.json")))
    assert report["methods"] == ["gradcam", "integrated_gradients"]
    assert set(report["auc"]) == {"gradcam", "integrated_gradients", "random (baseline)", "centre (baseline)"}
    assert [entry["name"] for entry in report["images"]] == ["test 0", "test 3"]

    subject = open_subject(trained_smoke_run, log=lambda *_: None)
    images, labels = subject.load("test")
    inputs = np.asarray(subject.pixels.inputs(images[[0, 3]]))
    expected = Attribution(subject.model, "gradcam").explain(inputs)
    saved = np.load(os.path.join(out, "image_00001.npz"))
    np.testing.assert_allclose(saved["gradcam_map"], expected.maps[1], atol=1e-6)
    assert saved["integrated_gradients_raw"].shape == inputs.shape[1:]
    assert report["images"][1]["target"] == int(expected.targets[1])
    assert report["images"][1]["label"] == int(labels[3])
    deletion = metrics.deletion(subject.model, inputs, expected.maps, expected.targets).auc
    assert report["images"][1]["auc"]["gradcam"]["deletion"] == pytest.approx(float(deletion[1]), abs=1e-6)
    figure = np.asarray(Image.open(os.path.join(out, "image_00000.png")))
    assert figure.shape[1] > 2.5 * figure.shape[0]  # the image and two panels side by side
    assert "analyze/attribute" in _tags(os.path.join(trained_smoke_run, "analyze"))


def _keras_model(path):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(x))
    model.save(path)
    return model


def test_attribute_image_files_with_a_broken_one(tmp_path):
    keras.utils.set_random_seed(0)  # one model every run
    model = _keras_model(tmp_path / "m.keras")
    rng = np.random.default_rng(0)
    files = []
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / f"photo{i}.png")
        files.append(str(tmp_path / f"photo{i}.png"))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "labels.txt").write_text("cat\ndog\nbird\n")
    out = str(tmp_path / "out")
    args = ["--model", str(tmp_path / "m.keras"), "--images", files[0], str(tmp_path / "broken.jpg"), files[1]]
    args += ["--method", "scorecam", "--labels", str(tmp_path / "labels.txt"), "--target", "dog", "--out", out]
    code, stdout, stderr = in_process("analyze", "attribute", *args)
    assert code == 0, stderr
    assert "skipped" in stdout and "broken.jpg" in stdout
    report = json.load(open(os.path.join(out, "attribute.json")))
    assert [e["name"] for e in report["images"]] == ["photo0.png", "photo1.png"]
    assert [s["file"] for s in report["skipped"]] == [str(tmp_path / "broken.jpg")]
    assert {e["class"] for e in report["images"]} == {"dog"}
    # the image reaches the model as the explorer's folder images do: central window, resized, raw pixels
    pixels = np.asarray(Image.open(files[1]).resize((16, 16), Image.BILINEAR), np.float32)
    expected = Attribution(model, "scorecam").explain(pixels[None], target=1).maps[0]
    np.testing.assert_allclose(np.load(os.path.join(out, "image_00001.npz"))["scorecam_map"], expected, atol=0.1)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--method", "lime"], "attribution method must be one of"),
        (["--layer", "out"], "no spatial feature maps"),
        (["--target", "7"], "out of range"),
        (["--target", "zebra"], "class index or a class name"),
        (["--images", "missing.png"], "does not exist"),
    ],
)
def test_one_line_errors(tmp_path, extra, message):
    _keras_model(tmp_path / "m.keras")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    args = ["attribute", "--model", str(tmp_path / "m.keras"), "--out", str(tmp_path / "o")]
    if "--images" not in extra:
        args += ["--images", str(tmp_path / "a.png")]
    code, _, stderr = in_process("analyze", *args, *extra)
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr


def test_every_file_broken_is_one_line(tmp_path):
    _keras_model(tmp_path / "m.keras")
    (tmp_path / "empty.png").write_bytes(b"")
    code, _, stderr = in_process("analyze", "attribute", "--model", str(tmp_path / "m.keras"), "--images",
                                 str(tmp_path / "empty.png"), "--out", str(tmp_path / "o"))  # fmt: skip
    assert code == 2 and "could be decoded" in stderr, stderr
