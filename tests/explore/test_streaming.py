"""The explorer over streamed sources: image folders (with bad files), TFRecord, TFDS, shards and merge,
a scan killed and resumed, --layer all, and ids that read back to the right image."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import PIL.Image
import pytest
import tensorflow as tf
from keras import layers as L

from tests.support.commands import in_process
from vizdeconv.data import cifar10, sources
from vizdeconv.errors import RunInUse
from vizdeconv.explore import ExploreOptions, explore, scanning
from vizdeconv.runs.lock import RunLock

QUIET = dict(log=lambda *_: None)


def tiny_cnn(size: int = 32) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    x = L.Rescaling(1 / 255.0, name="rescale")(inputs)
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(x)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(8, 3, activation="relu", name="conv2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(10, name="logits")(x))


@pytest.fixture(scope="module")
def cifar(cifar_session):
    """(CIFAR binary folder, test images [64, 32, 32, 3], labels)."""
    images, labels = cifar10.load_binary(cifar_session, "test")
    return cifar_session, images, labels


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    keras.utils.set_random_seed(3)
    tiny_cnn().save(path)
    return path


def write_folder(root, images, labels) -> list[int]:
    """PNG files <root>/<class name>/img_NNN.png; returns the original index of each folder id (sorted paths)."""
    paths = []
    for i, (image, label) in enumerate(zip(images, labels)):
        name = os.path.join(cifar10.CLASS_NAMES[label], f"img_{i:03d}.png")
        os.makedirs(os.path.join(root, cifar10.CLASS_NAMES[label]), exist_ok=True)
        PIL.Image.fromarray(image).save(os.path.join(root, name))
        paths.append((name, i))
    return [i for _, i in sorted(paths)]


def tops(out: str, layer: str) -> dict:
    return json.load(open(os.path.join(out, "index.json")))["layers"][layer]


def assert_same_tops(actual, expected, where=()):
    """Equal index entries: ids, labels, locations and boxes exactly; activation values to float rounding
    (oneDNN's kernels on AVX2 CPUs round differently for batches of other sizes, as a resumed or sharded
    scan runs them)."""
    if isinstance(expected, dict):
        assert set(actual) == set(expected), where
        for key in expected:
            assert_same_tops(actual[key], expected[key], (*where, key))
    elif isinstance(expected, list):
        assert len(actual) == len(expected), where
        for index, (a, e) in enumerate(zip(actual, expected)):
            assert_same_tops(a, e, (*where, index))
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-5, abs=1e-6), where
    else:
        assert actual == expected, where


def test_folder_tfrecord_and_tfds_stream_to_the_in_memory_result(cifar, model_file, tmp_path):
    root, images, labels = cifar
    order = write_folder(tmp_path / "folder", images, labels)
    with tf.io.TFRecordWriter(str(tmp_path / "part-0.tfrecord")) as writer:
        for image, label in zip(images, labels):
            feature = {
                "image/encoded": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[tf.io.encode_png(image).numpy()])
                ),
                "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    import tensorflow_datasets as tfds

    tfds.dataset_builders.store_as_tfds_dataset(
        name="tiny_cifar",
        version="1.0.0",
        data_dir=str(tmp_path / "tfds"),
        split_datasets={"test": tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})},
        features=tfds.features.FeaturesDict(
            {"image": tfds.features.Image(shape=(32, 32, 3)), "label": tfds.features.ClassLabel(num_classes=10)}
        ),
        config="default",
    )
    tfds_order = [  # TFDS stores a split in an order of its own: the source's ids follow it
        int(np.flatnonzero((images == example["image"]).all(axis=(1, 2, 3)))[0])
        for example in tfds.as_numpy(
            tfds.load("tiny_cifar", split="test", data_dir=str(tmp_path / "tfds"), shuffle_files=False)
        )
    ]

    def run(data_dir, name, **extra):
        options = ExploreOptions(model=model_file, layers=["conv1", "conv2"], top_k=3, data_dir=data_dir,
                                 batch_size=16, out=str(tmp_path / name), **extra)  # fmt: skip
        explore(options, **QUIET)
        return options.out

    memory = run(root, "memory")
    streamed = {
        "folder": (run(str(tmp_path / "folder"), "folder"), order),
        "tfrecord": (run(str(tmp_path / "part-0.tfrecord"), "tfrecord"), list(range(len(images)))),
        "tfds": (run("tfds:tiny_cifar", "tfds", tfds_data_dir=str(tmp_path / "tfds")), tfds_order),
    }
    compared = 0
    for layer in ("conv1", "conv2"):
        expected = tops(memory, layer)
        for kind, (out, original) in streamed.items():
            for channel, entry in tops(out, layer).items():
                np.testing.assert_allclose(entry["values"], expected[channel]["values"], rtol=1e-5, atol=1e-6)
                if min(entry["values"]) <= 0:  # a map off on many images: ties, broken by each source's own ids
                    continue
                assert [original[i] for i in entry["image_ids"]] == expected[channel]["image_ids"], (kind, layer)
                assert entry["locations"] == expected[channel]["locations"]
                assert entry["labels"] == expected[channel]["labels"], kind
                compared += 1
    assert compared >= 3 * 8
    # The folder's index names each image's file: it reads back to the image the id stands for.
    entry = tops(streamed["folder"][0], "conv2")["2"]
    for path, original in zip(entry["files"], [order[i] for i in entry["image_ids"]]):
        assert np.array_equal(np.asarray(PIL.Image.open(path)), images[original])


def write_bad_folder(root, images) -> dict:
    """Good PNGs plus one file of every troublesome kind; returns {file name: kept?}."""
    os.makedirs(root, exist_ok=True)
    kinds = {}
    for i in range(12):
        PIL.Image.fromarray(images[i]).save(os.path.join(root, f"good_{i:02d}.png"))
        kinds[f"good_{i:02d}.png"] = True
    PIL.Image.fromarray(images[20]).save(os.path.join(root, "whole.jpg"), quality=95)
    whole = open(os.path.join(root, "whole.jpg"), "rb").read()
    writes = {
        "truncated.jpg": whole[: len(whole) // 2],
        "corrupt.jpg": whole[:200] + bytes(range(256)) * 4,
        "empty.png": b"",
        "notes.jpg": b"not an image at all\n",
    }
    for name, raw in writes.items():
        open(os.path.join(root, name), "wb").write(raw)
        kinds[name] = False
    kinds["whole.jpg"] = True
    PIL.Image.fromarray(images[21][..., 0]).save(os.path.join(root, "gray.png"))
    PIL.Image.fromarray(np.dstack([images[22], np.full((32, 32), 128, np.uint8)])).save(os.path.join(root, "rgba.png"))
    PIL.Image.fromarray(images[23][..., 0].astype(np.uint16) * 257).save(os.path.join(root, "deep16.png"))
    PIL.Image.fromarray(np.kron(images[24], np.ones((200, 200, 1), np.uint8))).save(
        os.path.join(root, "big.jpg"), quality=80
    )  # 6400 x 6400: decoded scaled down
    PIL.Image.new("1", (9000, 8000)).save(os.path.join(root, "huge.png"))  # 72 Mpx: over the limit
    kinds.update({"gray.png": True, "rgba.png": True, "deep16.png": True, "big.jpg": True, "huge.png": False})
    open(os.path.join(root, "readme.txt"), "w").write("not scanned: no image extension")
    return kinds


def test_bad_files_are_skipped_listed_and_counted_or_an_error_with_strict(cifar, model_file, tmp_path):
    _, images, _ = cifar
    folder = str(tmp_path / "bad")
    kinds = write_bad_folder(folder, images)
    source = sources.open_source(folder, "test", (32, 32, 3))
    assert sorted(source.files) == sorted(kinds)
    pixels, _ = source.read([source.files.index(name) for name in ("gray.png", "rgba.png", "deep16.png", "big.jpg")])
    assert np.array_equal(pixels[0], np.repeat(images[21][..., :1], 3, axis=-1))
    assert np.array_equal(pixels[1], images[22])  # alpha dropped
    assert np.abs(pixels[2].astype(int) - images[23][..., :1]).max() <= 1  # 16 bits to 8
    # 200x smaller (decoded at 1/8, then resized): as PIL's full decode and antialiased bilinear resize
    truth = PIL.Image.open(os.path.join(folder, "big.jpg")).convert("RGB").resize((32, 32), PIL.Image.BILINEAR)
    assert np.abs(pixels[3].astype(int) - np.asarray(truth)).max() <= 2

    out = str(tmp_path / "out")
    code, stdout, stderr = in_process("explore", "--model", model_file, "--data_dir", folder, "--layer", "conv2",
                                      "--top_k", "2", "--batch_size", "4", "--out", out)  # fmt: skip
    assert code == 0, stderr
    bad = sorted(name for name, kept in kinds.items() if not kept)
    assert f"{len(kinds) - len(bad)} images, {len(bad)} skipped" in stdout
    listed = [line.split("\t") for line in open(os.path.join(out, scanning.SKIPPED_FILE)).read().splitlines()]
    assert sorted(os.path.basename(path) for path, _ in listed) == bad
    reasons = dict((os.path.basename(path), reason) for path, reason in listed)
    assert "empty" in reasons["empty.png"] and "too large" in reasons["huge.png"]
    report = json.load(open(os.path.join(out, "index.json")))["report"]
    assert report["skipped"] == len(bad) and report["images"] == len(kinds) - len(bad)
    winners = {f for entry in tops(out, "conv2").values() for f in entry["files"]}
    assert not {os.path.join(folder, name) for name in bad} & winners

    code, stdout, stderr = in_process("explore", "--model", model_file, "--data_dir", folder, "--layer", "conv2",
                                      "--strict", "--out", str(tmp_path / "strict"))  # fmt: skip
    error = stderr.strip().splitlines()[-1]  # after the progress bar
    assert code == 2 and error.startswith("vizdeconv explore: error: ") and "Traceback" not in stderr, stderr
    assert "corrupt.jpg" in error and "--strict" in error  # the first bad file in path order


def test_shards_merge_into_one_scan_and_every_layer_in_one_pass(cifar, model_file, tmp_path):
    root, _, _ = cifar
    common = dict(model=model_file, layers=["all"], top_k=4, data_dir=root, batch_size=8)
    whole = explore(ExploreOptions(**common, out=str(tmp_path / "whole")), **QUIET)
    graph_layers = whole["layers"]
    assert graph_layers == ["conv1", "pool1", "conv2"]  # each block's output maps (not the rescaled image)
    parts = [str(tmp_path / f"part{i}") for i in range(3)]
    for i, part in enumerate(parts):
        report = explore(ExploreOptions(**common, out=part, shard=f"{i}/3"), **QUIET)
        assert report["shard"] == f"{i}/3" and not os.path.exists(os.path.join(part, "index.json"))
    state = scanning.ScanState.load(os.path.join(parts[1], scanning.STATE_FILE))
    assert (state.start, state.stop) == (21, 42)  # contiguous thirds of 64
    assert set(np.unique(state.tops["conv2"]["image_ids"])) <= set(range(21, 42))

    code, _, stderr = in_process("explore", "merge", parts[0], parts[2], "--out", str(tmp_path / "bad"))
    assert code == 2 and "missing 1/3" in stderr
    code, stdout, stderr = in_process("explore", "merge", *parts, "--out", str(tmp_path / "merged"))
    assert code == 0, stderr
    for layer in graph_layers:
        assert tops(str(tmp_path / "merged"), layer) == tops(str(tmp_path / "whole"), layer)
    # A part of another scan is refused.
    explore(ExploreOptions(**dict(common, top_k=3), out=str(tmp_path / "other"), shard="2/3"), **QUIET)
    code, _, stderr = in_process("explore", "merge", parts[0], parts[1], str(tmp_path / "other"), "--out", "x")
    assert code == 2 and "different scans" in stderr and "k 4 -> 3" in stderr


def test_a_folder_being_scanned_is_refused_and_an_unfinished_scan_of_other_settings_is_kept(
    cifar, model_file, tmp_path
):
    root, _, _ = cifar
    out = str(tmp_path / "out")
    os.makedirs(out)
    options = ExploreOptions(model=model_file, layers=["conv2"], top_k=2, data_dir=root, out=out)
    with RunLock(out, what="explore"):
        with pytest.raises(RunInUse, match="explore"):
            explore(options, **QUIET)
    explore(options, **QUIET)
    path = os.path.join(out, scanning.STATE_FILE)
    finished = scanning.ScanState.load(path)
    unfinished = dataclasses.replace(finished, done=False, position=32)
    unfinished.save(path)
    args = ["--model", model_file, "--data_dir", root, "--out", out, "--top_k", "2"]
    code, _, stderr = in_process("explore", *args, "--layer", "conv1")
    assert code == 2 and "unfinished scan with other settings" in stderr and "conv2" in stderr
    assert scanning.ScanState.load(path).position == 32  # not thrown away
    code, stdout, stderr = in_process("explore", *args, "--layer", "conv2")  # its own command finishes it
    assert code == 0 and scanning.ScanState.load(path).done, stderr
    notices = []
    explore(dataclasses.replace(options, layers=["conv1"]), log=notices.append)  # a finished one is replaced
    assert any("finished scan with other settings" in n for n in notices)
    assert list(scanning.ScanState.load(path).tops) == ["conv1"]


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["kill_9", "ctrl_c"])
def test_a_kill_or_ctrl_c_then_the_same_command_resumes_to_the_uninterrupted_result(cifar, tmp_path, stop):
    _, images, labels = cifar
    folder = str(tmp_path / "folder")
    write_folder(folder, np.concatenate([images] * 4), np.concatenate([labels] * 4))  # 256 files
    model = str(tmp_path / "wide.keras")
    keras.utils.set_random_seed(5)
    tiny_cnn().save(model)
    args = ["--model", model, "--data_dir", folder, "--layer", "all", "--top_k", "5", "--batch_size", "4",
            "--save_every", "4"]  # fmt: skip
    code, _, stderr = in_process("explore", *args, "--out", str(tmp_path / "whole"))
    assert code == 0, stderr
    out = str(tmp_path / "killed")
    command = [sys.executable, "-m", "vizdeconv.explore", *args, "--out", out]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    state = os.path.join(out, scanning.STATE_FILE)
    wanted = int(np.random.default_rng().integers(8, 128))  # a random moment of the scan
    for _ in range(4):  # a busy or fast machine may pass the moment before the kill lands: then an earlier one
        shutil.rmtree(out, ignore_errors=True)
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            try:
                if scanning.ScanState.load(state).position >= wanted:
                    break
            except (ValueError, FileNotFoundError):
                pass
            time.sleep(0.002)
        process.send_signal(stop)
        _, stderr = process.communicate()
        if stop == signal.SIGINT and process.returncode != 0:  # 0: it finished before the signal landed
            # one line, exit 130, and no half-written state file beside the state
            text = stderr.decode()
            assert process.returncode == 130 and text.strip().splitlines()[-1] == "vizdeconv.explore: interrupted"
            assert "Traceback" not in text, text[-2000:]
            assert not [name for name in os.listdir(out) if ".tmp" in name]
        try:
            killed_at = scanning.ScanState.load(state)
        except (ValueError, FileNotFoundError):
            killed_at = None  # killed before its first save: nothing to resume, try a later moment
            wanted = min(wanted * 2, 128)
            continue
        if not killed_at.done and 0 < killed_at.position < 256:
            break
        wanted = max(4, wanted // 4)
    assert killed_at is not None and not killed_at.done and 0 < killed_at.position < 256, killed_at
    resumed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming the scan" in resumed.stdout
    whole, again = (scanning.ScanState.load(os.path.join(p, scanning.STATE_FILE)) for p in (tmp_path / "whole", out))
    for layer, top in whole.tops.items():
        for key in top:
            if np.issubdtype(top[key].dtype, np.floating):  # to float rounding: batches of other sizes
                np.testing.assert_allclose(top[key], again.tops[layer][key], rtol=1e-5, atol=1e-6)
            else:
                assert np.array_equal(top[key], again.tops[layer][key]), (layer, key, killed_at.position)
    for layer in whole.tops:
        assert_same_tops(tops(out, layer), tops(str(tmp_path / "whole"), layer))


def test_multi_worker_processes_scan_their_shares_and_the_chief_merges(cifar, model_file, tmp_path):
    root, _, _ = cifar
    args = ["--model", model_file, "--data_dir", root, "--layer", "conv1", "--layer", "conv2", "--top_k", "3"]
    code, _, stderr = in_process("explore", *args, "--out", str(tmp_path / "alone"))
    assert code == 0, stderr
    out = str(tmp_path / "cluster")
    cluster = {"worker": ["localhost:1", "localhost:2"]}  # addresses unused: the parts meet in --out
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "vizdeconv.explore", *args, "--strategy", "multi_worker", "--out", out],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(
                os.environ,
                TF_CPP_MIN_LOG_LEVEL="3",
                TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            ),
        )
        for index in (1, 0)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [e[-2000:] for _, e in outputs]
    assert "part 1/2" in outputs[0][0] and "merge" not in outputs[0][0]
    for index in (0, 1):
        state = scanning.ScanState.load(os.path.join(out, "workers", str(index), scanning.STATE_FILE))
        assert (state.start, state.stop) == scanning.shard_range(64, (index, 2)) and state.done
    for layer in ("conv1", "conv2"):
        assert_same_tops(tops(out, layer), tops(str(tmp_path / "alone"), layer))


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_a_state_save_stopped_halfway_leaves_the_old_state_and_no_temporary_file(tmp_path, monkeypatch, failure):
    path = str(tmp_path / scanning.STATE_FILE)
    tops = {"conv1": {"values": np.ones((2, 3), np.float32), "image_ids": np.zeros((2, 3), np.int64),
                      "positions": np.zeros((2, 3, 2), np.int64)}}  # fmt: skip
    old = scanning.ScanState({"k": 3}, tops, 0, 64, 16, np.zeros(0, np.int64))
    old.save(path)

    def savez_then_fail(handle, **arrays):
        handle.write(b"PK\x03\x04 half a zip")
        raise failure

    monkeypatch.setattr(scanning.np, "savez", savez_then_fail)
    with pytest.raises(type(failure) if isinstance(failure, BaseException) else failure):
        dataclasses.replace(old, position=32).save(path)
    assert os.listdir(tmp_path) == [scanning.STATE_FILE]
    assert scanning.ScanState.load(path).position == 16
