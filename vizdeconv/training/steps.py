"""Compiled training and evaluation steps, written once for any tf.distribute strategy.

Several optimizer steps run inside one `tf.function` call (a `tf.range` loop over the dataset
iterator), so the Python loop is entered only to log, evaluate or checkpoint.
"""

import tensorflow as tf

from vizdeconv.nn.convnet import ConvNet
from vizdeconv.training import losses

SUMS = ("loss", "cross_entropy", "weight_penalty", "correct", "examples")


def make_train_steps(
    model: ConvNet,
    optimizer,
    strategy: tf.distribute.Strategy,
    loss_config,
    global_batch_size: int,
    compute_dtype=tf.float32,
):
    """Returns `train_steps(iterator, num_steps) -> dict of float32 scalars` over those steps.

    The sums (loss, cross_entropy, weight_penalty, correct, examples) are reduced over replicas;
    divide loss terms by num_steps for per-step means and correct by examples for accuracy.
    `weights_finite` is 1.0 when every weight is finite after the last step.
    """
    replicas = strategy.num_replicas_in_sync

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, compute_dtype, training=True)
            terms = losses.objective(
                logits,
                labels,
                model.kernels,
                loss_config.reduction,
                loss_config.weight_decay,
                global_batch_size,
                replicas,
                loss_config.get("label_smoothing", 0.0),
            )
        gradients = tape.gradient(terms["loss"], model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        correct = tf.reduce_sum(
            tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), tf.cast(labels, tf.int32)), tf.float32)
        )
        return dict(terms, correct=correct, examples=tf.cast(tf.shape(labels)[0], tf.float32))

    @tf.function
    def train_steps(iterator, num_steps):
        totals = {name: tf.constant(0.0) for name in SUMS}
        for _ in tf.range(num_steps):
            images, labels = next(iterator)
            per_replica = strategy.run(replica_step, args=(images, labels))
            totals = {
                name: totals[name] + strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica[name], axis=None)
                for name in SUMS
            }
        # The last update can overflow the weights even when every loss it saw was finite.
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in model.trainable_variables])
        return dict(totals, weights_finite=tf.cast(finite, tf.float32))

    return train_steps


def make_eval_step(model: ConvNet, strategy: tf.distribute.Strategy, compute_dtype=tf.float32):
    """Returns `eval_step(images, labels) -> (correct, examples)` float32, reduced over replicas."""

    def replica_step(images, labels):
        predictions = tf.argmax(model(images, compute_dtype), 1, output_type=tf.int32)
        correct = tf.reduce_sum(tf.cast(tf.equal(predictions, tf.cast(labels, tf.int32)), tf.float32))
        return correct, tf.cast(tf.shape(labels)[0], tf.float32)

    @tf.function
    def eval_step(images, labels):
        correct, examples = strategy.run(replica_step, args=(images, labels))
        return (
            strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.SUM, examples, axis=None),
        )

    return eval_step


def evaluate(eval_step, distributed_dataset) -> tuple[float, int]:
    """Accuracy over a whole (distributed) dataset and the number of examples it held."""
    correct = examples = 0.0
    for images, labels in distributed_dataset:
        batch_correct, batch_examples = eval_step(images, labels)
        correct += float(batch_correct)
        examples += float(batch_examples)
    return correct / max(examples, 1.0), int(examples)
