"""Read a trained network back for notebooks: a run folder or any Keras model; its config, metrics,
curves, filters, feature maps, predictions and projections."""

import glob
import os

import numpy as np
import tensorflow as tf

from vizdeconv.data import sources
from vizdeconv.methods import reconstruct
from vizdeconv.methods.deconvnet import Deconvnet
from vizdeconv.nn.preprocess import Preprocess, for_model
from vizdeconv.runs import rundir
from vizdeconv.runs.subject import open_subject
from vizdeconv.viz import pictures
from vizdeconv.viz.summaries import default_layers


class Inspector:
    """A trained network opened for a notebook: any Keras model, or the reference net of a run.

    Args:
      model: a keras.Model, the reference convnet or a Graph.
      preprocess: pixels -> model inputs (`nn.preprocess.Preprocess`); default: as `for_model`.
      data_dir: where `test_images` reads (CIFAR-10 binary data or an image folder).
      rectify: where the projection rules replace the gradient (`Deconvnet`'s; a run: its config's).
    """

    def __init__(self, model, preprocess: Preprocess | None = None, data_dir: str | None = None, rectify="relu"):
        self.model, self.rectify = model, reconstruct.check_rectify(rectify)
        self.graph = Deconvnet(model).graph
        self.pixels = preprocess or for_model(self.graph)
        self.data_dir = data_dir

    @property
    def layers(self) -> list[str]:
        """The rectified feature maps, shown by default."""
        return default_layers(self.graph)

    def test_images(self, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The test split's first `count` images (None: all): [N, H, W, C] uint8, [N] int32."""
        if not self.data_dir:
            raise ValueError("no data source: pass data_dir (CIFAR-10 binary data or an image folder)")
        images, labels = sources.load_images(self.data_dir, "test", self.graph.input_shape)
        return (images[:count], labels[:count]) if count else (images, labels)

    def inputs(self, images: np.ndarray) -> tf.Tensor:
        """What the network sees of `images` [N, H, W, C] uint8: [N, h, w, C] float32."""
        return self.pixels.inputs(images)

    def first_layer_filters(self, columns: int = 8) -> np.ndarray:
        """The first convolution's kernels as one grid [h, w, 3] in [0, 1] of `columns` columns, each filter scaled
        alone."""
        first = next(op for op in self.graph.ops if op.kind == "conv")
        kernels = np.transpose(np.asarray(first.value("kernel")), (3, 0, 1, 2))  # [out, kh, kw, in]
        return pictures.grid(pictures.upscale(pictures.to_display(kernels), 4), columns)

    def feature_maps(self, image: np.ndarray, layer: str, columns: int = 8) -> np.ndarray:
        """One `image` [H, W, C] uint8's feature maps of `layer` as a grid [h, w] of `columns` columns (each map
        min-max scaled)."""
        name = self.graph.resolve(layer)
        activations = self.graph.forward(self.inputs(image[None]), until=(name,))[name][0].numpy()
        maps = np.transpose(activations, (2, 0, 1))[..., None]
        return pictures.grid(pictures.upscale(pictures.to_display(maps), 4), columns)[..., 0]

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities [N, classes] of `images` [N, H, W, C] uint8 (a softmax of the output unless the model
        ends in one)."""
        return self.graph.probabilities(self.graph(self.inputs(images))).numpy()

    def reconstructions(self, images: np.ndarray, modes=reconstruct.MODES) -> dict:
        """mode -> layer -> [N, h, w, 3] projections of each whole layer for `images` [N, H, W, C] uint8, ready to
        show, for each of `modes` the network allows."""
        result = {}
        for mode in modes:
            try:
                deconvnet = Deconvnet(self.model, mode, rectify=self.rectify)
                projections = deconvnet.project(self.inputs(images), list(self.layers))
            except ValueError:
                continue
            result[mode] = {name: pictures.to_display(value.numpy()) for name, value in projections.items()}
        return result

    def project_channel(self, images: np.ndarray, layer: str, channel: int, mode: str = "deconvnet") -> np.ndarray:
        """Each image's projection of feature map `channel` of `layer` by the rule `mode`, for `images`
        [N, H, W, C] uint8: [N, h, w, 3] ready to show."""
        deconvnet = Deconvnet(self.model, mode, rectify=self.rectify)
        projection = deconvnet.project(self.inputs(images), layer, channel=channel)
        return pictures.to_display(projection.numpy())


class Run(Inspector):
    """A run folder opened for inspection (latest checkpoint's weights).

    Args:
      path: the run folder; None opens the newest run under `logdir`.
    """

    def __init__(self, path: str | None = None, logdir: str = "logs"):
        self.path = path or rundir.newest_run(logdir)
        opened = open_subject(run=self.path)
        self.subject, self.config, self.step = opened, opened.config, opened.step
        super().__init__(opened.model, opened.pixels, rectify=opened.rectify)
        self.metrics = rundir.read_metrics(self.path) or {}

    def test_images(self, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The run's test split (its recorded data source), the first `count` images (None: all):
        [N, 32, 32, 3] uint8, [N] int32."""
        return self.subject.source("test").read_all(count or 0)

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


class KerasFile(Inspector):
    """A `.keras` file opened for inspection.

    Args:
      path: the model file.
      data_dir: CIFAR-10 binary data or a folder of images in class subfolders.
      preprocess: one of `nn.preprocess.CHOICES` (auto: raw pixels where the model rescales).
    """

    def __init__(self, path: str, data_dir: str | None = None, preprocess: str = "auto"):
        opened = open_subject(model_path=path, preprocess=preprocess, need_data=False)
        self.path = path
        super().__init__(opened.model, opened.pixels, data_dir)
