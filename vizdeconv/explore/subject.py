"""What an analysis looks at: a run folder's reference net or a `.keras` file, with its data and the
way its pixels become inputs. The explorer and every analysis open their network through here."""
import dataclasses
import os

import numpy as np


@dataclasses.dataclass
class Subject:
    """An opened network and its data.

    Attributes:
      model: the network (reference convnet or keras.Model); `graph` its operations.
      pixels: `preprocess.Preprocess` of the model.
      root: where outputs go by default (the run folder, or `<model>_explore` beside the file).
      run: the run folder, or None for a `.keras` file.
      mode: the default projection mode; `seed`: for random re-initializations.
      data_dir: the data source (None: the run's recorded one).
    """
    model: object
    graph: object
    pixels: object
    root: str
    run: str | None
    mode: str
    seed: int
    data_dir: str | None
    config: object = None
    model_path: str | None = None

    def write_probes(self, events_dir: str, images=None, labels=None, split: str = "test",
                     count: int = 16) -> None:
        """Marks `events_dir` for TensorBoard's Deconvnet tab with the first `count` images of the
        split (or of `images` [N, H, W, C] uint8 / `labels` [N]), which the tab projects on demand."""
        from vizdeconv.viz.plugin import metadata

        if images is None:
            images, labels = self.load(split)
        ids = np.arange(min(count, len(images)))
        metadata.write_probes(
            events_dir, np.asarray(self.pixels.inputs(images[ids])), self.pixels.pictures(images[ids]),
            root=self.root, kind="run" if self.run else "keras", model=self.model_path, image_ids=ids,
            labels=labels[ids], class_names=self.class_names(self.graph.shapes[self.graph.output][-1]))

    def load(self, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """images [N, H, W, C] uint8, labels [N] int32 of a split."""
        from vizdeconv.training import data

        if self.config is not None:
            return data.load_split(self.config.data, split)
        return data.load_images(self.data_dir, split, self.graph.input_shape)

    def class_names(self, count: int) -> list[str]:
        from vizdeconv.training import data

        return list(data.CLASS_NAMES) if count == len(data.CLASS_NAMES) else [str(i) for i in range(count)]


def open_subject(run: str | None = None, model_path: str | None = None, data_dir: str | None = None,
                 preprocess: str = "auto", log=print) -> Subject:
    """Opens a run folder (its newest intact checkpoint) or a `.keras` file.

    Raises:
      ValueError / FileNotFoundError: a missing or damaged source, or a `.keras` file without data.
    """
    from vizdeconv.deconv.deconvnet import as_graph
    from vizdeconv.explore import preprocess as preprocess_lib
    from vizdeconv.training import runs

    if (run is None) == (model_path is None):
        raise ValueError("pass either a run folder (--run) or a Keras model file (--model)")
    if run is not None:
        config, model = runs.load_run(run, log)
        if data_dir is not None:
            config.data.data_dir = data_dir
        pixels = preprocess_lib.Preprocess((config.data.image_size,) * 2, "standardize")
        return Subject(model, as_graph(model), pixels, run, run, config.reconstruction.mode,
                       config.seed + 1, data_dir, config)
    if data_dir is None:
        raise ValueError("--model needs --data_dir: CIFAR-10 binary data or a folder of images")
    model = runs.load_keras(model_path)
    graph = as_graph(model)
    return Subject(model, graph, preprocess_lib.for_model(graph, preprocess),
                   os.path.splitext(model_path)[0] + "_explore", None, "deconvnet", 1, data_dir,
                   model_path=model_path)
