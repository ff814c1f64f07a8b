"""The CIFAR-10 data set: its official binary format (tarball, its folder, or the extracted files), or
TensorFlow Datasets' copy, whole splits in memory as `images [N, 32, 32, 3] uint8, labels [N] int32`
(CIFAR-10 is 180 MB), validated once, so a corrupt file fails before training starts.
"""

import os
import socket
import tarfile

import numpy as np

RECORD_BYTES = 1 + 32 * 32 * 3
TARBALL = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"
SPLIT_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
CIFAR_HOST = "www.cs.toronto.edu"  # where TensorFlow Datasets downloads CIFAR-10 from
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def decode_records(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Decodes fixed-length CIFAR-10 records (label byte, then R, G, B planes of 32x32, row-major).

    Args:
      raw: the bytes of one `.bin` file.
      source: the file's name, for error messages.
    Returns:
      images [N, 32, 32, 3] uint8, labels [N] int32.
    Raises:
      ValueError: the size is not a multiple of 3073 bytes, or a label is outside 0..9.
    """
    if len(raw) == 0 or len(raw) % RECORD_BYTES:
        raise ValueError(
            f"{source}: {len(raw)} bytes is not a whole number of {RECORD_BYTES}-byte "
            "CIFAR-10 records; the file is truncated or not CIFAR-10 binary data"
        )
    records = np.frombuffer(raw, np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int32)
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise ValueError(f"{source}: record {bad[0]} has label {labels[bad[0]]}, outside 0..9; the file is corrupt")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _locate(path: str) -> tuple[str, str]:
    """('tar', tarball) or ('dir', folder holding the .bin files) for a user-given path."""
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"data path {path} does not exist; pass --data_dir pointing at "
            f"{TARBALL}, a folder holding it, or its extracted {FOLDER}/"
        )
    if os.path.isfile(path):
        return "tar", path
    if os.path.isdir(os.path.join(path, FOLDER)):
        return "dir", os.path.join(path, FOLDER)
    if os.path.exists(os.path.join(path, "test_batch.bin")):
        return "dir", path
    if os.path.isfile(os.path.join(path, TARBALL)):
        return "tar", os.path.join(path, TARBALL)
    raise FileNotFoundError(f"{path} holds neither {TARBALL} nor {FOLDER}/ nor CIFAR-10 .bin files")


def _read_tar(tarball: str, names: list[str]) -> dict[str, bytes]:
    try:
        with tarfile.open(tarball) as archive:
            members = {
                os.path.basename(m.name): m
                for m in archive.getmembers()
                if m.isfile() and os.path.dirname(m.name).endswith(FOLDER)
            }
            missing = [name for name in names if name not in members]
            if missing:
                raise ValueError(
                    f"{tarball}: the tarball lacks {FOLDER}/{missing[0]}; it is not the CIFAR-10 binary distribution"
                )
            return {name: archive.extractfile(members[name]).read() for name in names}
    except (tarfile.TarError, EOFError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        # tarfile's own message lists each compression it tried, over several lines
        why = str(error).splitlines()[0].rstrip(":") if str(error) else type(error).__name__
        raise ValueError(f"{tarball}: not a readable tar.gz archive ({why})") from None


def _read_dir(folder: str, names: list[str]) -> dict[str, bytes]:
    contents = {}
    for name in names:
        file = os.path.join(folder, name)
        if not os.path.isfile(file):
            raise FileNotFoundError(f"{file} is missing; {FOLDER}/ must hold data_batch_1..5.bin and test_batch.bin")
        with open(file, "rb") as handle:
            contents[name] = handle.read()
    return contents


def load_binary(path: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Loads a split from the CIFAR-10 binary distribution (tarball, its folder, or extracted).

    Returns:
      images [N, 32, 32, 3] uint8, labels [N] int32 (N = 50000 train, 10000 test).
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
    kind, location = _locate(path)
    names = SPLIT_FILES[split]
    raw = _read_tar(location, names) if kind == "tar" else _read_dir(location, names)
    parts = [decode_records(raw[name], os.path.join(location, name)) for name in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_tfds(split: str, data_dir: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Loads a split of TensorFlow Datasets' `cifar10` (downloaded once into its data dir)."""
    import tensorflow_datasets as tfds  # imported lazily: it is slow and only this path needs it

    try:
        builder = tfds.builder("cifar10", data_dir=data_dir or None)
        if not builder.is_prepared():
            _check_reachable(CIFAR_HOST)  # tfds would retry for minutes before giving up
        dataset = tfds.load("cifar10", split=split, data_dir=data_dir or None, as_supervised=True)
        batches = list(tfds.as_numpy(dataset.batch(10000)))
        images = np.concatenate([images for images, _ in batches])
        labels = np.concatenate([labels for _, labels in batches])
    except Exception as error:  # tfds raises many kinds: network, checksum, missing files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"could not load cifar10 from TensorFlow Datasets ({first_line}); "
            f"without internet, pass --data_dir PATH to {TARBALL}"
        ) from None
    return images.astype(np.uint8), labels.astype(np.int32)


def _check_reachable(host: str, timeout: float = 10.0) -> None:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as error:
        raise ConnectionError(f"{host} is unreachable ({error})") from None


def load_split(data_config, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The split a data config asks for: the binary files when `data_dir` is set, else tfds."""
    if data_config.data_dir:
        images, labels = load_binary(data_config.data_dir, split)
    else:
        images, labels = load_tfds(split, data_config.tfds_data_dir)
    if split == "train" and data_config.get("limit", 0):
        images, labels = images[: data_config.limit], labels[: data_config.limit]
    return images, labels


def is_cifar_binary(path: str) -> bool:
    """Whether `path` holds the CIFAR-10 binary distribution (tarball, its folder, or extracted)."""
    try:
        _locate(path)
    except FileNotFoundError:
        return False
    return True


def to_gray(images: np.ndarray) -> np.ndarray:
    """[N, H, W, 3] uint8 -> [N, H, W, 1] uint8 luma (ITU-R 601), for one-channel models."""
    gray = np.round(images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    return gray.astype(np.uint8)[..., None]
