"""The explorer's --labels names a model's classes in the tab: the runs listing and an upload's predictions."""

import io
import json
import os

import keras
import numpy as np
from PIL import Image
from werkzeug.test import Client

from tests.support.commands import in_process
from vizdeconv.viz.plugin.plugin import standalone_app


def test_explorer_labels_name_the_classes_in_the_tab(tmp_path):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
    logdir = tmp_path / "logs"
    logdir.mkdir()
    model.save(logdir / "m.keras")
    rng = np.random.default_rng(0)
    for i in range(4):
        (tmp_path / "images" / "any").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
            tmp_path / "images" / "any" / f"{i}.png"
        )
    (tmp_path / "labels.txt").write_text("cat\ndog\n\nbird\n")
    (tmp_path / "two.txt").write_text("cat\ndog\n")
    base = ["--model", str(logdir / "m.keras"), "--data_dir", str(tmp_path / "images"), "--layer", "conv"]
    code, _, stderr = in_process("explore", *base, "--top_k", "1", "--labels", str(tmp_path / "two.txt"))
    assert code == 2 and "2 class names; the model has 3 outputs" in stderr and len(stderr.strip().splitlines()) == 1
    code, _, stderr = in_process("explore", *base, "--top_k", "1", "--labels", str(tmp_path / "labels.txt"))
    assert code == 0, stderr
    app, _ = standalone_app(str(logdir))
    client = Client(app)
    (run,) = json.loads(client.get("/data/plugin/vizdeconv/runs").get_data())["runs"]
    assert run["class_names"] == ["cat", "dog", "bird"]
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(buffer, format="PNG")
    reply = client.post("/data/plugin/vizdeconv/image", query_string={"run": run["name"]}, data=buffer.getvalue(),
                        content_type="image/png", headers={"X-XSRF-Protected": "1"})  # fmt: skip
    predictions = json.loads(reply.get_data())["predictions"]
    assert reply.status_code == 200 and sorted(p["name"] for p in predictions) == ["bird", "cat", "dog"]
    assert not os.path.exists(logdir / "labels.txt")
