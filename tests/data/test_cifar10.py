"""Data decoding, preprocessing and the errors a user can cause, on small generated files."""

import os

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_records, write_tarball
from vizdeconv.data import cifar10, pipeline
from vizdeconv.nn import preprocess


def test_binary_folder_decodes_labels_and_rgb_planes(cifar_folder):
    root, written = cifar_folder
    images, labels = cifar10.load_binary(root, "test")
    expected_images, expected_labels = written["test_batch.bin"]
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(images, expected_images)
    assert images.shape == (40, 32, 32, 3) and images.dtype == np.uint8


def test_plane_order_is_red_green_blue():
    record = np.zeros(cifar10.RECORD_BYTES, np.uint8)
    record[0] = 7
    record[1:1025] = 10  # red plane
    record[1025:2049] = 20  # green plane
    record[2049 + 32 * 2 + 5] = 99  # blue plane, row 2, column 5
    images, labels = cifar10.decode_records(record.tobytes(), "one.bin")
    assert labels.tolist() == [7]
    assert images[0, 0, 0].tolist() == [10, 20, 0]
    assert images[0, 2, 5, 2] == 99 and images[0, 5, 2, 2] == 0


def test_train_split_concatenates_five_files_in_order(cifar_folder):
    root, written = cifar_folder
    images, labels = cifar10.load_binary(os.path.join(root, cifar10.FOLDER), "train")
    expected = np.concatenate([written[n][1] for n in cifar10.SPLIT_FILES["train"]])
    np.testing.assert_array_equal(labels, expected)
    assert images.shape == (80, 32, 32, 3)


def test_tarball_and_folder_holding_it_read_the_same(tmp_path):
    files = {
        name: make_records(12, i)[2]
        for i, name in enumerate(cifar10.SPLIT_FILES["train"] + cifar10.SPLIT_FILES["test"])
    }
    tarball = write_tarball(tmp_path / cifar10.TARBALL, files)
    from_file = cifar10.load_binary(tarball, "test")
    from_folder = cifar10.load_binary(str(tmp_path), "test")
    np.testing.assert_array_equal(from_file[0], from_folder[0])
    np.testing.assert_array_equal(from_file[1], make_records(12, 5)[1])


@pytest.mark.parametrize(
    "problem, message",
    [
        ("missing", "does not exist"),
        ("truncated", "not a whole number of 3073-byte"),
        ("label", "outside 0..9"),
        ("member", "lacks cifar-10-batches-bin/test_batch.bin"),
        ("not_tar", "not a readable tar.gz"),
        ("empty_dir", "holds neither"),
    ],
)
def test_bad_data_gives_a_clear_error_naming_the_file(tmp_path, problem, message):
    _, _, raw = make_records(3, 0)
    path = str(tmp_path / "x")
    if problem == "truncated":
        path = write_tarball(tmp_path / "t.tar.gz", {"test_batch.bin": raw[:-5]})
    elif problem == "label":
        bad = bytearray(raw)
        bad[cifar10.RECORD_BYTES] = 12  # the second record's label
        path = write_tarball(tmp_path / "t.tar.gz", {"test_batch.bin": bytes(bad)})
    elif problem == "member":
        path = write_tarball(tmp_path / "t.tar.gz", {"data_batch_1.bin": raw})
    elif problem == "not_tar":
        (tmp_path / "junk.tar.gz").write_bytes(b"this is not a tarball")
        path = str(tmp_path / "junk.tar.gz")
    elif problem == "empty_dir":
        os.makedirs(path)
    with pytest.raises((ValueError, FileNotFoundError), match=message) as error:
        cifar10.load_binary(path, "test")
    if problem in ("truncated", "label"):
        assert "test_batch.bin" in str(error.value)


def test_eval_preprocessing_matches_numpy():
    images = make_records(4, 3)[0]
    ours = preprocess.preprocess_eval(images, 24).numpy()
    crop = images[:, 4:28, 4:28].astype(np.float64)
    mean = crop.mean(axis=(1, 2, 3), keepdims=True)
    std = np.maximum(crop.std(axis=(1, 2, 3), keepdims=True), 1 / np.sqrt(24 * 24 * 3))
    np.testing.assert_allclose(ours, (crop - mean) / std, rtol=1e-4, atol=1e-4)


def test_augment_is_a_crop_or_flipped_crop_of_each_image():
    images = make_records(16, 4)[0]
    seed = tf.constant([3, 9], tf.int64)
    out = preprocess.augment(tf.constant(images), seed, 24).numpy()
    assert out.shape == (16, 24, 24, 3) and out.dtype == np.float32
    flips = 0
    for image, result in zip(images.astype(np.float64), out):
        candidates = []
        for r in range(9):
            for c in range(9):
                crop = image[r : r + 24, c : c + 24]
                candidates += [crop, crop[:, ::-1]]
        standardized = [(x - x.mean()) / max(x.std(), 1 / np.sqrt(x.size)) for x in candidates]
        errors = [np.abs(s - result).max() for s in standardized]
        best = int(np.argmin(errors))
        assert errors[best] < 1e-4
        flips += best % 2
    assert 0 < flips < 16  # both flipped and unflipped crops occur
    np.testing.assert_array_equal(out, preprocess.augment(tf.constant(images), seed, 24).numpy())


def test_batches_cover_each_epoch_once_and_depend_only_on_seed_and_step():
    seen = np.concatenate([pipeline.batch_indices(step, 5, 20, seed=1).numpy() for step in range(4)])
    assert sorted(seen.tolist()) == list(range(20))
    straddling = pipeline.batch_indices(3, 6, 20, seed=1).numpy()  # positions 18..23 span two epochs
    assert len(set(straddling[:2])) == 2 and len(set(straddling[2:])) == 4
    images, labels = make_records(20, 1)[:2]
    full = list(pipeline.train_dataset(images, labels, 5, seed=2, start_step=0, end_step=6))
    resumed = list(pipeline.train_dataset(images, labels, 5, seed=2, start_step=3, end_step=6))
    for (a, la), (b, lb) in zip(full[3:], resumed):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(la.numpy(), lb.numpy())


def test_eval_dataset_covers_whole_split_in_order():
    images, labels = make_records(23, 2)[:2]
    batches = list(pipeline.eval_dataset(images, labels, 10))
    assert [b[0].shape[0] for b in batches] == [10, 10, 3]
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), labels)


def test_tfds_path_with_mock_data(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(cifar10, "_check_reachable", lambda host: None)  # mocked data needs no network
    config = ml_collections.ConfigDict(dict(data_dir="", tfds_data_dir="", limit=0))
    with tfds.testing.mock_data(num_examples=12):
        images, labels = cifar10.load_split(config, "train")
    assert images.shape == (12, 32, 32, 3) and images.dtype == np.uint8
    assert labels.min() >= 0 and labels.max() <= 9


def test_tfds_without_network_fails_at_once_with_the_offline_hint(tmp_path, monkeypatch):
    def unreachable(host):
        raise ConnectionError(f"{host} is unreachable (no route)")

    monkeypatch.setattr(cifar10, "_check_reachable", unreachable)
    with pytest.raises(ValueError, match="unreachable.*pass --data_dir PATH to cifar-10-binary.tar.gz"):
        cifar10.load_tfds("test", str(tmp_path / "tfds"))
