"""Training the reference network: data, losses, optimizers, precision, tf.distribute, steps, the loop, run folders."""
