"""Run folders: the resolved config, checkpoints, summaries and final metrics, self-describing.

A run folder belongs to one config. Resuming with the same config (only `steps` may differ) continues
it; any other config is refused, so a new run never overwrites another run's folder.
"""

import json
import os

import ml_collections

from vizdeconv.errors import WriteError, is_write_failure, make_folder, reason, removed_on_failure

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
VERSION_FILE = "version.json"
RUN_FORMAT = 1  # the run-folder layout this code reads and writes
IGNORED_WHEN_RESUMING = ("steps", "strategy", "devices", "keep_steps")  # not what the run is


def config_to_dict(config) -> dict:
    """A JSON-normalized plain dict of a ConfigDict (tuples become lists)."""
    return json.loads(config.to_json(sort_keys=True))


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    fields = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}{key}"
        if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            fields += _differences(old[key], new[key], f"{name}.")
        elif name not in IGNORED_WHEN_RESUMING and old.get(key) != new.get(key):
            fields.append(name)
    return fields


def write_json(path: str, payload: dict) -> None:
    """Writes atomically, so an interrupted or refused write never leaves a truncated file behind.

    Raises:
      WriteError: the storage refused the write (the temporary file is removed).
    """
    temporary = f"{path}.tmp"
    try:
        with removed_on_failure(temporary):
            with open(temporary, "w") as handle:
                json.dump(payload, handle, indent=2, sort_keys=True)
            os.replace(temporary, path)
    except OSError as error:
        if not is_write_failure(error):
            raise
        raise WriteError(
            f"could not write {path} ({reason(error)}); free space and run the same command again"
        ) from None


def drop_events_after(folder: str, step: int) -> int:
    """Rewrites the event files of `folder` without summaries of steps after `step`.

    A run resumed from the checkpoint of `step` writes those steps again; without this TensorBoard
    would draw both copies. A record cut short by a killed process ends the file. Returns how many
    events were dropped.
    """
    import tensorflow as tf

    dropped = 0
    for path in sorted(tf.io.gfile.glob(os.path.join(folder, "events.out.tfevents.*"))):
        kept, removed, damaged = [], 0, False
        try:
            for record in tf.data.TFRecordDataset(path):
                event = tf.compat.v1.Event.FromString(record.numpy())
                if event.step > step and event.HasField("summary"):
                    removed += 1
                else:
                    kept.append(record.numpy())
        except tf.errors.DataLossError:
            damaged = True
        if removed or damaged:
            temporary = f"{path}.tmp"
            with removed_on_failure(temporary):
                with tf.io.TFRecordWriter(temporary) as writer:
                    for record in kept:
                        writer.write(record)
                os.replace(temporary, path)
            dropped += removed
    return dropped


def check(config, workdir: str) -> bool:
    """Whether `workdir` holds a run of `config` (True), or nothing yet (False); writes nothing.

    Raises:
      ValueError: the folder belongs to another config, or is not a vizdeconv run folder.
      PermissionError: the existing run folder cannot be written.
    """
    config_path = os.path.join(workdir, CONFIG_FILE)
    if os.path.isfile(config_path):
        check_version(workdir)
        saved = load_config(workdir).to_dict()
        changed = _differences(saved, config_to_dict(config))
        if changed:
            raise ValueError(
                f"run folder {workdir} was written with a different config ({', '.join(changed[:5])} "
                "differ); pass another --workdir or --config.name, or delete that folder"
            )
        _check_writable(workdir)
        return True
    # What a trainer creating the folder writes before its config (another trainer may be there right now: then
    # its lock, taken next, is what refuses this one, naming it).
    creating = {".lock", VERSION_FILE, f"{VERSION_FILE}.tmp", f"{CONFIG_FILE}.tmp"}
    if os.path.isdir(workdir) and set(os.listdir(workdir)) - creating:
        raise ValueError(
            f"{workdir} exists and is not a vizdeconv run folder (no {CONFIG_FILE}); pass another --workdir"
        )
    return False


def prepare(config, workdir: str) -> bool:
    """Creates or re-opens a run folder for `config`. Returns True when the folder already had a run."""
    if check(config, workdir):
        return True
    create(workdir)
    from vizdeconv import __version__

    write_json(os.path.join(workdir, VERSION_FILE), {"vizdeconv": __version__, "run_format": RUN_FORMAT})
    write_json(os.path.join(workdir, CONFIG_FILE), config_to_dict(config))
    return False


def create(workdir: str) -> None:
    """Creates the run folder (and its parents) if needed; PermissionError if it cannot be written."""
    make_folder(workdir, "run folder", "--logdir or --workdir")
    _check_writable(workdir)


def check_version(workdir: str) -> None:
    """ValueError when the folder was written by a vizdeconv whose run format this code cannot read.

    Folders from before version.json existed are format 1."""
    path = os.path.join(workdir, VERSION_FILE)
    if not os.path.isfile(path):
        return
    try:
        with open(path) as handle:
            recorded = json.load(handle)
        run_format, version = int(recorded["run_format"]), recorded.get("vizdeconv", "?")
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            f"{path} is damaged (not the JSON vizdeconv writes); restore it or delete the run folder"
        ) from None
    if run_format > RUN_FORMAT:
        from vizdeconv import __version__

        raise ValueError(
            f"run folder {workdir} was written by vizdeconv {version} (run format "
            f"{run_format}); this vizdeconv {__version__} reads format {RUN_FORMAT} and "
            "older: upgrade vizdeconv"
        )


def _check_writable(workdir: str) -> None:
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise PermissionError(f"run folder {workdir} is not writable; pass a writable --logdir or --workdir")


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The resolved config a run folder was written with."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{workdir} is not a vizdeconv run folder: {CONFIG_FILE} is missing")
    check_version(workdir)
    try:
        with open(path) as handle:
            saved = json.load(handle)
    except ValueError:
        raise ValueError(f"{path} is not valid JSON; the run folder is damaged") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{path} is not a vizdeconv config (not a JSON object)")
    _check_fields(path, saved)
    return ml_collections.ConfigDict(saved)


# Fields newer than run format 1 (dotted: inside a section); older folders get the default.
ADDED_FIELDS = ("keep_steps", "loss.label_smoothing", "optimizer.lookahead_every", "optimizer.lookahead_alpha",
                "data.flip", "data.translate", "optimizer.momentum", "optimizer.nesterov",
                "optimizer.norm_bias_scale", "optimizer.lookahead_power", "eval_tta", "loss.decay_offsets",
                "data.normalize", "data.mean", "data.std", "optimizer.lookahead_statistics",
                "reconstruction.rectify", "norm_statistics_images")  # fmt: skip


def _check_fields(path: str, saved: dict) -> None:
    """ValueError naming the first field a saved config lacks or has beyond the default config's.
    Fields added since the first run format are filled in with their defaults."""
    from vizdeconv.config import default_config

    expected = config_to_dict(default_config())
    for name in ADDED_FIELDS:
        *sections, leaf = name.split(".")
        have, want = saved, expected
        for section in sections:
            have, want = have.get(section), want[section]
        if isinstance(have, dict):
            have.setdefault(leaf, want[leaf])

    def walk(have, want, prefix=""):
        for key in sorted(set(have) | set(want)):
            name = f"{prefix}{key}"
            if key not in want:
                raise ValueError(
                    f"{path} has unknown field {name!r}; it was not written by this vizdeconv (or was edited)"
                )
            if key not in have:
                raise ValueError(f"{path} lacks field {name!r}; the run folder is damaged")
            if isinstance(want[key], dict) and isinstance(have[key], dict):
                walk(have[key], want[key], f"{name}.")

    walk(saved, expected)


def read_metrics(workdir: str) -> dict | None:
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            metrics = json.load(handle)
    except ValueError:
        raise ValueError(
            f"{path} is garbled (not JSON); delete it and run the same command again to re-evaluate"
        ) from None
    if not isinstance(metrics, dict):
        raise ValueError(f"{path} is garbled (not a JSON object); delete it and run again")
    return metrics


def write_metrics(workdir: str, metrics: dict) -> None:
    write_json(os.path.join(workdir, METRICS_FILE), metrics)


def newest_run(logdir: str = "logs") -> str:
    """The most recently written run folder under `logdir` (by its config.json)."""
    runs = (
        [
            os.path.join(logdir, name)
            for name in os.listdir(logdir)
            if os.path.isfile(os.path.join(logdir, name, CONFIG_FILE))
        ]
        if os.path.isdir(logdir)
        else []
    )
    if not runs:
        raise FileNotFoundError(f"no run folders under {logdir}; train one with python train.py")
    return max(runs, key=lambda run: os.path.getmtime(os.path.join(run, CONFIG_FILE)))
