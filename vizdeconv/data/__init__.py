"""Data: the CIFAR-10 binary format (`cifar10`), the trainer's tf.data pipelines (`pipeline`), and images streamed
from any source, folders, TFRecord files, TensorFlow Datasets or arrays (`sources`)."""
