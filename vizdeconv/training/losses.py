"""The reference objective: summed cross-entropy plus sum of l2_loss over the conv kernels."""

import tensorflow as tf

from vizdeconv.config import REDUCTIONS


def weight_penalty(kernels) -> tf.Tensor:
    """sum(l2_loss(W)) = sum(W**2) / 2 over the kernels (and, where asked, the normalizations' offsets; never
    the conv biases), float32 scalar."""
    return tf.add_n([tf.nn.l2_loss(tf.cast(kernel, tf.float32)) for kernel in kernels])


# 8 parameters: the reference objective's terms as one replica computes them (its config is split into tensors here).
def objective(
    logits,
    labels,
    kernels,
    reduction: str = "sum",
    weight_decay: float = 1.0,
    global_batch_size: int | None = None,
    num_replicas: int = 1,
    label_smoothing: float = 0.0,
) -> dict[str, tf.Tensor]:
    """The training loss of one (replica's share of a) batch.

    Under tf.distribute the gradients of all replicas are summed, so each replica contributes its own
    examples' cross-entropy and 1/num_replicas of the weight penalty: the sum is the reference
    objective of the global batch, whatever the number of replicas.

    Args:
      logits: [B, classes] float32; labels: [B] int.
      kernels: the variables to penalize (conv kernels, and batch normalization offsets where asked).
      reduction: 'sum' (reference) or 'mean' cross-entropy over the global batch.
      global_batch_size: batch size across replicas, for 'mean' (defaults to B).
      num_replicas: replicas whose gradients are summed.
      label_smoothing: the target's mass spread uniformly over the classes (0: the one-hot label).
    Returns:
      dict of float32 scalars: loss (what to differentiate), cross_entropy, weight_penalty.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"loss.reduction must be one of {REDUCTIONS}, got {reduction!r}")
    logits = tf.cast(logits, tf.float32)
    if label_smoothing:
        classes = tf.shape(logits)[-1]
        target = tf.one_hot(tf.cast(labels, tf.int32), classes) * (1 - label_smoothing)
        target += label_smoothing / tf.cast(classes, tf.float32)
        per_example = tf.nn.softmax_cross_entropy_with_logits(labels=target, logits=logits)
    else:
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=logits)
    cross_entropy = tf.reduce_sum(per_example)
    if reduction == "mean":
        cross_entropy /= tf.cast(global_batch_size or tf.shape(per_example)[0], tf.float32)
    penalty = weight_decay * weight_penalty(kernels) / num_replicas
    return {"loss": cross_entropy + penalty, "cross_entropy": cross_entropy, "weight_penalty": penalty}
