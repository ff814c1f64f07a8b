"""What is being looked at: a run folder's reference net or a Keras model, with its data and the way its
pixels become inputs. `open_subject` is the one way to open a network: the trainer's run folders (their newest
*intact* checkpoint, or a kept one), `.keras` files, folders of `.keras` snapshots and `applications:`
models. The explorer, every analysis, export, the notebook helpers and the TensorBoard plugin go through it."""

import dataclasses
import os

import numpy as np

from vizdeconv.errors import removed_on_failure
from vizdeconv.nn.preprocess import CHOICES as PREPROCESS_CHOICES
from vizdeconv.options import option
from vizdeconv.runs import APPLICATIONS


@dataclasses.dataclass(kw_only=True)
class SubjectOptions:
    """What a command looks at: a run folder or a model, and the data and pixels of a model (the flags every
    command that opens a network shares; `run` and `model` are exclusive).

    Attributes:
      run: a run folder; model: a `.keras` file, a folder of snapshots or `applications:NAME[:SIZE]`.
      weights: an `applications:` model's weights file; data_dir: the data (None for a run: the source it
        was trained on); tfds_data_dir: where a `data_dir` of `tfds:NAME` is prepared; preprocess: how
        pixels become a model's inputs (`nn.preprocess.CHOICES`).
    """

    run: str | None = option(help="a run folder written by vizdeconv train")
    model: str | None = option(
        help="a Keras model file (.keras), or applications:NAME[:SIZE] (a keras.applications family)"
    )
    weights: str | None = option(help="--model applications:NAME only: your weights file")
    data_dir: str | None = option(
        help="CIFAR-10 binary data, a folder of images (class subfolders optional), TFRecord files, or "
        "tfds:NAME (default for --run: the data source the run used)"
    )
    tfds_data_dir: str | None = option(help="--data_dir tfds:NAME: the folder where the data set is prepared")
    preprocess: str = option(
        "auto",
        "--model only: how pixels 0..255 become inputs (auto: raw where the model has Rescaling/Normalization, "
        "else per-image standardization)",
        choices=PREPROCESS_CHOICES,
    )


def _restore_run(run: str, log=print, checkpoint: str | None = None):
    """(config, ConvNet, step) of a run folder, with the weights of its newest intact checkpoint (damaged
    ones are skipped with a warning through `log`), or of `checkpoint` (a path of one, verified first).

    Raises:
      FileNotFoundError / ValueError: not a run folder, written by a newer vizdeconv, or no checkpoint.
    """
    import tensorflow as tf

    from vizdeconv.nn.convnet import build_model
    from vizdeconv.runs import checkpoints, rundir

    if not os.path.isdir(run):
        raise FileNotFoundError(f"run folder {run} does not exist")
    config = rundir.load_config(run)
    try:
        model = build_model(config)
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{run}/config.json does not describe a vizdeconv model ({error})") from None
    if checkpoint is not None:
        checkpoints.verify(checkpoint)
        tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
        return config, model, checkpoints.step_of(checkpoint)
    restored = checkpoints.restore_newest(
        tf.train.Checkpoint(model=model), os.path.join(run, "checkpoints"), log, partial=True
    )
    if restored is None:
        raise FileNotFoundError(f"{run} has no checkpoint yet; train it first")
    return config, model, checkpoints.step_of(restored)


def load_model(run: str):
    """The trained network of a run folder as a Keras model: logits [N, 10] from central crops [N, S, S, 3]
    standardized per image, as the trainer evaluates them, or, for a run normalized by its data set
    (`data.normalize = "dataset"`), from the crops' pixels 0..255 (a first Normalization layer holds the
    training split's statistics)."""
    return _as_keras(open_subject(run=run, need_data=False))


def _as_keras(subject):
    """An opened run's network as plain Keras layers (a first Normalization layer for a run normalized by its
    data set)."""
    from vizdeconv.nn.convnet import to_keras

    return to_keras(subject.model, statistics=subject.pixels.statistics)  # None unless normalized by the data set


def export_run(run: str, path: str):
    """Writes a run's network (`load_model`'s) to the `.keras` file `path`, with the run's projection defaults
    recorded in it (`record_settings`), through a temporary file so that a failed write leaves no half file
    and an earlier file intact. Returns the Keras model.

    Raises:
      PermissionError: the file cannot be written (a read-only folder, a full disk).
    """
    subject = open_subject(run=run, need_data=False)
    model = _as_keras(subject)
    save_with_settings(model, path, subject.mode, subject.rectify)
    return model


def save_with_settings(model, path: str, mode: str, rectify: str) -> None:
    """`model.save(path)` with the projection defaults recorded in the file (`record_settings`), written as a
    hidden temporary file beside it and renamed, so that a reader (the tab, a snapshot folder's listing) never
    sees a half-written or unrecorded file, and a failed write leaves an earlier file intact.

    Raises:
      PermissionError: the file cannot be written (a read-only folder, a full disk).
    """
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.tmp.keras")  # hidden: `*.keras` listings skip it
    try:
        with removed_on_failure(temporary):
            model.save(temporary)
            record_settings(temporary, mode, rectify)
            os.replace(temporary, path)
    except OSError as error:
        raise PermissionError(f"cannot write {path}: {error.strerror or error}") from None


def _build_application(spec: str, weights: str | None = None):
    """A keras.applications model by name, `applications:NAME` or `applications:NAME:SIZE` (a square input
    of SIZE pixels; default: the family's own, or 224 for the families built for any size, such as
    MobileNetV3, since the deconvnet needs a fixed one), built offline with `weights=None`, then the user's weights
    file if one is given (nothing is downloaded). Returns (model, the family's preprocess_input).

    Raises:
      ValueError: an unknown family, a size the family refuses, or weights that do not fit.
    """
    import importlib

    import keras

    name, _, size = spec[len(APPLICATIONS) :].partition(":")
    build = getattr(keras.applications, name, None)
    if not name or not callable(build) or name[0].islower():
        families = sorted(n for n in dir(keras.applications) if n[0].isupper())
        raise ValueError(f"unknown keras.applications model {name!r}; choose one of {', '.join(families)}")
    if size and not size.isdigit():
        raise ValueError(f"{spec}: the size after the second ':' must be a number of pixels, got {size!r}")
    options = {"weights": None}
    if size:
        options["input_shape"] = (int(size), int(size), 3)
    try:
        model = build(**options)
        if None in model.input_shape[1:3]:  # built for any size: ImageNet's, the size it was trained at
            model = build(**options, input_shape=(224, 224, 3))
    except ValueError as error:
        raise ValueError(f"cannot build {name}: {' '.join(str(error).split())[:200]}") from None
    if weights is not None:
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"weights file {weights} does not exist")
        try:
            model.load_weights(weights)
        except Exception as error:  # Keras raises many kinds for a file of another model
            raise ValueError(f"cannot load {weights} into {name}: {' '.join(str(error).split())[:200]}") from None
    module = importlib.import_module(build.__module__)
    return model, getattr(module, "preprocess_input", None)


# The archive entry where `vizdeconv export` records the run's projection settings: Keras's loader reads only
# its own entries, so the file stays plain Keras while the toolbox still opens it with the run's rule.
SETTINGS_ENTRY = "vizdeconv.json"


def record_settings(path: str, mode: str, rectify: str) -> None:
    """Writes the projection defaults (`mode`, `rectify`) into the `.keras` archive at `path`."""
    import json
    import zipfile

    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(SETTINGS_ENTRY, json.dumps({"mode": mode, "rectify": rectify}))


def recorded_settings(path: str) -> dict:
    """The projection defaults `record_settings` wrote into a `.keras` archive ({} when none or unreadable:
    a file from anywhere else, or a damaged entry, falls back to the toolbox's defaults)."""
    import json
    import zipfile

    from vizdeconv.methods.reconstruct import MODES, RECTIFY

    try:
        with zipfile.ZipFile(path) as archive:
            settings = json.loads(archive.read(SETTINGS_ENTRY))
    except (KeyError, OSError, ValueError, zipfile.BadZipFile):
        return {}
    if not isinstance(settings, dict):
        return {}
    allowed = {"mode": MODES, "rectify": RECTIFY}
    return {key: value for key, value in settings.items() if key in allowed and value in allowed[key]}


def _load_keras(path: str):
    """A Keras model file (or the newest `.keras` snapshot in a folder of them, as `DeconvnetCallback`
    writes), with a one-line error for a missing or unreadable file: (model, the file's path)."""
    import keras

    from vizdeconv.runs import checkpoints

    if os.path.isdir(path):
        folder, path = path, checkpoints.newest_snapshot(path)
        if path is None:
            raise FileNotFoundError(f"no .keras snapshot in {folder}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        return keras.models.load_model(path, compile=False), path
    except Exception as error:  # Keras raises many kinds for a damaged archive
        message = " ".join(str(error).split())[:200] or type(error).__name__
        raise ValueError(f"cannot load Keras model {path}: {message}") from None


def read_labels(path: str) -> list[str]:
    """Class names from a file, one a line (blank lines skipped); FileNotFoundError / ValueError in one line."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"labels file {path} does not exist")
    try:
        with open(path, encoding="utf-8") as handle:
            names = [line.strip() for line in handle if line.strip()]
    except UnicodeDecodeError:
        raise ValueError(f"labels file {path} is not UTF-8 text") from None
    if not names:
        raise ValueError(f"labels file {path} names no class")
    return names


@dataclasses.dataclass
class Subject:
    """An opened network and its data.

    Attributes:
      model: the network (reference convnet or keras.Model); `graph` its operations.
      pixels: `preprocess.Preprocess` of the model.
      root: where outputs go by default (the run folder, or `<model>_explore` beside the file).
      run: the run folder, or None for a `.keras` file.
      mode: the default projection mode (a run's, an exported file's, else "deconvnet"); `seed`: for random
        re-initializations.
      data_dir: the data source (None: the run's recorded one).
      config: the run's config (None for a model file).
      model_path: the `.keras` file, snapshot folder or `applications:` name (None for a run).
      step: the training step of the restored checkpoint (None for a `.keras` file).
      tfds_data_dir: where a `data_dir` of `tfds:NAME` is prepared.
      weights: the weights file an `applications:` model was given.
      labels: class names of a labels file (`read_labels`), one per output; None: CIFAR-10's or indices.
      rectify: the default of where the projection rule replaces the gradient (`Deconvnet`'s `rectify`): the
        run's `reconstruction.rectify`; for a model file what `vizdeconv export` recorded in it, else "relu".
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
    step: int | None = None
    tfds_data_dir: str | None = None
    weights: str | None = None
    labels: list[str] | None = None
    rectify: str = "relu"

    def load(self, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """images [N, H, W, C] uint8, labels [N] int32 of a split, in memory (undecodable files left out):
        everything `source` streams."""
        return self.source(split).read_all()

    def source(self, split: str = "test"):
        """The split as a `sources.Source` (streamed; a run's CIFAR-10 is in memory as the trainer has it)."""
        from vizdeconv.data import sources

        if self.config is not None:
            return sources.for_config(self.config.data, split)
        return sources.open_source(self.data_dir, split, self.graph.input_shape, self.tfds_data_dir)

    def class_names(self, labels_file: str | None = None) -> list[str]:
        """One name per output of the network: a labels file's (`labels_file`, read and kept, or `labels`),
        CIFAR-10's for ten outputs, else indices; ValueError when the labels file names another count."""
        from vizdeconv.data import cifar10

        if labels_file is not None:
            self.labels = read_labels(labels_file)
        count = self.graph.shapes[self.graph.output][-1]
        if self.labels is not None:
            if len(self.labels) != count:
                raise ValueError(f"the labels file has {len(self.labels)} class names; the model has {count} outputs")
            return list(self.labels)
        return list(cifar10.CLASS_NAMES) if count == len(cifar10.CLASS_NAMES) else [str(i) for i in range(count)]


# 9 parameters, 70 lines: the one opener, whose parameters are SubjectOptions' fields and the caller's needs.
def open_subject(
    run: str | None = None,
    model_path: str | None = None,
    data_dir: str | None = None,
    preprocess: str = "auto",
    log=print,
    need_data: bool = True,
    weights: str | None = None,
    tfds_data_dir: str | None = None,
    checkpoint: str | None = None,
) -> Subject:
    """Opens a run folder (its newest intact checkpoint), a `.keras` file, a folder of `.keras` snapshots
    (the newest) or an `applications:` model: the one way to open a network.

    Args:
      run: a run folder (or None with `model_path`).
      model_path: a `.keras` file, a folder of snapshots, or `applications:NAME[:SIZE]` (a square input of
        SIZE pixels; built offline with `weights=None`, then `weights`).
      data_dir: where the images come from (None: the run's recorded data).
      preprocess: how pixels 0-255 become the model's inputs ("auto", "raw", "unit", "symmetric",
        "standardize", "family"; see `nn.preprocess`).
      log: where notices go (one string each).
      checkpoint: with `run`, this checkpoint (a path of a kept one) instead of the newest.
      need_data: a `.keras` file must come with `data_dir` (False: the caller brings its own images).
      weights: a weights file for an `applications:` model.
      tfds_data_dir: where a `data_dir` of `tfds:NAME` is prepared.
    Raises:
      ValueError / FileNotFoundError: a missing or damaged source, or a `.keras` file without data.
    """
    from vizdeconv.methods.deconvnet import as_graph
    from vizdeconv.nn import preprocess as preprocess_lib

    if (run is None) == (model_path is None):
        raise ValueError("pass either a run folder (--run) or a Keras model file (--model)")
    if run is not None:
        config, model, step = _restore_run(run, log, checkpoint)
        if data_dir is not None:
            config.data.data_dir = data_dir
        pixels = preprocess_lib.for_run(config.data)
        return Subject(
            model,
            as_graph(model),
            pixels,
            run,
            run,
            config.reconstruction.mode,
            config.seed + 1,
            data_dir,
            config,
            step=step,
            rectify=config.reconstruction.rectify,
        )
    if data_dir is None and need_data:
        raise ValueError("--model needs --data_dir: CIFAR-10 binary data or a folder of images")
    family, settings = None, {}
    if model_path.startswith(APPLICATIONS):
        model, family = _build_application(model_path, weights)
        root = os.path.join("logs", model_path[len(APPLICATIONS) :].replace(":", "_") + "_explore")
    else:
        if weights is not None:
            raise ValueError("--weights goes with --model applications:NAME; a .keras file holds its own weights")
        model, opened = _load_keras(model_path)
        root, settings = os.path.splitext(model_path)[0] + "_explore", recorded_settings(opened)
    graph = as_graph(model)
    return Subject(
        model,
        graph,
        preprocess_lib.for_model(graph, preprocess, family),
        root,
        None,
        settings.get("mode", "deconvnet"),
        1,
        data_dir,
        model_path=model_path,
        tfds_data_dir=tfds_data_dir,
        weights=weights,
        rectify=settings.get("rectify", "relu"),
    )
