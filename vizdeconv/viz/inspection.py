"""Read a finished run back for notebooks: config, metrics, curves, filters, feature maps, predictions."""
import glob
import os

import numpy as np
import tensorflow as tf

from vizdeconv.training import data
from vizdeconv.deconv import engine
from vizdeconv.deconv.deconvnet import Deconvnet
from vizdeconv.training import rundir
from vizdeconv.viz import display
from vizdeconv.training.runs import load_run


class Run:
    """A run folder opened for inspection (latest checkpoint's weights).

    Args:
      path: the run folder; None opens the newest run under `logdir`.
    """

    def __init__(self, path: str | None = None, logdir: str = "logs"):
        self.path = path or rundir.newest_run(logdir)
        self.config, self.model = load_run(self.path)
        self.metrics = rundir.read_metrics(self.path) or {}

    def test_images(self, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The run's test split (its recorded data source): [N, 32, 32, 3] uint8, [N] int32."""
        images, labels = data.load_split(self.config.data, "test")
        return (images[:count], labels[:count]) if count else (images, labels)

    def inputs(self, images: np.ndarray) -> tf.Tensor:
        """What the network sees: central crop + standardization, [N, 24, 24, 3] float32."""
        return data.preprocess_eval(images, self.config.data.image_size)

    def curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Every scalar the run logged: '<train|eval>/<tag>' -> (steps, values)."""
        series = {}
        for folder in ("train", "eval"):
            for file in sorted(glob.glob(os.path.join(self.path, folder, "events.*"))):
                for record in tf.data.TFRecordDataset(file):
                    event = tf.compat.v1.Event.FromString(record.numpy())
                    for value in event.summary.value:
                        if value.metadata.plugin_data.plugin_name == "scalars":
                            steps, values = series.setdefault(f"{folder}/{value.tag}", ([], []))
                            steps.append(event.step)
                            values.append(float(tf.make_ndarray(value.tensor)))
        return {tag: (np.array(steps), np.array(values)) for tag, (steps, values) in series.items()}

    def first_layer_filters(self, columns: int = 8) -> np.ndarray:
        """conv1's kernels as one colour grid [h, w, 3] in [0, 1], each filter scaled on its own."""
        first = next(op for op in Deconvnet(self.model).graph.ops if op.kind == "conv")
        kernels = np.transpose(np.asarray(first.value("kernel")), (3, 0, 1, 2))  # [64, 5, 5, 3]
        return display.grid(display.upscale(display.to_display(kernels), 4), columns)

    def feature_maps(self, image: np.ndarray, layer: str, columns: int = 8) -> np.ndarray:
        """One image's feature maps of `layer` as a grid [h, w] (each map min-max scaled)."""
        activations = self.model.forward(self.inputs(image[None]))[layer][0].numpy()
        maps = np.transpose(activations, (2, 0, 1))[..., None]
        return display.grid(display.upscale(display.to_display(maps), 4), columns)[..., 0]

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities [N, 10]."""
        return tf.nn.softmax(self.model(self.inputs(images))).numpy()

    def reconstructions(self, images: np.ndarray, modes=engine.MODES) -> dict:
        """mode -> layer -> [N, 24, 24, 3] projections of each whole layer, ready to show."""
        layers = tuple(self.model.layer_names)
        result = {}
        for mode in modes:
            projector = Deconvnet(self.model, mode)
            projections = projector.layers(self.inputs(images), layers)
            result[mode] = {name: display.to_display(projections[name].numpy()) for name in layers}
        return result

    def project_channel(self, images: np.ndarray, layer: str, channel: int,
                        mode: str = "deconvnet") -> np.ndarray:
        """Each image's projection of one feature map of `layer`, [N, 24, 24, 3] ready to show."""
        projector = Deconvnet(self.model, mode)
        channels = tf.fill([len(images)], channel)
        return display.to_display(projector.channels(self.inputs(images), layer, channels).numpy())
