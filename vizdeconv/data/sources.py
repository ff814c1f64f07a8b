"""Image sources streamed with tf.data, for data sets of any size: an image folder, TFRecord files of
encoded images, a TensorFlow Datasets split, or images already in memory (CIFAR-10's binary files).

Every source numbers its images 0..count-1 in a fixed order (a folder's files sorted by path, TFRecord
records in file order, a TFDS split unshuffled): an image's id is its place in that order, so a result
names its images for good and `read(ids)` brings exactly those back. `elements(start, stop)` decodes the
images at places start..stop-1 in parallel; a file that cannot be decoded is left out of the stream (the
caller sees the gap in the ids and asks `why(id)`), so one bad file never stops a long scan.
"""

import glob
import hashlib
import os
import re

import numpy as np
import tensorflow as tf

from vizdeconv.data import cifar10

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# A decoded image above this many pixels would take hundreds of MB per parallel decode: JPEGs are
# scaled down while decoding (1/2, 1/4, 1/8) to stay under it, other formats are skipped.
MAX_PIXELS = 1 << 26
TFDS_PREFIX = "tfds:"
TFRECORD_KEYS = ("image/encoded", "image", "image_raw", "encoded", "jpeg")
LABEL_KEYS = ("image/class/label", "label", "class")


def header_pixels(contents):
    """Width x height read from a PNG, GIF or BMP header (0 for other formats), without decoding."""

    def number(offset, length, little):
        raw = tf.cast(tf.io.decode_raw(tf.strings.substr(contents, offset, length), tf.uint8), tf.int64)
        weights = 256 ** tf.range(length, dtype=tf.int64)
        return tf.reduce_sum(raw * (weights if little else tf.reverse(weights, [0])))

    def bmp():
        height = number(22, 4, True)  # negative (two's complement) for top-down rows
        return number(18, 4, True) * tf.where(height >= 2**31, 2**32 - height, height)

    magic = tf.strings.substr(contents, 0, 4)
    long_enough = tf.strings.length(contents) >= 26
    png = long_enough & tf.equal(magic, b"\x89PNG")
    gif = long_enough & tf.equal(tf.strings.substr(magic, 0, 3), b"GIF")
    is_bmp = long_enough & tf.equal(tf.strings.substr(magic, 0, 2), b"BM")
    return tf.case(
        [
            (png, lambda: number(16, 4, False) * number(20, 4, False)),
            (gif, lambda: number(6, 2, True) * number(8, 2, True)),
            (is_bmp, bmp),
        ],
        default=lambda: tf.constant(0, tf.int64),
    )


def decode(contents, size, channels: int = 3):
    """Encoded image bytes (JPEG, PNG, BMP, GIF's first frame, WebP; grayscale, RGBA or 16-bit converted)
    -> [height, width, channels] uint8: the largest central window of the model's aspect ratio, resized
    to `size` = (height, width). Raises InvalidArgumentError for bytes that are not a decodable image."""
    height, width = int(size[0]), int(size[1])

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(contents), tf.int64)
        short, pixels = tf.minimum(shape[0], shape[1]), shape[0] * shape[1]
        # Halvings done by the decoder itself (DCT scaling): as many as keep the model's pixels, and at
        # least as many as bring a huge image under MAX_PIXELS.
        keeps = sum(tf.cast(short // ratio >= max(height, width), tf.int32) for ratio in (2, 4, 8))
        needs = sum(tf.cast(pixels // (ratio * ratio) > MAX_PIXELS, tf.int32) for ratio in (1, 2, 4, 8))
        tf.debugging.assert_less(needs, 4, "image too large")
        branches = [lambda ratio=ratio: tf.io.decode_jpeg(contents, channels, ratio=ratio) for ratio in (1, 2, 4, 8)]
        return tf.switch_case(tf.maximum(keeps, needs), branches)

    def other():
        tf.debugging.assert_less_equal(header_pixels(contents), tf.constant(MAX_PIXELS, tf.int64), "image too large")
        return tf.io.decode_image(contents, channels, dtype=tf.uint8, expand_animations=False)

    image = tf.cond(tf.io.is_jpeg(contents), jpeg, other)
    image.set_shape([None, None, channels])
    return fit(image, (height, width))


def fit(image, size):
    """[h, w, C] uint8 -> [height, width, C] uint8: the largest central window of the target's aspect
    ratio (as `keras.utils.image_dataset_from_directory(crop_to_aspect_ratio=True)`), resized with
    antialiasing; an image already of that size is returned unchanged."""
    height, width = int(size[0]), int(size[1])
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    crop_h = tf.minimum(h, (w * height) // width)
    crop_w = tf.minimum(w, (h * width) // height)
    window = image[(h - crop_h) // 2 : (h - crop_h) // 2 + crop_h, (w - crop_w) // 2 : (w - crop_w) // 2 + crop_w]

    def resized():
        scaled = tf.image.resize(window, (height, width), antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(scaled), 0, 255), tf.uint8)

    same = tf.equal(crop_h, height) & tf.equal(crop_w, width)
    out = tf.cond(same, lambda: window, resized)
    out.set_shape([height, width, image.shape[-1]])
    return out


class Source:
    """A numbered set of images (see the module's docstring).

    Attributes:
      count: how many images; name: a one-line description; class_names: list or None.
      fingerprint: changes when the images or their order change (a resumed scan checks it).
    """

    count: int
    name: str
    class_names = None
    fingerprint: str = ""

    def encoded(self, start: int, stop: int) -> tf.data.Dataset:
        """(encoded bytes or uint8 image, id int64) of the images at places start..stop-1, in order."""
        raise NotImplementedError

    def _decode(self, item):
        return item

    def elements(self, start: int = 0, stop: int | None = None) -> tf.data.Dataset:
        """(image [H, W, C] uint8, id int64) of places start..stop-1, decoded in parallel, in order; images
        that cannot be decoded are left out (their ids are missing)."""
        stop = self.count if stop is None else stop
        dataset = self.encoded(start, stop).map(
            lambda item, i: (self._decode(item), i), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        return dataset.ignore_errors()

    def read(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """images [n, H, W, C] uint8 and labels [n] int32 of `ids` (in that order).

        Raises:
          ValueError: one of them cannot be decoded.
        """
        raise NotImplementedError

    def labels(self, ids) -> np.ndarray:
        """[n] int32 class of each id (-1: none)."""
        return self.read(ids)[1]

    def describe(self, image_id: int) -> str:
        """Where an image comes from: its path, or `<source>[id]`."""
        return f"{self.name}[{int(image_id)}]"

    def why(self, image_id: int) -> str:
        """Why an image cannot be read ('' if it can)."""
        try:
            self.read([image_id])
        except ValueError as error:
            return str(error)
        return ""

    def read_all(self, limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Every image (the first `limit`), the undecodable ones left out: [N, H, W, C] uint8, [N] int32."""
        stop = min(self.count, limit) if limit else self.count
        images, ids = [], []
        for batch, batch_ids in self.elements(0, stop).batch(256):
            images.append(batch.numpy())
            ids.append(batch_ids.numpy())
        if not images:
            raise ValueError(f"{self.name} holds no readable images")
        ids = np.concatenate(ids)
        return np.concatenate(images), self.labels(ids)

    def _decode_each(self, ids, fetch) -> tuple[np.ndarray, np.ndarray]:
        """images [n, H, W, C] uint8 and labels [n] of `ids`, where `fetch(id)` gives (encoded item, label).

        Raises:
          ValueError: an image cannot be decoded (naming where it is and why).
        """
        images, labels = [], []
        for image_id in np.asarray(ids, np.int64):
            item, label = fetch(int(image_id))
            try:
                images.append(self._decode(item).numpy())
            except tf.errors.OpError as error:
                raise ValueError(f"{self.describe(image_id)}: {first_error_line(error)}") from None
            labels.append(label)
        empty = np.zeros((0, *self.size, self.channels), np.uint8)
        return (np.stack(images) if images else empty), np.array(labels, np.int32)


def first_error_line(error) -> str:
    """The reason in a TensorFlow error, without its op and function names."""
    text = getattr(error, "message", None) or str(error)
    if "image too large" in text:
        return f"image too large (more than {MAX_PIXELS} pixels even scaled down)"
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\].*", "", text, flags=re.S)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:200] if lines else type(error).__name__


class ArraySource(Source):
    """Images already in memory: [N, H, W, C] uint8 and labels [N] (CIFAR-10's binary files)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, name: str, class_names=None):
        self.images, self.label_array = images, np.asarray(labels, np.int32)
        self.count, self.name, self.class_names = len(images), name, class_names
        digest = hashlib.sha1(images[: min(len(images), 64)].tobytes())
        self.fingerprint = f"{name}:{len(images)}:{digest.hexdigest()[:16]}"

    def encoded(self, start, stop):
        return tf.data.Dataset.from_tensor_slices((self.images[start:stop], np.arange(start, stop, dtype=np.int64)))

    def read(self, ids):
        ids = np.asarray(ids, np.int64)
        return self.images[ids], self.label_array[ids]

    def labels(self, ids):
        return self.label_array[np.asarray(ids, np.int64)]

    def read_all(self, limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
        # Already in memory, and every image decodes: the arrays themselves, not a pass through tf.data.
        stop = min(self.count, limit) if limit else self.count
        if not stop:
            raise ValueError(f"{self.name} holds no readable images")
        return self.images[:stop], self.label_array[:stop]


class FolderSource(Source):
    """Every image file under `root` (any nesting; JPEG, PNG, BMP, GIF, WebP by extension), sorted by path.
    Images in top-level subfolders get the subfolder's class (sorted names); loose files get -1."""

    def __init__(self, root: str, size, channels: int = 3):
        self.root, self.size, self.channels = root, tuple(int(s) for s in size), int(channels)
        files = []
        for folder, subfolders, names in os.walk(root, followlinks=True):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            files += [
                os.path.relpath(os.path.join(folder, n), root)
                for n in names
                if not n.startswith(".") and n.lower().endswith(EXTENSIONS)
            ]
        if not files:
            raise ValueError(f"{root} holds no image files ({', '.join(EXTENSIONS)})")
        files.sort()
        self.files = files
        tops = [f.split(os.sep)[0] if os.sep in f else None for f in files]
        self.class_names = sorted({t for t in tops if t is not None}) or None
        index = {name: i for i, name in enumerate(self.class_names or [])}
        self.label_array = np.array([index.get(t, -1) for t in tops], np.int32)
        self.count, self.name = len(files), root
        self.fingerprint = f"folder:{len(files)}:{hashlib.sha1(chr(0).join(files).encode()).hexdigest()[:16]}"

    def _paths(self, positions):
        return [os.path.join(self.root, self.files[int(i)]) for i in positions]

    def encoded(self, start, stop):
        paths = tf.data.Dataset.from_tensor_slices(self._paths(range(start, stop)) or tf.zeros([0], tf.string))
        ids = tf.data.Dataset.range(start, stop)
        return tf.data.Dataset.zip((paths, ids))

    def _decode(self, path):
        return decode(tf.io.read_file(path), self.size, self.channels)

    def read(self, ids):
        paths = self._paths(ids)
        shape = (0, *self.size, self.channels)
        if not paths:
            return np.zeros(shape, np.uint8), self.labels(ids)
        decoded = tf.data.Dataset.from_tensor_slices(paths).map(
            self._decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        try:
            return next(iter(decoded.batch(len(paths)))).numpy(), self.labels(ids)
        except tf.errors.OpError:
            for path in paths:  # which one, and why
                try:
                    self._decode(tf.constant(path))
                except (tf.errors.OpError, OSError) as error:
                    raise ValueError(f"{path}: {first_error_line(error)}") from None
            raise

    def labels(self, ids):
        return self.label_array[np.asarray(ids, np.int64)]

    def describe(self, image_id):
        return self._paths([image_id])[0]


def _tfrecord_files(spec: str) -> list[str]:
    if os.path.isdir(spec):
        return sorted(f for f in glob.glob(os.path.join(spec, "*")) if ".tfrecord" in os.path.basename(f))
    return sorted(glob.glob(spec))


def is_tfrecord(spec: str) -> bool:
    """Whether a --data_dir names TFRecord files (a file, a glob, or a folder of `*.tfrecord*`)."""
    if os.path.isdir(spec):
        return bool(_tfrecord_files(spec)) and not any(
            n.lower().endswith(EXTENSIONS) for _, _, names in os.walk(spec) for n in names
        )
    return ".tfrecord" in os.path.basename(spec) and bool(_tfrecord_files(spec))


class TFRecordSource(Source):
    """tf.train.Example records holding an encoded image (`image/encoded` as ImageNet's TFRecords, or
    `image`) and optionally an int64 label, in sorted file order."""

    def __init__(self, spec: str, size, channels: int = 3):
        self.files = _tfrecord_files(spec)
        if not self.files:
            raise FileNotFoundError(f"no TFRecord files match {spec}")
        self.size, self.channels, self.name = tuple(int(s) for s in size), int(channels), spec
        try:
            first = next(iter(tf.data.TFRecordDataset(self.files[0]).take(1)), None)
            if first is None:
                raise ValueError(f"{self.files[0]} holds no records")
            features = tf.train.Example.FromString(first.numpy()).features.feature
            counts = [int(tf.data.TFRecordDataset(f).reduce(np.int64(0), lambda c, _: c + 1)) for f in self.files]
        except (tf.errors.OpError, Exception) as error:  # protobuf raises its own DecodeError
            if isinstance(error, ValueError):
                raise
            raise ValueError(f"{spec}: not TFRecord files of tf.train.Example ({first_error_line(error)})") from None
        self.image_key = next((k for k in TFRECORD_KEYS if features[k].bytes_list.value), None) if features else None
        if self.image_key is None:
            raise ValueError(f"{self.files[0]}: no encoded image among the features {sorted(features)}")
        self.label_key = next((k for k in LABEL_KEYS if features[k].int64_list.value), None)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.count = int(self.offsets[-1])
        names = "|".join(f"{os.path.basename(f)}:{c}" for f, c in zip(self.files, counts))
        self.fingerprint = f"tfrecord:{self.count}:{hashlib.sha1(names.encode()).hexdigest()[:16]}"

    def _records(self, start, stop):
        first = int(np.searchsorted(self.offsets, start, side="right") - 1)
        records = tf.data.TFRecordDataset(self.files[first:]).skip(start - int(self.offsets[first]))
        return tf.data.Dataset.zip((records.take(stop - start), tf.data.Dataset.range(start, stop)))

    def encoded(self, start, stop):
        return self._records(start, stop)

    def _parse(self, record):
        spec = {self.image_key: tf.io.FixedLenFeature([], tf.string)}
        if self.label_key:
            spec[self.label_key] = tf.io.FixedLenFeature([], tf.int64, default_value=-1)
        return tf.io.parse_single_example(record, spec)

    def _decode(self, record):
        return decode(self._parse(record)[self.image_key], self.size, self.channels)

    def read(self, ids):
        def fetch(image_id):
            record = next(iter(self._records(image_id, image_id + 1)))[0]
            return record, int(self._parse(record)[self.label_key]) if self.label_key else -1

        return self._decode_each(ids, fetch)

    def describe(self, image_id):
        file = int(np.searchsorted(self.offsets, image_id, side="right") - 1)
        return f"{self.files[file]}[{int(image_id - self.offsets[file])}]"


class TFDSSource(Source):
    """A split of a prepared TensorFlow Datasets data set (never downloaded: `data_dir` must hold it),
    its images still encoded until decoded here, so bad ones are skipped like files."""

    def __init__(self, name: str, split: str, size, channels: int = 3, data_dir: str | None = None):
        import tensorflow_datasets as tfds  # slow to import; only this source needs it

        try:
            self.builder = tfds.builder(name, data_dir=data_dir or None)
            info = self.builder.info
            if not self.builder.is_prepared():
                raise ValueError("not prepared")
            self.count = int(info.splits[split].num_examples)
        except Exception as error:  # tfds raises many kinds for a missing data set
            raise ValueError(
                f"TensorFlow Datasets {name!r} split {split!r} is not prepared in "
                f"{data_dir or 'the default data dir'} ({first_error_line(error)}); pass --tfds_data_dir"
            ) from None
        features = info.features
        self.image_key = next((k for k, f in features.items() if isinstance(f, tfds.features.Image)), None)
        if self.image_key is None:
            raise ValueError(f"TensorFlow Datasets {name!r} has no image feature")
        label = next((k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)), None)
        self.label_key, self.class_names = label, (list(features[label].names) if label else None)
        self.split, self.size, self.channels = split, tuple(int(s) for s in size), int(channels)
        self.name, self.fingerprint = f"{TFDS_PREFIX}{name}/{split}", f"tfds:{name}:{split}:{self.count}"

    def _dataset(self, start, stop):
        import tensorflow_datasets as tfds

        return self.builder.as_dataset(
            split=f"{self.split}[{start}:{stop}]",
            shuffle_files=False,
            decoders={self.image_key: tfds.decode.SkipDecoding()},
        )

    def encoded(self, start, stop):
        return tf.data.Dataset.zip((self._dataset(start, stop), tf.data.Dataset.range(start, stop)))

    def _decode(self, example):
        return decode(example[self.image_key], self.size, self.channels)

    def read(self, ids):
        def fetch(image_id):
            example = next(iter(self._dataset(image_id, image_id + 1)))
            return example, int(example[self.label_key]) if self.label_key else -1

        return self._decode_each(ids, fetch)


def open_source(spec: str, split: str, input_shape, tfds_data_dir: str | None = None) -> Source:
    """The source a `--data_dir` names, its images fitted to a model's input [H, W, C]:
    `tfds:NAME` (a prepared TensorFlow Datasets set, in `tfds_data_dir`), CIFAR-10 binary data (kept at
    32x32; the model's preprocessing crops them), TFRecord files (a file, a glob or a folder of
    `*.tfrecord*`), or a folder of images (`<spec>/<split>/` when that exists).

    Raises:
      FileNotFoundError / ValueError: nothing readable there.
    """
    size, channels = tuple(input_shape[:2]), int(input_shape[-1])
    if spec.startswith(TFDS_PREFIX):
        return TFDSSource(spec[len(TFDS_PREFIX) :], split, size, channels, tfds_data_dir)
    path = os.path.expanduser(spec)
    if is_tfrecord(path):
        return TFRecordSource(path, size, channels)
    if cifar10.is_cifar_binary(path):
        images, labels = cifar10.load_binary(path, split)
        if channels == 1:
            images = cifar10.to_gray(images)
        return ArraySource(images, labels, f"{path} ({split})", list(cifar10.CLASS_NAMES))
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"data path {path} does not exist; pass CIFAR-10 binary data, a folder of images, TFRecord files "
            "or tfds:NAME"
        )
    folder = os.path.join(path, split) if os.path.isdir(os.path.join(path, split)) else path
    return FolderSource(folder, size, channels)


def for_config(data_config, split: str) -> Source:
    """The source of a run's `config.data` (CIFAR-10's binary files, or TensorFlow Datasets' copy), the whole
    split in memory: what the trainer trains and evaluates on and what a run's analyses read."""
    images, labels = cifar10.load_split(data_config, split)
    return ArraySource(images, labels, f"cifar10 {split}", list(cifar10.CLASS_NAMES))


def load_images(path: str, split: str, input_shape, limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images for a Keras model, in memory: CIFAR-10 binary data, a folder of images (class subfolders
    optional), TFRecord files or `tfds:NAME` (see `open_source`); files that cannot be decoded
    are left out. The explorer streams instead; this is for the analyses' few images.

    Args:
      input_shape: [H, W, C] of the model; other images are cropped to its aspect ratio and resized,
        CIFAR images are kept at 32x32.
      limit: only the first `limit` images (0: all).
    Returns:
      images [N, H, W, C] uint8, labels [N] int32.
    """
    return open_source(path, split, input_shape).read_all(limit)
