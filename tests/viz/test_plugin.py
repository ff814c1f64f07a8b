"""The TensorBoard Deconvnet tab: its routes through TensorBoard's own WSGI app (werkzeug test client),
checked against the files the explorer and analyses wrote and against the library's projections; a
real TensorBoard server; a real headless Chromium clicking through the tab."""

import io
import json
import os
import shutil
import sys
import threading
import urllib.request

import keras
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import plugin_event_multiplexer
from werkzeug.test import Client

import vizdeconv
from tests.support.builders import small_cnn, small_config
from vizdeconv import cli
from vizdeconv.data import cifar10
from vizdeconv.methods.deconvnet import Deconvnet
from vizdeconv.nn import preprocess
from vizdeconv.runs.subject import open_subject
from vizdeconv.training.loop import train_and_evaluate
from vizdeconv.viz.pictures import to_display
from vizdeconv.viz.plugin import probes
from vizdeconv.viz.plugin.plugin import DeconvnetPlugin, heat, standalone_app

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import tab_walkthrough  # noqa: E402

pytestmark = pytest.mark.slow  # a trained, explored logdir, a TensorBoard server and a browser

QUIET = dict(log=lambda *_: None)


def build_logdir(logdir: str, cifar: str) -> None:
    """A reference run with kept checkpoints, explored and analyzed; an explored .keras file; a
    model.fit run with the callback and snapshots."""
    run = os.path.join(logdir, "ref")
    train_and_evaluate(small_config(cifar, keep_steps=(2, 4)), run, **QUIET)
    assert (
        cli.command("explore")(
            ["--run", run, "--layer", "conv2", "--layer", "conv3", "--compare", "--sanity", "--batch_size", "32"]
            + ["--optimize", "--steps", "16"]
        )
        == 0
    )
    assert cli.command("analyze")(["evolution", "--run", run, "--layer", "conv3"]) == 0
    assert cli.command("analyze")(["occlusion", "--run", run, "--images", "first:1", "--stride", "4"]) == 0
    model = small_cnn()
    model.save(os.path.join(logdir, "kmodel.keras"))
    assert (
        cli.command("explore")(
            [
                "--model",
                os.path.join(logdir, "kmodel.keras"),
                "--data_dir",
                cifar,
                "--layer",
                "relu1",
                "--layer",
                "conv2",
                "--batch_size",
                "32",
            ]
        )
        == 0
    )
    fit = small_cnn()
    fit.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images, labels = cifar10.load_binary(cifar, "train")
    callback = vizdeconv.keras.DeconvnetCallback(
        os.path.join(logdir, "kfit"),
        images[:3].astype(np.float32),
        snapshot_dir=os.path.join(logdir, "kfit", "snapshots"),
    )
    fit.fit(images[:32].astype(np.float32), labels[:32], epochs=1, batch_size=16, verbose=0, callbacks=[callback])


@pytest.fixture(scope="module")
def logdir(cifar_session, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tb") / "logs")
    build_logdir(root, cifar_session)
    return root


def make_client(logdir: str) -> tuple[Client, DeconvnetPlugin]:
    app, plugin = standalone_app(logdir)
    return Client(app), plugin


@pytest.fixture(scope="module")
def client(logdir):
    return make_client(logdir)[0]


def get(client, route, **parameters):
    response = client.get(f"/data/plugin/vizdeconv/{route}", query_string=parameters)
    body = response.get_data()
    return response.status_code, (json.loads(body) if response.mimetype == "application/json" else body)


def png(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)))


def cifar_dir(logdir: str) -> str:
    """The CIFAR-10 folder the logdir's reference run was trained on."""
    return json.load(open(os.path.join(logdir, "ref", "config.json")))["data"]["data_dir"]


def uint8(pictures) -> np.ndarray:
    return np.round(np.clip(pictures, 0, 1) * 255).astype(np.uint8)


def test_tab_listed_only_where_a_run_holds_vizdeconv_data(logdir, client, tmp_path):
    listing = json.loads(client.get("/data/plugins_listing").get_data())["vizdeconv"]
    assert listing["enabled"] and listing["tab_name"] == "Deconvnet"
    assert listing["loading_mechanism"]["module_path"] == "/data/plugin/vizdeconv/index.js"
    import tensorflow as tf

    with tf.summary.create_file_writer(str(tmp_path / "plain")).as_default():
        tf.summary.scalar("loss", 1.0, step=0)  # a logdir without vizdeconv data
    other, _ = make_client(str(tmp_path))
    assert not json.loads(other.get("/data/plugins_listing").get_data())["vizdeconv"]["enabled"]
    script = client.get("/data/plugin/vizdeconv/index.js")
    assert script.status_code == 200 and b"export async function render" in script.get_data()


def test_runs_listing_matches_the_files(logdir, client, cifar_session):
    status, body = get(client, "runs")
    assert status == 200
    listing = {run["name"]: run for run in body["runs"]}
    assert set(listing) == {"ref", "kmodel_explore", "kfit"}
    ref = listing["ref"]
    index = json.load(open(os.path.join(logdir, "ref", "explore", "test", "index.json")))
    assert ref["kind"] == "run" and ref["splits"]["test"]["layers"] == list(index["layers"])
    assert [p["image_id"] for p in ref["probes"]] == list(range(16))  # the explorer's, not the trainer's 2
    _, labels = cifar10.load_binary(cifar_session, "test")
    assert [p["label"] for p in ref["probes"]] == labels[:16].tolist()
    assert ref["analyses"]["evolution"] == ["conv3"]
    assert ref["analyses"]["occlusion"] == {"0": "analyze/occlusion/image_00000.png"}
    sanity = json.load(open(os.path.join(logdir, "ref", "explore", "test", "sanity", "sanity_conv3.json")))
    assert ref["analyses"]["sanity"]["conv3"]["spearman"] == sanity["spearman"]
    assert ref["analyses"]["compare"] == ["explore/test/compare_conv3.png"]
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()  # trainer, explorer and callback each mark their events; analyses read them
    assert set(multiplexer.PluginRunToTagToContent(probes.PLUGIN_NAME)) == {
        "ref/train",
        "ref/explore",
        "ref/analyze",
        "kmodel_explore",
        "kfit/train",
    }
    assert listing["kmodel_explore"]["kind"] == "keras"
    assert listing["kmodel_explore"]["splits"]["test"]["layers"] == ["relu1", "conv2"]
    assert listing["kfit"]["kind"] == "keras" and listing["kfit"]["splits"] == {}
    assert len(listing["kfit"]["probes"]) == 3


def test_top9_payload_and_tiles_are_the_explorers(logdir, client, cifar_session):
    index = json.load(open(os.path.join(logdir, "ref", "explore", "test", "index.json")))["layers"]
    top = np.load(os.path.join(logdir, "ref", "explore", "test", "conv3", "top.npz"))
    status, layer = get(client, "layer", run="ref", split="test", layer="conv3")
    assert status == 200 and len(layer["channels"]) == 10 and layer["k"] == 9
    assert [c["value"] for c in layer["channels"]] == [index["conv3"][str(c)]["values"][0] for c in range(10)]
    status, body = get(client, "top9", run="ref", split="test", layer="conv3", channel=4)
    entry = index["conv3"]["4"]
    assert status == 200 and [e["image_id"] for e in body["entries"]] == entry["image_ids"]
    assert [e["value"] for e in body["entries"]] == entry["values"]
    assert [e["class_name"] for e in body["entries"]] == [cifar10.CLASS_NAMES[i] for i in entry["labels"]]
    images, _ = cifar10.load_binary(cifar_session, "test")
    pictures = preprocess.central_crop(images, 24)
    # Hand arithmetic for the reference net's conv3: jump 4, field 5 + 1 + 2*4 + 2 + 4*4 = 32 pixels, and
    # unit (r, c) starts 2 + 4 + 8 = 14 pixels above and left of 4r, 4c; boxes are clipped to 24x24.
    field = top["patches"].shape[2]
    assert field == 32
    for rank, (image_id, box, (row, col)) in enumerate(zip(entry["image_ids"], entry["boxes"], entry["locations"])):
        for what, array in (("projection", top["projections"]), ("patch", top["patches"])):
            status, body = get(
                client, "tile.png", run="ref", split="test", layer="conv3", channel=4, rank=rank, what=what
            )
            assert status == 200 and np.array_equal(png(body), array[4, rank])
        nominal_top, nominal_left = 4 * row - 14, 4 * col - 14
        assert box == [max(nominal_top, 0), max(nominal_left, 0), min(nominal_top + 31, 23), min(nominal_left + 31, 23)]
        top_row, left, bottom, right = box
        dy, dx = top_row - nominal_top, left - nominal_left
        patch = top["patches"][4, rank]
        inside = np.zeros(patch.shape[:2], bool)
        inside[dy : dy + bottom - top_row + 1, dx : dx + right - left + 1] = True
        np.testing.assert_array_equal(
            patch[inside].reshape(bottom - top_row + 1, right - left + 1, 3),
            pictures[image_id, top_row : bottom + 1, left : right + 1],
        )
        assert (patch[~inside] == 255).all()  # the canvas outside the image is white


def test_evolution_payload_and_tiles(logdir, client):
    evolution = np.load(os.path.join(logdir, "ref", "analyze", "evolution", "evolution_conv3.npz"))
    status, body = get(client, "evolution", run="ref", layer="conv3", channel=2)
    assert status == 200 and body["steps"] == [2, 4, 6]
    for index in range(3):
        status, tile = get(client, "evolution.png", run="ref", layer="conv3", channel=2, index=index)
        assert status == 200 and np.array_equal(png(tile), uint8(evolution["tiles"][2, index]))
    status, body = get(client, "evolution", run="ref", layer="conv2", channel=0)
    assert status == 400 and "analyze evolution --layer conv2" in body["error"]


def library_projection(logdir, image_index, layer, channel, mode="deconvnet", unit=None):
    """The same projection straight from the library, on the run's newest checkpoint."""
    model = open_subject(run=os.path.join(logdir, "ref"), log=lambda *_: None, need_data=False).model
    images, _ = cifar10.load_binary(cifar_dir(logdir), "test")
    inputs = preprocess.preprocess_eval(images[image_index : image_index + 1], 24)
    deconvnet = Deconvnet(model, mode)
    activations = deconvnet.graph.forward(inputs)[layer].numpy()[0, ..., channel]
    if unit is None:
        projection = deconvnet.channels(inputs, layer, [channel])
    else:
        projection = deconvnet.units(inputs, layer, [channel], [unit[0] * activations.shape[1] + unit[1]])
    return uint8(to_display(projection.numpy())[0]), activations


def decode_uri(uri: str) -> np.ndarray:
    import base64

    assert uri.startswith("data:image/png;base64,")
    return png(base64.b64decode(uri.split(",", 1)[1]))


@pytest.mark.parametrize("mode, unit", [("deconvnet", None), ("guided", (2, 3)), ("bias_subtract", None)])
def test_projection_on_demand_equals_the_library(logdir, client, mode, unit):
    extra = {} if unit is None else {"row": unit[0], "col": unit[1]}
    status, body = get(client, "project", run="ref", image=1, layer="conv2", channel=3, mode=mode, **extra)
    assert status == 200, body
    expected, activations = library_projection(logdir, 1, "conv2", 3, mode, unit)
    assert np.abs(decode_uri(body["projection"]).astype(int) - expected).max() <= 1
    assert body["max_activation"] == pytest.approx(float(activations.max()), rel=1e-5)
    assert body["map_shape"] == [12, 12] and body["step"] == 6
    assert np.array_equal(decode_uri(body["feature_map"]), heat(activations))
    assert body["unit"] == (list(unit) if unit else None)


def test_attribution_on_demand_equals_the_library_and_is_kept(logdir, client):
    import tensorflow as tf

    from vizdeconv.methods.attribution import Attribution
    from vizdeconv.viz.pictures import overlay

    model = open_subject(run=os.path.join(logdir, "ref"), log=lambda *_: None, need_data=False).model
    images, _ = cifar10.load_binary(cifar_dir(logdir), "test")
    inputs = preprocess.preprocess_eval(images[2:3], 24)
    probabilities = tf.nn.softmax(model(inputs)).numpy()[0]
    top = list(np.argsort(-probabilities, kind="stable")[:2])
    low = int(np.argsort(probabilities)[0])  # a class outside the top two, asked for by name of its index
    status, body = get(client, "attribution", run="ref", image=2, method="gradcam++", top=2, target=low)
    assert status == 200, body
    assert [c["index"] for c in body["classes"]] == [*top, low] and body["layer"] == "conv3" and not body["cached"]
    result = Attribution(model, "gradcam++").explain(np.repeat(inputs, 3, 0), [*top, low])
    picture = images[2:3, 4:28, 4:28].astype(np.float32) / 255.0  # the probe as the tab shows it: central crop
    for i, entry in enumerate(body["classes"]):
        assert entry["probability"] == pytest.approx(float(probabilities[entry["index"]]), abs=1e-5)
        assert entry["score"] == pytest.approx(float(result.scores[i]), rel=1e-4, abs=1e-5)
        expected = uint8(overlay(picture, result.maps[i : i + 1])[0])
        assert np.abs(decode_uri(entry["map"]).astype(int) - expected).max() <= 1
    again = get(client, "attribution", run="ref", image=2, method="gradcam++", top=2, target=low)[1]
    assert again["cached"] and again["classes"][2]["map"] == body["classes"][2]["map"]


def upload(client, body: bytes, run="ref", content_type="image/png", xsrf=True):
    headers = {"X-XSRF-Protected": "1"} if xsrf else {}
    response = client.post("/data/plugin/vizdeconv/image", query_string={"run": run}, data=body,
                           content_type=content_type, headers=headers)  # fmt: skip
    return response.status_code, json.loads(response.get_data())


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def files_under(folder) -> dict:
    return {os.path.join(root, name): os.stat(os.path.join(root, name)).st_mtime_ns
            for root, _, names in os.walk(folder) for name in names}  # fmt: skip


def test_an_uploaded_image_is_predicted_and_lights_up_its_layer_as_the_model_says(logdir, client):
    model = open_subject(run=os.path.join(logdir, "ref"), log=lambda *_: None, need_data=False).model
    images, _ = cifar10.load_binary(cifar_dir(logdir), "test")
    before = files_under(logdir)
    status, body = upload(client, png_bytes(images[5]))
    assert status == 200, body
    assert body["image"].startswith("u:") and "24x24" in body["preprocess"] and "standardize" in body["preprocess"]
    inputs = preprocess.preprocess_eval(images[5:6], 24)  # the run's own evaluation preprocessing
    graph = Deconvnet(model).graph
    probabilities = graph.probabilities(graph(inputs)).numpy()[0]
    order = np.argsort(-probabilities)[:5]
    assert [p["index"] for p in body["predictions"]] == order.tolist()
    assert [p["probability"] for p in body["predictions"]] == pytest.approx(probabilities[order].tolist(), abs=1e-5)
    assert body["predictions"][0]["name"] == cifar10.CLASS_NAMES[order[0]]

    status, layer = get(client, "activations", run="ref", image=body["image"], layer="conv2")
    assert status == 200, layer
    activations = graph.forward(inputs)["conv2"].numpy()[0]
    assert layer["shape"] == [12, 12, 64]
    np.testing.assert_allclose(layer["maxima"], activations.reshape(-1, 64).max(0), rtol=1e-4, atol=1e-5)
    atlas = decode_uri(layer["atlas"])
    columns = layer["columns"]
    assert atlas.shape == (-(-64 // columns) * 12, columns * 12, 3)
    strongest = int(np.argmax(layer["maxima"]))
    row, column = divmod(strongest, columns)
    np.testing.assert_array_equal(atlas[row * 12 : row * 12 + 12, column * 12 : column * 12 + 12],
                                  heat(activations[..., strongest], top=activations.max()))  # fmt: skip
    # the other routes take the upload's token: its projection is the library's of the same inputs
    status, projected = get(client, "project", run="ref", image=body["image"], layer="conv2", channel=strongest)
    assert status == 200, projected
    expected = uint8(to_display(Deconvnet(model).channels(inputs, "conv2", [strongest]).numpy())[0])
    assert np.abs(decode_uri(projected["projection"]).astype(int) - expected).max() <= 1
    assert projected["argmax"] == list(np.unravel_index(np.argmax(activations[..., strongest]), (12, 12)))
    status, why = get(client, "attribution", run="ref", image=body["image"], top=1)
    assert status == 200 and why["classes"][0]["index"] == order[0], why
    assert files_under(logdir) == before  # uploads are held in memory only


def test_a_nested_transfer_model_lights_up_its_backbones_layers_by_their_own_names(cifar_session, tmp_path):
    """A classifier around a nested backbone, saved and explored as a user does: an uploaded image's tiles of a
    backbone layer, its projection and the split's images are the Keras model's own."""
    layers = keras.layers
    backbone = keras.Sequential([keras.Input((32, 32, 3)), layers.Rescaling(1 / 255, name="scale"),
                                 layers.Conv2D(6, 3, activation="relu", name="b_conv1"), layers.MaxPooling2D(2),
                                 layers.Conv2D(8, 3, padding="same", name="b_conv2"), layers.ReLU(name="b_relu2")],
                                name="backbone")  # fmt: skip
    inputs = keras.Input((32, 32, 3))
    head = layers.Dense(10, name="head")(layers.GlobalAveragePooling2D()(backbone(inputs)))
    keras.utils.set_random_seed(3)
    model = keras.Model(inputs, head, name="transfer")
    logdir = tmp_path / "logs"
    os.makedirs(logdir)
    model.save(logdir / "transfer.keras")
    command = ["--model", str(logdir / "transfer.keras"), "--data_dir", cifar_session, "--layer", "b_relu2",
               "--limit", "32", "--batch_size", "32"]  # fmt: skip
    assert cli.command("explore")(command) == 0
    client = make_client(str(logdir))[0]
    images, _ = cifar10.load_binary(cifar_session, "test")
    status, body = upload(client, png_bytes(images[2]), run="transfer_explore")
    assert status == 200 and "raw" in body["preprocess"], body  # the model rescales: raw pixels in
    reloaded = keras.models.load_model(logdir / "transfer.keras")
    inner = reloaded.get_layer("backbone")
    expected = keras.Model(inner.inputs, inner.get_layer("b_relu2").output)(images[2:3].astype(np.float32)).numpy()[0]
    for image in (body["image"], "test:2"):
        status, layer = get(client, "activations", run="transfer_explore", image=image, layer="b_relu2")
        assert status == 200 and layer["shape"] == [15, 15, 8], layer
        np.testing.assert_allclose(layer["maxima"], expected.reshape(-1, 8).max(0), rtol=1e-4, atol=1e-5)
    channel = int(np.argmax(expected.reshape(-1, 8).max(0)))
    status, projected = get(client, "project", run="transfer_explore", image=body["image"], layer="b_relu2",
                            channel=channel)  # fmt: skip
    library = Deconvnet(reloaded).project(images[2:3].astype(np.float32), "b_relu2", channel=[channel]).numpy()
    assert (
        status == 200
        and np.abs(decode_uri(projected["projection"]).astype(int) - uint8(to_display(library)[0])).max() <= 1
    )


BOMB = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + (20000).to_bytes(4, "big") + (10000).to_bytes(4, "big") + b"\x08\x02"


@pytest.mark.parametrize(
    "body, content_type, xsrf, message",
    [
        (b"", "image/png", True, "empty body"),
        (b"hello, not an image", "image/png", True, "not a decodable image"),
        (b"hello", "text/plain", True, "content type text/plain is not an image"),
        ("truncated", "image/png", True, "not a decodable image"),
        (BOMB, "image/png", True, "declares 200 megapixels"),
        (b"\0" * (16 * 2**20 + 1), "application/octet-stream", True, "at most 16 MB"),
        ("png", "image/png", False, "X-XSRF-Protected"),
    ],
)
def test_bad_uploads_answer_400_in_one_line_and_the_server_goes_on(logdir, client, body, content_type, xsrf, message):
    images, _ = cifar10.load_binary(cifar_dir(logdir), "test")
    if body == "truncated":
        body = png_bytes(np.kron(images[0], np.ones((8, 8, 1), np.uint8)))[:400]
    elif body == "png":
        body = png_bytes(images[0])
    before = files_under(logdir)
    status, reply = upload(client, body, content_type=content_type, xsrf=xsrf)
    assert status == 400 and message in reply["error"] and "\n" not in reply["error"], reply
    assert get(client, "runs")[0] == 200 and files_under(logdir) == before
    assert client.get("/data/plugin/vizdeconv/image", query_string={"run": "ref"}).status_code == 400


def test_images_of_a_runs_split_by_id_and_by_class(logdir, client):
    model = open_subject(run=os.path.join(logdir, "ref"), log=lambda *_: None, need_data=False).model
    images, labels = cifar10.load_binary(cifar_dir(logdir), "test")
    status, body = get(client, "image", run="ref", image="test:9")
    assert status == 200 and body["image"] == "test:9", body
    graph = Deconvnet(model).graph
    inputs = preprocess.preprocess_eval(images[9:10], 24)
    probabilities = graph.probabilities(graph(inputs)).numpy()[0]
    assert body["predictions"][0]["index"] == int(np.argmax(probabilities))
    assert body["predictions"][0]["probability"] == pytest.approx(float(probabilities.max()), abs=1e-5)
    assert np.array_equal(decode_uri(body["picture"]), images[9, 4:28, 4:28])  # the central crop it sees
    status, layer = get(client, "activations", run="ref", image="test:9", layer="conv1")
    activations = graph.forward(inputs)["conv1"].numpy()[0]
    np.testing.assert_allclose(layer["maxima"], activations.reshape(-1, 64).max(0), rtol=1e-4, atol=1e-5)
    status, found = get(client, "split", run="ref", split="test", **{"class": 3}, limit=5)
    assert status == 200 and found["ids"] == np.flatnonzero(labels == 3)[:5].tolist() and set(found["labels"]) == {3}
    assert found["count"] == int((labels == 3).sum())
    for route, parameters, message in [
        ("image", dict(run="ref", image="test:x"), "SPLIT:ID"),
        ("image", dict(run="ref", image=f"test:{len(images)}"), "outside the test split"),
        ("split", dict(run="ref", split="valid"), "split must be one of"),
        ("image", dict(run="kmodel_explore", image=f"test:{len(images)}"), "outside the test split"),
    ]:
        status, reply = get(client, route, **parameters)
        assert status == 400 and message in reply["error"], (route, parameters, reply)


def test_images_of_the_split_a_keras_model_was_explored_on(logdir, client, tmp_path):
    """The explorer records its data source in the marking: the tab reads that split's images by id, taken as
    the explorer takes them; a marking without one (an older exploration) is refused in one line."""
    subject = open_subject(model_path=os.path.join(logdir, "kmodel.keras"), data_dir=cifar_dir(logdir), **QUIET)
    images, labels = cifar10.load_binary(cifar_dir(logdir), "test")
    status, body = get(client, "image", run="kmodel_explore", image="test:9")
    assert status == 200, body
    inputs = subject.pixels.inputs(images[9:10])
    graph = Deconvnet(subject.model).graph
    probabilities = graph.probabilities(graph(inputs)).numpy()[0]
    assert body["predictions"][0]["index"] == int(np.argmax(probabilities))
    assert body["predictions"][0]["probability"] == pytest.approx(float(probabilities.max()), abs=1e-5)
    status, layer = get(client, "activations", run="kmodel_explore", image="test:9", layer="conv2")
    np.testing.assert_allclose(layer["maxima"], graph.forward(inputs)["conv2"].numpy()[0].max((0, 1)), rtol=1e-4,
                               atol=1e-5)  # fmt: skip
    # A click reuses the layer's activations kept from its tiles, and only for the image they belong to.
    for image_id in (9, 10):
        status, click = get(client, "project", run="kmodel_explore", image=f"test:{image_id}", layer="conv2", channel=2)
        expected = graph.forward(subject.pixels.inputs(images[image_id : image_id + 1]))["conv2"].numpy()[0, ..., 2]
        assert click["max_activation"] == pytest.approx(float(expected.max()), rel=1e-5)
    status, found = get(client, "split", run="kmodel_explore", split="test", **{"class": 4}, limit=3)
    assert status == 200 and found["ids"] == np.flatnonzero(labels == 4)[:3].tolist()
    assert found["count"] == int((labels == 4).sum())
    status, first = get(client, "split", run="kmodel_explore", split="test", limit=4)
    assert first["ids"] == [0, 1, 2, 3] and first["labels"] == labels[:4].tolist() and first["count"] == len(labels)
    runs = {run["name"]: run for run in get(client, "runs")[1]["runs"]}
    assert runs["kmodel_explore"]["data"] and runs["ref"]["data"] and not runs["kfit"]["data"]
    # A marking of a Keras model without its data source: the tab says what to do.
    old = tmp_path / "logs" / "old_explore"
    os.makedirs(tmp_path / "logs")
    shutil.copy(os.path.join(logdir, "kmodel.keras"), tmp_path / "logs" / "kmodel.keras")
    probes.write_probes(str(old), np.asarray(inputs), images[9:10],
                        probes.Marking(str(old), "keras", model=str(tmp_path / "logs" / "kmodel.keras")))  # fmt: skip
    status, body = get(make_client(str(tmp_path / "logs"))[0], "split", run="old_explore", split="test")
    assert status == 400 and "explore it again" in body["error"]


def test_an_unknown_or_dropped_upload_is_refused(client):
    status, body = get(client, "activations", run="ref", image="u:0123456789abcdef0123", layer="conv2")
    assert status == 400 and "upload it again" in body["error"]


def test_the_upload_cache_keeps_the_newest_used():
    from vizdeconv.viz.plugin.uploads import Uploads

    cache = Uploads(entries=3)
    for name in "abcd":
        cache.put(name, {"name": name})
        if name == "c":
            assert cache.get("a") is not None  # used: now the newest
    assert len(cache) == 3 and cache.get("b") is None and [cache.get(n)["name"] for n in "acd"] == ["a", "c", "d"]


def test_twenty_concurrent_uploads_and_layers_are_each_answered_right(logdir):
    client, plugin = make_client(logdir)
    model = open_subject(run=os.path.join(logdir, "ref"), log=lambda *_: None, need_data=False).model
    images, _ = cifar10.load_binary(cifar_dir(logdir), "test")
    graph = Deconvnet(model).graph
    loads = []
    original = plugin.projector._get.__func__

    def counting(self, run):
        loaded = original(self, run)
        loads.append(id(loaded))
        return loaded

    plugin.projector._get = counting.__get__(plugin.projector)
    results, errors = {}, []

    def work(i):
        try:
            local = Client(client.application)
            status, body = upload(local, png_bytes(images[i]))
            assert status == 200, body
            status, layer = get(local, "activations", run="ref", image=body["image"], layer="conv1")
            assert status == 200, layer
            results[i] = (body["predictions"][0]["index"], layer["maxima"])
        except Exception as error:  # noqa: BLE001  (reported below, on the main thread)
            errors.append(repr(error))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    for i, (top, maxima) in results.items():
        inputs = preprocess.preprocess_eval(images[i : i + 1], 24)
        assert top == int(np.argmax(graph(inputs).numpy()[0]))
        activations = graph.forward(inputs)["conv1"].numpy()[0]
        np.testing.assert_allclose(maxima, activations.reshape(-1, activations.shape[-1]).max(0), rtol=1e-4, atol=1e-5)
    assert len(results) == 20 and len(set(loads)) == 1  # one network, loaded once


def test_projection_of_keras_runs_uses_the_model_file_and_newest_snapshot(logdir, client):
    status, body = get(client, "project", run="kmodel_explore", image=0, layer="conv2", channel=1)
    assert status == 200 and body["step"] is None
    status, body = get(client, "project", run="kfit", image=2, layer="relu1", channel=0, mode="guided")
    assert status == 200 and body["step"] == 1  # epoch_0001.keras, the newest snapshot
    model = keras.models.load_model(os.path.join(logdir, "kfit", "snapshots", "epoch_0001.keras"))
    images, _ = cifar10.load_binary(cifar_dir(logdir), "train")
    expected = Deconvnet(model, "guided").channels(images[2:3].astype(np.float32), "relu1", [0])
    assert np.abs(decode_uri(body["projection"]).astype(int) - uint8(to_display(expected.numpy())[0])).max() <= 1
    status, body = get(client, "project", run="kmodel_explore", image=0, layer="conv2", channel=1, mode="bias_subtract")
    assert status == 400 and "bias_subtract" in body["error"]  # BatchNormalization below conv2


def test_optimized_image_is_the_explorers_or_computed_on_demand_and_kept(logdir, client):
    folder = os.path.join(logdir, "ref", "explore", "test")
    stored = np.load(os.path.join(folder, "conv3", "optimized.npz"))
    index = json.load(open(os.path.join(folder, "index.json")))["layers"]["conv3"]
    status, body = get(client, "optimized", run="ref", split="test", layer="conv3", channel=4)
    assert status == 200 and body["source"] == "explore --optimize" and body["method"] == "fourier"
    assert np.array_equal(decode_uri(body["image"]), stored["images"][4]) and body["steps"] == 16
    assert body["activation"] == pytest.approx(float(stored["activations"][4]))
    assert body["activation"] == pytest.approx(index["4"]["optimized_activation"])
    assert body["top1"] == index["4"]["values"][0]
    # No pixel-method image was made: computed now with the run's newest checkpoint, equal to the library's.
    status, computed = get(client, "optimized", run="ref", split="test", layer="conv3", channel=4, method="pixel",
                           steps=8)  # fmt: skip
    assert status == 200 and computed["source"] == "computed on demand" and not computed["cached"]
    model = open_subject(run=os.path.join(logdir, "ref"), log=lambda *_: None, need_data=False).model
    expected = vizdeconv.FeatureVisualization(model, "pixel").optimize("conv3", [4], steps=8)
    assert np.abs(decode_uri(computed["image"]).astype(int) - uint8(expected.images[0])).max() <= 1
    assert computed["activation"] == pytest.approx(float(expected.activations[0]), rel=1e-4)
    assert computed["step"] == 6 and computed["top1"] == index["4"]["values"][0]
    status, again = get(client, "optimized", run="ref", split="test", layer="conv3", channel=4, method="pixel", steps=8)
    assert again["cached"] and again["image"] == computed["image"] and again["seconds"] == 0
    # analyze optimize's images are served as they were saved.
    assert cli.command("analyze")(["optimize", "--run", os.path.join(logdir, "ref"), "--layer", "conv2",
                                   "--channels", "3", "--method", "pixel", "--steps", "4"]) == 0  # fmt: skip
    saved = np.load(os.path.join(logdir, "ref", "analyze", "optimize", "conv2_pixel.npz"))
    status, body = get(client, "optimized", run="ref", split="test", layer="conv2", channel=3, method="pixel")
    assert status == 200 and body["source"] == "analyze optimize" and body["cached"]
    assert np.array_equal(decode_uri(body["image"]), uint8(saved["images"][0]))
    assert body["activation"] == pytest.approx(float(saved["activations"][0]))
    # A Keras model file without explorer images of that layer: on demand, with the model's preprocessing.
    status, keras_body = get(client, "optimized", run="kmodel_explore", layer="conv2", channel=1, steps=8)
    assert status == 200 and keras_body["top1"] is None and keras_body["step"] is None
    loaded = keras.models.load_model(os.path.join(logdir, "kmodel.keras"))
    expected = vizdeconv.FeatureVisualization(loaded, "fourier").optimize("conv2", [1], steps=8)
    assert np.abs(decode_uri(keras_body["image"]).astype(int) - uint8(expected.images[0])).max() <= 1


def test_concurrent_projections_do_not_mix(logdir):
    client, _ = make_client(logdir)
    requests = [
        dict(
            run="ref",
            image=i % 4,
            layer=("conv2", "conv3")[i % 2],
            channel=i % 7,
            mode=("deconvnet", "guided")[i // 2 % 2],
        )
        for i in range(12)
    ]
    sequential = [get(client, "project", **r)[1]["projection"] for r in requests]
    fresh, _ = make_client(logdir)
    results = [None] * len(requests)

    def worker(i):
        results[i] = get(fresh, "project", **requests[i])[1]["projection"]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == sequential


def test_a_run_that_keeps_training_is_reloaded(logdir, cifar_session, tmp_path):
    copy = tmp_path / "logs"
    shutil.copytree(os.path.join(logdir, "ref"), copy / "ref")
    client, _ = make_client(str(copy))
    status, before = get(client, "project", run="ref", image=0, layer="conv3", channel=0)
    assert status == 200 and before["step"] == 6
    train_and_evaluate(small_config(cifar_session, steps=8, keep_steps=(2, 4)), str(copy / "ref"), **QUIET)
    status, after = get(client, "project", run="ref", image=0, layer="conv3", channel=0)
    assert status == 200 and after["step"] == 8
    expected, _ = library_projection(str(copy), 0, "conv3", 0)
    assert np.abs(decode_uri(after["projection"]).astype(int) - expected).max() <= 1


@pytest.mark.parametrize(
    "route, parameters, message",
    [
        ("top9", dict(split="test", layer="conv3", channel=4), "parameter 'run' is missing"),
        ("top9", dict(run="nope", split="test", layer="conv3", channel=4), "no vizdeconv run 'nope'"),
        ("top9", dict(run="ref", split="test", layer="conv9", channel=4), "has no layer 'conv9'"),
        ("top9", dict(run="ref", split="test", layer="conv3", channel=10), "channel 10 is out of range"),
        ("top9", dict(run="ref", split="train", layer="conv3", channel=0), "no explorer output for split"),
        ("top9", dict(run="ref", split="test", layer="conv3", channel="x"), "must be an integer"),
        ("tile.png", dict(run="ref", split="test", layer="conv3", channel=0, what="x"), "what must be"),
        ("project", dict(run="ref", image=99, layer="conv3", channel=0), "image 99 is out of range"),
        ("project", dict(run="ref", image=0, layer="conv3", channel=10), "channel 10 is out of range"),
        ("project", dict(run="ref", image=0, layer="conv3", channel=0, mode="x"), "mode"),
        ("project", dict(run="ref", image=0, layer="conv3", channel=0, row=6, col=0), "outside"),
        ("project", dict(run="ref", image=0, layer="fc9", channel=0), "not in the network"),
        ("evolution.png", dict(run="ref", layer="conv3", channel=0, index=3), "index 3 is out of range"),
        ("optimized", dict(run="ref", layer="conv3", channel=0, method="x"), "method must be one of"),
        ("optimized", dict(run="ref", layer="conv3", channel=0, method="pixel", steps=0), "steps must be between"),
        ("optimized", dict(run="ref", layer="conv3", channel=10, method="pixel"), "channel 10 is out of range"),
        ("optimized", dict(run="ref", layer="fc9", channel=0, method="pixel"), "fc9"),
        ("optimized", dict(run="ref", layer="conv3"), "parameter 'channel' is missing"),
        ("attribution", dict(run="ref", image=0, method="lime"), "method must be one of"),
        ("attribution", dict(run="ref", image=0, top=0), "top must be between 1 and 10"),
        ("attribution", dict(run="ref", image=0, target=10), "target 10 is out of range"),
        ("attribution", dict(run="ref", image=0, target="cat"), "must be an integer"),
        ("attribution", dict(run="ref", image=99), "image 99 is out of range"),
    ],
)
def test_bad_parameters_answer_400_with_a_message(client, route, parameters, message):
    status, body = get(client, route, **parameters)
    assert status == 400 and message in body["error"]


def test_files_cannot_be_read_outside_the_logdir(logdir, client, tmp_path):
    status, body = get(client, "file", run="ref", path="analyze/occlusion/image_00000.png")
    assert status == 200
    assert body == open(os.path.join(logdir, "ref", "analyze", "occlusion", "image_00000.png"), "rb").read()
    secret = tmp_path / "secret.png"
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(secret)
    link = os.path.join(logdir, "ref", "analyze", "link.png")
    os.symlink(secret, link)
    try:
        for path in (
            "../../secret.png",
            str(secret),
            "analyze/../../../secret.png",
            "analyze/link.png",
            "..%2F..%2Fsecret.png",
            "config.json",
            "analyze\\..\\..\\x.png",
        ):
            status, body = get(client, "file", run="ref", path=path)
            assert status == 400, path
            assert "logdir" in body["error"] or "only .png" in body["error"] or "exist" in body["error"]
        status, _ = get(client, "file", run="..", path="secret.png")
        assert status == 400
    finally:
        os.remove(link)


def test_marking_that_points_outside_the_logdir_is_ignored(tmp_path):
    logdir = tmp_path / "logs"
    outside = tmp_path / "elsewhere"
    probes.write_probes(
        str(logdir / "x"), np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4, 3)), probes.Marking(str(outside), "run")
    )
    client, _ = make_client(str(logdir))
    assert get(client, "runs")[1]["runs"] == []


def test_real_tensorboard_server_lists_and_serves_the_plugin(logdir):

    process, base = tab_walkthrough.start_tensorboard(logdir)
    try:
        listing = json.load(urllib.request.urlopen(base + "/data/plugins_listing", timeout=30))
        assert listing["vizdeconv"]["enabled"] and listing["vizdeconv"]["tab_name"] == "Deconvnet"
        runs_body = json.load(urllib.request.urlopen(base + "/data/plugin/vizdeconv/runs", timeout=30))
        assert {run["name"] for run in runs_body["runs"]} == {"ref", "kmodel_explore", "kfit"}
    finally:
        process.kill()
        process.wait()


def test_browser_clicks_through_the_tab_in_light_and_dark_themes(logdir, tmp_path):
    if tab_walkthrough.find_browser() is None:
        pytest.skip("no chromium + chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    # A sanity curve over as many stages as MobileNetV2's (37, long names): its axis must stay legible.
    stages = ["trained", "logits"] + [f"mobilenetv2_1.00_32/block_{i}_project" for i in range(35)]
    deep = os.path.join(logdir, "kmodel_explore", "test", "sanity", "sanity_deep.json")
    os.makedirs(os.path.dirname(deep), exist_ok=True)
    curve = np.linspace(1, 0, len(stages)).round(3).tolist()
    json.dump({"layer": "deep", "stages": stages, "spearman": curve, "ssim": curve}, open(deep, "w"))
    process, base = tab_walkthrough.start_tensorboard(logdir)
    try:
        seen = {}
        for theme in ("light", "dark"):
            driver = tab_walkthrough.open_browser(dark=theme == "dark")
            try:
                seen[theme] = tab_walkthrough.walk(
                    driver, base, str(tmp_path / f"{theme}.png"), run="ref", channel=1, probe=0
                )
                if theme == "light":  # the reply about a run left behind comes back last
                    with urllib.request.urlopen(base + "/data/plugin/vizdeconv/model_layers?run=ref") as reply:
                        ref_layers = [layer["name"] for layer in json.load(reply)["layers"]]
                    seen["race"] = tab_walkthrough.switch_runs_with_a_slow_reply(driver, base, "kmodel_explore", "ref")
                    # an explored Keras model: no kept checkpoints, so no evolution slider
                    seen["keras"] = tab_walkthrough.walk(
                        driver, base, str(tmp_path / "keras.png"), run="kmodel_explore", channel=1, probe=0
                    )
            finally:
                driver.quit()
    finally:
        process.kill()
        process.wait()
        os.remove(deep)
    light = seen["light"]
    assert light["tiles"] == 10 and light["top9_cards"] == 9
    stored = np.load(os.path.join(logdir, "ref", "explore", "test", "conv3", "optimized.npz"))
    top1 = json.load(open(os.path.join(logdir, "ref", "explore", "test", "index.json")))["layers"]["conv3"]["1"]
    assert light["optimized"]["info"] == f"fourier: {stored['activations'][1]:.2f} vs top-1 {top1['values'][0]:.2f}"
    assert light["optimized"]["width"] == 24 and light["optimized"]["src"].startswith("data:image/png")
    assert light["optimized_pixel"].startswith("pixel: ") and "computed on demand" in light["optimized_pixel_source"]
    index = json.load(open(os.path.join(logdir, "ref", "explore", "test", "index.json")))["layers"]
    assert light["top9_captions"][0].endswith(f"#{index['conv3']['1']['image_ids'][0]}")
    assert light["steps"] == ["step 6", "step 2"] and light["evolution_image_src"].endswith("index=0")
    assert light["projection_info"][0].startswith("deconvnet, whole feature map, step 6")
    assert "unit (3, 3)" in light["projection_info"][1]  # the centre of conv3's 6x6 map
    attribution = light["attribution"]  # Grad-CAM of the probe's three most probable classes, then Score-CAM
    assert attribution["error"] is None and attribution["loaded"] and len(attribution["captions"]) == 3
    assert all(": p 0." in caption or ": p 1." in caption for caption in attribution["captions"])
    assert attribution["scorecam_info"].startswith("layer conv3")
    assert seen["race"] == {
        "run": "ref",
        "project_layers": ref_layers,
        "feature_maps": "10 feature maps of conv3, each its strongest projection. Click one.",
    }
    keras_run = seen["keras"]
    (chart,) = keras_run["sanity_charts"]
    assert chart["labels"][0] == "trained" and chart["labels"][-1] == "block_34_pr…" and 3 <= len(chart["labels"]) <= 5
    assert not chart["overlap"] and chart["inside"]
    assert len(chart["hover"]) == 37 and chart["hover"][2].startswith("mobilenetv2_1.00_32/block_0_project: Spearman")
    assert keras_run["steps"] == [] and keras_run["evolution_message"].startswith("no evolution of conv2 in kmodel")
    assert keras_run["top9_cards"] == 9 and keras_run["projection_info"][0].startswith("deconvnet, whole feature map, ")
    assert "step" not in keras_run["projection_info"][0] and "unit (3, 3)" in keras_run["projection_info"][1]
    assert light["background"] == "rgb(255, 255, 255)" and seen["dark"]["background"] == "rgb(48, 48, 48)"
    for theme in ("light", "dark"):
        screenshot = np.asarray(Image.open(seen[theme]["screenshot"]).convert("RGB"))
        assert screenshot.shape[0] > 500 and screenshot.std() > 20
        assert len(np.unique(screenshot.reshape(-1, 3), axis=0)) > 500  # pictures, not a blank page


def test_browser_uploads_an_image_and_clicks_through_its_channels(logdir, tmp_path):
    if tab_walkthrough.find_browser() is None:
        pytest.skip("no chromium + chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    images, _ = cifar10.load_binary(cifar_dir(logdir), "test")
    Image.fromarray(images[7]).save(tmp_path / "photo.png")
    process, base = tab_walkthrough.start_tensorboard(logdir)
    driver = tab_walkthrough.open_browser()
    try:
        seen = tab_walkthrough.walk_upload(driver, base, str(tmp_path / "photo.png"), str(tmp_path / "live.png"),
                                           run="ref", layer="conv3")  # fmt: skip
    finally:
        driver.quit()
        process.kill()
        process.wait()
    assert len(seen["predictions"]) == 5 and "24x24" in seen["preprocess"]
    assert seen["tiles"] == 10 and seen["heading"].startswith("conv3: 6×6×10")  # one tile per channel
    assert seen["projections"][1].startswith("deconvnet, whole map") and "guided" in seen["projections"][2]
    assert seen["top9"] == 9  # conv3 is explored: its top-9 beside the projections
    top_name = seen["predictions"][0].split(":")[0]
    assert len(seen["gradcam_captions"]) == 2 and seen["gradcam_captions"][0].startswith(f"Grad-CAM of {top_name} ")
    assert seen["selected"][1] == seen["order"][1]  # ArrowRight: the next tile in strength order
    screenshot = np.asarray(Image.open(seen["screenshot"]).convert("RGB"))
    assert len(np.unique(screenshot.reshape(-1, 3), axis=0)) > 500


def test_browser_picks_an_image_of_the_split_a_keras_model_was_explored_on(logdir, tmp_path):
    if tab_walkthrough.find_browser() is None:
        pytest.skip("no chromium + chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    labels = cifar10.load_binary(cifar_dir(logdir), "test")[1]
    process, base = tab_walkthrough.start_tensorboard(logdir)
    driver = tab_walkthrough.open_browser()
    try:
        seen = tab_walkthrough.walk_upload(driver, base, None, str(tmp_path / "keras.png"), run="kmodel_explore",
                                           layer="conv2", split_image="test:9")  # fmt: skip
    finally:
        driver.quit()
        process.kill()
        process.wait()
    assert seen["class_ids"] == [f"#{i}" for i in np.flatnonzero(labels == 3)[:12]]  # the class's first ids
    channels = open_subject(model_path=os.path.join(logdir, "kmodel.keras"), need_data=False, **QUIET).graph.shapes
    assert seen["tiles"] == channels["conv2"][-1] and seen["heading"].startswith("conv2: ")
    assert seen["projections"][1].startswith("deconvnet, whole map") and seen["top9"] == 9


@pytest.mark.slow
def test_applications_runs_project_on_demand_with_their_weights_file_and_preprocessing(
    cifar_session, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # an applications model's outputs go to ./logs/<NAME>_explore
    spec, layer = "applications:MobileNetV2:32", "block_1_expand_relu"
    model = open_subject(model_path=spec, need_data=False).model
    os.makedirs("logs")
    model.save_weights(os.path.join("logs", "mnv2.weights.h5"))
    command = ["--model", spec, "--data_dir", cifar_session, "--layer", layer, "--limit", "32", "--batch_size", "32"]
    assert cli.command("explore")(command + ["--weights", "logs/mnv2.weights.h5", "--preprocess", "unit"]) == 0
    client, plugin = make_client(os.path.join(str(tmp_path), "logs"))
    status, body = get(client, "project", run="MobileNetV2_32_explore", image=0, layer=layer, channel=5)
    assert status == 200, body
    # Images optimized on demand start from pixels taken as the explorer took them.
    assert [loaded.pixels.scaling for loaded in plugin.projector._loaded.values()] == ["unit"]
    images, _ = cifar10.load_binary(cifar_session, "test")
    inputs = images[:1].astype(np.float32) / 255  # --preprocess unit, not the family's own (auto)
    expected = Deconvnet(model, "deconvnet").channels(inputs, layer, [5]).numpy()
    assert np.abs(decode_uri(body["projection"]).astype(int) - uint8(to_display(expected)[0])).max() <= 1
    status, body = get(client, "optimized", run="MobileNetV2_32_explore", layer=layer, channel=5, steps=4)
    assert status == 200 and body["source"] == "computed on demand"
    # An uploaded image lights up the family's layer as the model with the user's weights sees it.
    status, body = upload(client, png_bytes(images[0]), run="MobileNetV2_32_explore")
    assert status == 200, body
    status, tiles = get(client, "activations", run="MobileNetV2_32_explore", image=body["image"], layer=layer)
    expected = keras.Model(model.inputs, model.get_layer(layer).output)(inputs).numpy()[0]
    np.testing.assert_allclose(tiles["maxima"], expected.reshape(-1, expected.shape[-1]).max(0), rtol=1e-4, atol=1e-4)
    # Explored with random weights: nothing to rebuild them from, and the tab says so in one line.
    probes.write_probes(
        str(tmp_path / "logs" / "random_explore"), inputs, inputs,
        probes.Marking(str(tmp_path / "logs" / "random_explore"), "keras", model=spec, preprocess="unit"),
    )  # fmt: skip
    client = make_client(str(tmp_path / "logs"))[0]
    status, body = get(client, "project", run="random_explore", image=0, layer=layer, channel=0)
    assert status == 400 and "random weights" in body["error"]


@pytest.mark.slow
def test_explorer_output_written_elsewhere_with_out_is_found_inside_the_logdir_only(cifar_session, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    small_cnn().save(str(logs / "k.keras"))
    command = ["--model", str(logs / "k.keras"), "--data_dir", cifar_session, "--limit", "32", "--batch_size", "32"]
    assert cli.command("explore")(command + ["--layer", "conv2", "--out", str(logs / "elsewhere" / "mine")]) == 0
    status, body = get(make_client(str(logs))[0], "runs")
    assert status == 200
    run = {run["name"]: run for run in body["runs"]}["k_explore"]
    assert run["splits"]["test"]["layers"] == ["conv2"]  # the split this explore scanned, in its --out
    status, body = get(make_client(str(logs))[0], "top9", run="k_explore", split="test", layer="conv2", channel=1)
    index = json.load(open(logs / "elsewhere" / "mine" / "index.json"))
    assert status == 200 and [e["image_id"] for e in body["entries"]] == index["layers"]["conv2"]["1"]["image_ids"]
    small_cnn().save(str(logs / "k2.keras"))
    command[1] = str(logs / "k2.keras")
    assert cli.command("explore")(command + ["--layer", "relu1", "--out", str(tmp_path / "outside")]) == 0
    status, body = get(make_client(str(logs))[0], "runs")
    assert {run["name"]: run for run in body["runs"]}["k2_explore"]["splits"] == {}  # outside the logdir
