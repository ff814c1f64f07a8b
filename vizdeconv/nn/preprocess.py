"""How stored pixels become model inputs (and pictures a person sees) for the explorer and analyses.

A run of the reference trainer takes the central crop, standardized per image (or, with the run's
`data.normalize = "dataset"`, each channel by the training split's mean and deviation, airbench's: `for_run`).
A Keras model takes its
own input size; `--preprocess` says how pixels [0, 255] become its inputs when the model does not
rescale them itself (a `Rescaling` or `Normalization` layer): `auto` picks `raw` for such a model and
`standardize` otherwise.
"""

import numpy as np
import tensorflow as tf


def standardize(images, statistics=None):
    """[N, H, W, 3] pixels 0..255 (any dtype) -> float32 model inputs: per-image standardization to zero mean
    and unit variance, or, with `statistics` (mean [C], deviation [C] of the pixels in 0..1), each channel's
    (x / 255 - mean) / deviation, which keeps an image's brightness and contrast."""
    x = tf.cast(images, tf.float32)
    if statistics is None:
        return tf.image.per_image_standardization(x)
    mean, deviation = (tf.constant(v, tf.float32) for v in statistics)
    return (x / 255.0 - mean) / deviation


NORMALIZATIONS = ("image", "dataset")


def run_statistics(data_config):
    """(mean, deviation) per channel that a run's `data` config normalizes by, or None (per image)."""
    normalize = data_config.get("normalize", "image")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"data.normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
    if normalize == "image":
        return None
    return tuple(float(v) for v in data_config.mean), tuple(float(v) for v in data_config.std)


def for_run(data_config) -> "Preprocess":
    """The Preprocess of a trainer's run: its central crop, normalized as it trained (`run_statistics`)."""
    statistics = run_statistics(data_config)
    size = (data_config.image_size,) * 2
    return Preprocess(size, "standardize") if statistics is None else Preprocess(size, "dataset", statistics=statistics)


def central_crop(images, size: int = 24):
    """[N, 32, 32, 3] -> [N, size, size, 3], the central window."""
    offset = (int(images.shape[1]) - size) // 2
    return images[:, offset : offset + size, offset : offset + size, :]


def preprocess_eval(images, size: int = 24, statistics=None):
    """Evaluation preprocessing: central crop and `standardize` -> [N, size, size, 3] f32."""
    return standardize(central_crop(images, size), statistics)


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


def crop_flip_standardize(images, offsets, flips, size: int = 24, statistics=None):
    """[B, 32, 32, 3] uint8 -> [B, size, size, 3] float32: crop at offsets, mirror where flips, `standardize`."""
    steps = tf.range(size)
    rows = offsets[:, :1] + steps
    cols = offsets[:, 1:] + tf.where(flips, size - 1 - steps, steps)
    crops = tf.gather(tf.gather(images, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    return standardize(crops, statistics)


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


CHOICES = ("auto", "raw", "unit", "symmetric", "standardize", "family")


class Preprocess:
    """Pixels -> model inputs and display pictures, for one model input size.

    Args:
      size: (height, width) the model takes; larger images are center-cropped, smaller ones refused.
      scaling: one of CHOICES other than `auto`: `raw` 0..255, `unit` 0..1, `symmetric` -1..1,
        `standardize` per-image zero mean and unit variance (the reference trainer's), `family` a
        keras.applications family's own `preprocess_input` (given as `function`); and, for a trainer's run
        only (`for_run`), `dataset`: each channel by the training split's `statistics`.
      function: float pixels 0..255 [N, h, w, C] -> model inputs, for `family`.
      statistics: (mean [C], deviation [C]) of pixels in 0..1, for `dataset`.
    """

    def __init__(self, size, scaling: str = "standardize", function=None, statistics=None):
        if scaling == "dataset" and statistics is None:
            raise ValueError("dataset normalization needs the training split's (mean, deviation)")
        if scaling not in CHOICES[1:] + ("dataset",):
            raise ValueError(f"--preprocess must be one of {', '.join(CHOICES)}, got {scaling!r}")
        if scaling == "family" and function is None:
            raise ValueError("--preprocess family needs a keras.applications model (--model applications:NAME)")
        self.size = (int(size[0]), int(size[1]))
        self.scaling, self.function, self.statistics = scaling, function, statistics

    def crop(self, images: np.ndarray) -> np.ndarray:
        """[N, H, W, C] -> [N, h, w, C], the central window the model sees."""
        height, width = images.shape[1:3]
        if height < self.size[0] or width < self.size[1]:
            raise ValueError(
                f"images are {height}x{width}, smaller than the model's input {self.size[0]}x{self.size[1]}: give "
                "larger images (a folder's are resized to the input), or a model for this size (applications:NAME:SIZE)"
            )
        top, left = (height - self.size[0]) // 2, (width - self.size[1]) // 2
        return images[:, top : top + self.size[0], left : left + self.size[1]]

    def inputs(self, images: np.ndarray) -> tf.Tensor:
        """uint8 [N, H, W, C] -> [N, h, w, C] float32 model inputs."""
        return self.scale(tf.cast(self.crop(images), tf.float32))

    def from_unit(self, pixels) -> tf.Tensor:
        """[N, h, w, C] float pixels in [0, 1] -> model inputs, differentiable (feature visualization
        optimizes pixels a person sees and passes them through here)."""
        return self.scale(tf.convert_to_tensor(pixels, tf.float32) * 255.0)

    def scale(self, x) -> tf.Tensor:
        """[N, h, w, C] float32 pixels 0..255 -> model inputs."""
        if self.scaling == "unit":
            return x / 255.0
        if self.scaling == "symmetric":
            return x / 127.5 - 1.0
        if self.scaling == "standardize":
            return tf.image.per_image_standardization(x)
        if self.scaling == "dataset":
            return standardize(x, self.statistics)
        if self.scaling == "family":
            return tf.convert_to_tensor(self.function(x), tf.float32)
        return x

    def pictures(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, C] -> [N, h, w, 3] float32 in [0, 1], what the model sees, for display."""
        pictures = self.crop(images).astype(np.float32) / 255.0
        return np.repeat(pictures, 3, axis=-1) if pictures.shape[-1] == 1 else pictures


def for_model(graph, scaling: str = "auto", family_function=None) -> Preprocess:
    """The Preprocess of a Keras model's Graph: `auto` is the family's own `preprocess_input` for a
    keras.applications model (`family_function`), `raw` where the model rescales its pixels, else
    `standardize`."""
    if scaling == "auto" and family_function is not None:
        scaling = "family"
    if scaling == "auto":
        rescales = any(
            op.kind == "affine" and op.source.split(" ")[0] in ("Rescaling", "Normalization") for op in graph.ops
        )
        scaling = "raw" if rescales else "standardize"
    return Preprocess(graph.input_shape[:2], scaling, family_function)
