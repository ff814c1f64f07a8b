"""ReLUs with the deconvnet and guided backward rules: autodiff through them is the independent truth
the projection engine is tested against."""

import tensorflow as tf


@tf.custom_gradient
def deconvnet_relu(x):
    return tf.nn.relu(x), lambda upstream: tf.nn.relu(upstream)


@tf.custom_gradient
def guided_relu(x):
    y = tf.nn.relu(x)
    return y, lambda upstream: tf.nn.relu(upstream) * tf.cast(y > 0, upstream.dtype)


RULES = {"deconvnet": deconvnet_relu, "guided": guided_relu}
