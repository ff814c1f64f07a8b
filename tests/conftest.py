"""Shared fixtures: small synthetic CIFAR-10 binary files, so no test needs the network."""

import io
import os
import tarfile
import zlib

import numpy as np
import pytest

from vizdeconv.data import cifar10

REAL_CIFAR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "cifar10")


@pytest.fixture(autouse=True)
def _seeded(request):
    """Every test draws the same initial weights on every run (a seed from its own name): a test that
    passed once is not failed by the next draw of Keras's initializers on another machine."""
    import keras

    keras.utils.set_random_seed(zlib.crc32(request.node.nodeid.encode()))


def make_records(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, bytes]:
    """Random images [count, 32, 32, 3] uint8, labels, and their CIFAR-10 binary encoding."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    planes = images.transpose(0, 3, 1, 2).reshape(count, -1)  # R plane, then G, then B
    return images, labels, np.concatenate([labels[:, None], planes], axis=1).tobytes()


def write_cifar_folder(root, train_per_file: int = 16, test: int = 40) -> dict:
    """Writes <root>/cifar-10-batches-bin/ with five train files and one test file."""
    folder = os.path.join(root, cifar10.FOLDER)
    os.makedirs(folder, exist_ok=True)
    written = {}
    for index, name in enumerate(cifar10.SPLIT_FILES["train"] + cifar10.SPLIT_FILES["test"]):
        images, labels, raw = make_records(test if name == "test_batch.bin" else train_per_file, index)
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(raw)
        written[name] = (images, labels)
    return written


def write_tarball(path, files: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as archive:
        for name, raw in files.items():
            info = tarfile.TarInfo(f"{cifar10.FOLDER}/{name}")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return str(path)


@pytest.fixture
def cifar_folder(tmp_path):
    """(root folder, {file name: (images, labels)}) of a small synthetic CIFAR-10."""
    return str(tmp_path), write_cifar_folder(tmp_path)


@pytest.fixture(scope="session")
def cifar_session(tmp_path_factory):
    """A synthetic CIFAR-10 folder shared by the slower end-to-end tests."""
    root = tmp_path_factory.mktemp("cifar")
    write_cifar_folder(root, train_per_file=32, test=64)
    return str(root)


def real_cifar_or_skip() -> str:
    if not os.path.isfile(os.path.join(REAL_CIFAR, cifar10.TARBALL)):
        pytest.skip(f"real CIFAR-10 not found at {REAL_CIFAR}/{cifar10.TARBALL}")
    return REAL_CIFAR


@pytest.fixture(scope="session")
def trained_smoke_run(cifar_session, tmp_path_factory):
    """One short run of the smoke config on the synthetic data, shared by the tests that only read it
    (or write beside it, as the explorer does); a test that damages a run copies it first."""
    from tests.support.builders import small_config
    from vizdeconv.training.loop import train_and_evaluate

    run = str(tmp_path_factory.mktemp("shared") / "run")
    train_and_evaluate(small_config(cifar_session), run, log=lambda *_: None)
    return run
