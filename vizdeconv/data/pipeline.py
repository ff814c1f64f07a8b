"""The trainer's tf.data pipelines: training batches that are a pure function of (seed, step), so resuming
at step k gives exactly the batches an uninterrupted run would have seen without saving any iterator state,
and the evaluation pass, each split across tf.distribute replicas when asked.
"""

import numpy as np
import tensorflow as tf

from vizdeconv.nn.preprocess import augmentation_draws, crop_flip_standardize, preprocess_eval


def _places(step, batch_size: int, num_examples: int):
    """(epoch [B], place within it [B]) int64 of each example of batch `step`."""
    positions = tf.cast(step, tf.int64) * batch_size + tf.range(batch_size, dtype=tf.int64)
    return positions // num_examples, positions % num_examples


def batch_indices(step, batch_size: int, num_examples: int, seed: int):
    """Example indices of training batch `step`: epoch-wise permutations seeded by (seed, epoch).

    Returns [batch_size] int64; every example appears once per epoch.
    """
    epochs, within = _places(step, batch_size, num_examples)
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


FLIPS = ("random", "alternating")


def first_sides(num_examples: int, seed: int):
    """[num_examples] bool: each example's side in its first epoch under the alternating flip (random)."""
    return tf.random.stateless_uniform([num_examples], tf.stack([tf.cast(seed, tf.int64), -1])) < 0.5


def alternating_flips(index, step, batch_size: int, first):
    """[B] bool: whether each example of batch `step` (its indices `index` [B]) is mirrored under the
    derandomized flip (Jordan 2024, airbench): its side `first` [num_examples] (`first_sides`) in its first
    epoch, the other side in the next, and so on, so that every two epochs show each image once each way."""
    epochs, _ = _places(step, batch_size, int(first.shape[0]))
    return tf.math.logical_xor(tf.gather(first, index), tf.equal(epochs % 2, 1))


def reflect_pad(images: np.ndarray, pad: int) -> np.ndarray:
    """[N, H, W, C] -> [N, H + 2 pad, W + 2 pad, C], mirrored at the borders (the edge pixel not repeated),
    so that a random crop of H x W translates each image by up to `pad` pixels either way."""
    if not pad:
        return images
    if pad >= min(images.shape[1], images.shape[2]):
        raise ValueError(f"data.translate must be smaller than the images' side, got {pad}")
    return np.pad(images, [(0, 0), (pad, pad), (pad, pad), (0, 0)], mode="reflect")


# 10 parameters: each is part of the identity (seed, step) -> batch that resuming relies on.
def train_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    seed: int,
    start_step: int,
    end_step: int,
    size: int = 24,
    input_context: tf.distribute.InputContext | None = None,
    flip: str = "random",
    translate: int = 0,
    statistics=None,
) -> tf.data.Dataset:
    """Batches for steps start_step..end_step-1: (images [B, size, size, 3] f32, labels [B] int32).

    With an `input_context` (tf.distribute) the pipeline yields, for each step, its replicas' slices
    of the same global batch, in replica order, so any number of replicas trains on exactly the
    examples and augmentations one device would. `flip` is "random" (each batch draws each image's side)
    or "alternating" (`alternating_flips`). `translate` pads the images by that many mirrored pixels
    (`reflect_pad`) before the random crop of `size`, e.g. 2 with size 32: airbench's translation by up to
    2 pixels. `statistics` (mean, deviation per channel) normalizes by the data set instead of per image
    (`preprocess.standardize`).
    """
    if flip not in FLIPS:
        raise ValueError(f"data.flip must be one of {', '.join(FLIPS)}, got {flip!r}")
    if len(images) < batch_size:
        raise ValueError(f"the training split has {len(images)} images, fewer than one batch of {batch_size}")
    parts, local, first = _parts(input_context)
    if batch_size % parts:
        raise ValueError(f"batch_size {batch_size} must be divisible by the {parts} replicas")
    per_part = batch_size // parts
    images_t, labels_t = tf.constant(reflect_pad(images, translate)), tf.constant(labels)
    sides = first_sides(len(images), seed) if flip == "alternating" else None  # drawn once, not per batch

    def make_part(element):
        step = start_step + element // local
        begin = (first + element % local) * per_part
        indices = batch_indices(step, batch_size, len(images), seed)
        index = indices[begin : begin + per_part]
        offsets, flips = augmentation_draws(
            tf.stack([tf.cast(seed, tf.int64), step]), batch_size, int(images_t.shape[1]), size
        )
        if flip == "alternating":
            flips = alternating_flips(indices, step, batch_size, sides)[:, None]
        batch = crop_flip_standardize(
            tf.gather(images_t, index),
            offsets[begin : begin + per_part],
            flips[begin : begin + per_part],
            size,
            statistics,
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
    statistics=None,
) -> tf.data.Dataset:
    """The whole split once, in order: (images [b, size, size, 3] f32, labels [b]).

    `labels` may be any per-image values (the explorer passes image ids). `preprocess` replaces the
    central crop and standardization (uint8 batch -> model inputs), e.g. for a Keras model; `statistics`
    normalizes by the data set's (mean, deviation) instead of per image.

    With an `input_context` each batch is cut into one near-equal slice per replica (possibly empty
    for a short last batch), and this pipeline yields its replicas' slices.
    """
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)
    return split_batches(dataset, input_context, preprocess or (lambda x: preprocess_eval(x, size, statistics)))


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
