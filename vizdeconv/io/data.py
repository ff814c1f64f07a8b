"""CIFAR-10 as tf.data: TensorFlow Datasets by default, or the official binary tarball offline.

Both sources give the whole split in memory as `images [N, 32, 32, 3] uint8, labels [N] int32`
(CIFAR-10 is 180 MB), validated once, so a corrupt file fails before training starts. Training batches
are a pure function of (seed, step): resuming at step k gives exactly the batches an uninterrupted run
would have seen, without saving any iterator state.
"""

import os
import socket
import tarfile

import numpy as np
import tensorflow as tf

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
        raise ValueError(f"{tarball}: not a readable tar.gz archive ({error})") from None


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


def load_images(path: str, split: str, input_shape, limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images for a Keras model, in memory: CIFAR-10 binary data, a folder of images (class subfolders
    optional), TFRecord files or `tfds:NAME` (see `sources.open_source`); files that cannot be decoded
    are left out. The explorer streams instead (`sources`); this is for the analyses' few images.

    Args:
      input_shape: [H, W, C] of the model; other images are cropped to its aspect ratio and resized,
        CIFAR images are kept at 32x32.
      limit: only the first `limit` images (0: all).
    Returns:
      images [N, H, W, C] uint8, labels [N] int32.
    """
    from vizdeconv.io import sources

    return sources.open_source(path, split, input_shape).read_all(limit)


def standardize(images):
    """Per-image standardization of [N, H, W, 3] (any dtype) to zero mean and unit variance, float32."""
    return tf.image.per_image_standardization(tf.cast(images, tf.float32))


def central_crop(images, size: int = 24):
    """[N, 32, 32, 3] -> [N, size, size, 3], the central window."""
    offset = (int(images.shape[1]) - size) // 2
    return images[:, offset : offset + size, offset : offset + size, :]


def preprocess_eval(images, size: int = 24):
    """Evaluation preprocessing: central crop and per-image standardization -> [N, size, size, 3] f32."""
    return standardize(central_crop(images, size))


def augmentation_draws(seed, batch_size, full: int = 32, size: int = 24):
    """The random choices of one training batch, drawn for the whole (global) batch.

    Args:
      seed: [2] int.
    Returns:
      offsets [B, 2] int32 (crop row and column), flips [B, 1] bool.
    """
    offsets = tf.random.stateless_uniform([batch_size, 2], seed, 0, full - size + 1, dtype=tf.int32)
    flips = tf.random.stateless_uniform([batch_size, 1], seed + 1) < 0.5
    return offsets, flips


def crop_flip_standardize(images, offsets, flips, size: int = 24):
    """[B, 32, 32, 3] uint8 -> [B, size, size, 3] float32: crop at offsets, mirror where flips."""
    steps = tf.range(size)
    rows = offsets[:, :1] + steps
    cols = offsets[:, 1:] + tf.where(flips, size - 1 - steps, steps)
    crops = tf.gather(tf.gather(images, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    return standardize(crops)


def augment(images, seed, size: int = 24):
    """Training preprocessing of a batch: random crop, random left-right flip, standardization.

    Args:
      images: [B, 32, 32, 3] uint8.
      seed: [2] int, makes the crop offsets and flips reproducible.
    Returns:
      [B, size, size, 3] float32.
    """
    offsets, flips = augmentation_draws(seed, tf.shape(images)[0], int(images.shape[1]), size)
    return crop_flip_standardize(images, offsets, flips, size)


def batch_indices(step, batch_size: int, num_examples: int, seed: int):
    """Example indices of training batch `step`: epoch-wise permutations seeded by (seed, epoch).

    Returns [batch_size] int64; every example appears once per epoch.
    """
    positions = tf.cast(step, tf.int64) * batch_size + tf.range(batch_size, dtype=tf.int64)
    epochs, within = positions // num_examples, positions % num_examples
    max_index = tf.constant(num_examples - 1, tf.int64)

    def permuted(epoch):
        key = tf.stack([tf.cast(seed, tf.int64), epoch])
        return tf.random.experimental.index_shuffle(within, key, max_index)

    # A batch no larger than the split spans at most two epochs.
    return tf.where(epochs == epochs[0], permuted(epochs[0]), permuted(epochs[0] + 1))


def _parts(input_context) -> tuple[int, int, int]:
    """(parts of each batch, parts this input pipeline makes, index of its first part)."""
    if input_context is None:
        return 1, 1, 0
    local = input_context.num_replicas_in_sync // input_context.num_input_pipelines
    return input_context.num_replicas_in_sync, local, input_context.input_pipeline_id * local


def train_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    seed: int,
    start_step: int,
    end_step: int,
    size: int = 24,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Batches for steps start_step..end_step-1: (images [B, size, size, 3] f32, labels [B] int32).

    With an `input_context` (tf.distribute) the pipeline yields, for each step, its replicas' slices
    of the same global batch, in replica order, so any number of replicas trains on exactly the
    examples and augmentations one device would.
    """
    if len(images) < batch_size:
        raise ValueError(f"the training split has {len(images)} images, fewer than one batch of {batch_size}")
    parts, local, first = _parts(input_context)
    if batch_size % parts:
        raise ValueError(f"batch_size {batch_size} must be divisible by the {parts} replicas")
    per_part = batch_size // parts
    images_t, labels_t = tf.constant(images), tf.constant(labels)

    def make_part(element):
        step = start_step + element // local
        begin = (first + element % local) * per_part
        index = batch_indices(step, batch_size, len(images), seed)[begin : begin + per_part]
        offsets, flips = augmentation_draws(
            tf.stack([tf.cast(seed, tf.int64), step]), batch_size, int(images.shape[1]), size
        )
        batch = crop_flip_standardize(
            tf.gather(images_t, index), offsets[begin : begin + per_part], flips[begin : begin + per_part], size
        )
        return batch, tf.gather(labels_t, index)

    return (
        tf.data.Dataset.range((end_step - start_step) * local)
        .map(make_part, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def eval_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    size: int = 24,
    input_context: tf.distribute.InputContext | None = None,
    preprocess=None,
) -> tf.data.Dataset:
    """The whole split once, in order: (images [b, size, size, 3] f32, labels [b]).

    `labels` may be any per-image values (the explorer passes image ids). `preprocess` replaces the
    central crop and standardization (uint8 batch -> model inputs), e.g. for a Keras model.

    With an `input_context` each batch is cut into one near-equal slice per replica (possibly empty
    for a short last batch), and this pipeline yields its replicas' slices.
    """
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)
    return split_batches(dataset, input_context, preprocess or (lambda x: preprocess_eval(x, size)))


def split_batches(dataset: tf.data.Dataset, input_context, transform) -> tf.data.Dataset:
    """Batches (x [b, ...], y [b]) -> (transform(x), y), or with an `input_context` (tf.distribute) each
    batch cut into one near-equal slice per replica (possibly empty for a short last batch), of which
    this pipeline yields its replicas' slices, in replica order."""
    parts, local, first = _parts(input_context)

    def slices(x, y):
        count = tf.shape(y)[0]
        bounds = [(first + i) * count // parts for i in range(local + 1)]
        return tf.data.Dataset.from_tensor_slices(
            (tf.stack([bounds[i] for i in range(local)]), tf.stack(bounds[1:]))
        ).map(lambda a, b: (transform(x[a:b]), y[a:b]))

    if input_context is None:
        dataset = dataset.map(lambda x, y: (transform(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.flat_map(slices)
    return dataset.prefetch(tf.data.AUTOTUNE)
