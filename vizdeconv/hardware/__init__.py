"""The machine: the CPU kind and oneDNN, decided before TensorFlow starts (`cpu`), float32 or mixed bfloat16
(`precision`), and tf.distribute strategies (`distribute`)."""
