"""The plugin's summaries: a run's probe images, tagged with plugin_data `vizdeconv`.

The trainer, the explorer, the analyses and the Keras callback write them; TensorBoard then lists the
Deconvnet tab for that logdir. The summary's JSON content says where the run's files are, relative to the
folder of the event file, so the plugin never takes a path from a request.
"""

import dataclasses
import json
import os

import numpy as np
from tensorboard.compat.proto import summary_pb2

from vizdeconv.runs import APPLICATIONS

PLUGIN_NAME = "vizdeconv"
INPUTS_TAG = "vizdeconv/probe_inputs"  # [P, H, W, C] float32, as the model takes them
PICTURES_TAG = "vizdeconv/probe_pictures"  # [P, H, W, 3] uint8, as a person sees them
FORMAT = 1


def _metadata(content: dict) -> summary_pb2.SummaryMetadata:
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=json.dumps(content).encode()
        ),
        # Without a data class, TensorBoard's data providers do not list the series.
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )


@dataclasses.dataclass
class Marking:
    """What a probe summary tells the tab about its run (the JSON content of the protocol).

    Attributes:
      root: the run's folder (reference run folder, or where a Keras model's outputs go).
      kind: "run" (reference checkpoints in `<root>/checkpoints`) or "keras" (`model` is a `.keras` file, a
        folder of `.keras` snapshots, the newest being the model, or `applications:NAME[:SIZE]` with its
        `weights` file: without one its weights were random and cannot be rebuilt).
      preprocess: how pixels became the model's inputs (`preprocess.CHOICES`), for a "keras" model.
      explorations: {split: folder} of explorer output (an `--out` anywhere; the tab also looks in `root`).
      image_ids, labels: [P] int, the probes' places in their split and their classes; class_names: one per
        output.
      data, tfds_data_dir: a "keras" model's data source as the explorer read it (`--data_dir`, `--tfds_data_dir`),
        from which the tab reads images of the explored split by id.
    """

    root: str
    kind: str
    model: str | None = None
    weights: str | None = None
    preprocess: str | None = None
    explorations: dict | None = None
    image_ids: object = None
    labels: object = None
    class_names: list | None = None
    data: str | None = None
    tfds_data_dir: str | None = None


def _absolute(spec: str | None) -> str | None:
    """A data source as any process finds it: paths made absolute (the tab's server runs elsewhere)."""
    if not spec or spec.startswith("tfds:"):
        return spec
    return os.path.abspath(spec)


def write_probes(events_dir: str, inputs, pictures, marking: Marking, step: int = 0, writer=None) -> None:
    """Writes the probe summaries to `writer` (a summary writer of `events_dir`), or else to a new
    event file in `events_dir`.

    Args:
      events_dir: the folder TensorBoard sees as the run.
      inputs: [P, H, W, C] float32 model inputs; pictures: [P, H, W, 3] in [0, 1] or uint8.
      marking: what the summary says of the run; its paths are stored relative to `events_dir`.
    """
    import tensorflow as tf

    from vizdeconv.viz.pictures import to_bytes

    m = marking
    if m.kind not in ("run", "keras"):
        raise ValueError(f"kind must be 'run' or 'keras', got {m.kind!r}")
    inputs = np.asarray(inputs, np.float32)
    pictures = np.asarray(pictures)
    if pictures.dtype != np.uint8:
        pictures = to_bytes(pictures)
    count = len(inputs)
    content = {
        "format": FORMAT,
        "kind": m.kind,
        "root": os.path.relpath(m.root, events_dir),
        "model": (m.model if m.model.startswith(APPLICATIONS) else os.path.relpath(m.model, events_dir))
        if m.model
        else None,
        "weights": os.path.relpath(m.weights, events_dir) if m.weights else None,
        "preprocess": m.preprocess,
        "explorations": {
            split: os.path.relpath(folder, events_dir) for split, folder in (m.explorations or {}).items()
        },
        "image_ids": [int(i) for i in (range(count) if m.image_ids is None else m.image_ids)],
        "labels": [int(i) for i in ([-1] * count if m.labels is None else m.labels)],
        "class_names": list(m.class_names) if m.class_names else None,
        "data": _absolute(m.data),
        "tfds_data_dir": _absolute(m.tfds_data_dir),
    }
    own = writer is None
    writer = tf.summary.create_file_writer(events_dir) if own else writer
    with writer.as_default():
        tf.summary.write(INPUTS_TAG, inputs, step=step, metadata=_metadata(content))
        tf.summary.write(PICTURES_TAG, pictures[..., :3], step=step, metadata=_metadata({}))
    if own:
        writer.close()
    else:
        writer.flush()


def parse(content: bytes) -> dict:
    """The JSON content of a probe summary; ValueError when it is not one this version reads."""
    try:
        value = json.loads(content.decode() or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("the vizdeconv summary's content is not JSON") from None
    if value.get("format", FORMAT) > FORMAT:
        raise ValueError("written by a newer vizdeconv")
    return value


# 8 parameters: a subject and what of its images to mark (the rest comes from the subject).
def write_subject_probes(
    subject,
    events_dir: str,
    images=None,
    labels=None,
    split: str = "test",
    count: int = 16,
    ids=None,
    explorations: dict | None = None,
) -> None:
    """Marks `events_dir` for TensorBoard's Deconvnet tab with a `runs.subject.Subject`'s first `count` images of the
    split (or of `images` [N, H, W, C] uint8 / `labels` [N], whose ids in their source are `ids`),
    which the tab projects on demand; `explorations` {split: folder} names explorer output written
    elsewhere than the run's own folder (`--out`)."""
    if images is None:
        images, labels = subject.load(split)
    images, labels = images[:count], labels[:count]
    positions = np.arange(len(images))
    ids = positions if ids is None else np.asarray(ids)[:count]
    marking = Marking(
        root=subject.root,
        kind="run" if subject.run else "keras",
        model=subject.model_path,
        weights=subject.weights,
        preprocess=None if subject.run else subject.pixels.scaling,
        explorations=explorations,
        image_ids=ids,
        labels=labels,
        class_names=subject.class_names(),
        data=None if subject.run else subject.data_dir,
        tfds_data_dir=None if subject.run else subject.tfds_data_dir,
    )
    write_probes(events_dir, np.asarray(subject.pixels.inputs(images)), subject.pixels.pictures(images), marking)
