"""Checkpoints that survive damage: find the newest intact one, save without leaving debris.

A checkpoint counts as intact when every tensor in it can be read back (a truncated data file, a
garbled index or a missing shard fails that) and it restores into the model.
"""

import glob
import os
import re
import shutil

import tensorflow as tf

from vizdeconv.errors import WriteError, is_write_failure, reason


def candidates(checkpoint_dir: str) -> list[str]:
    """Checkpoint prefixes `<dir>/ckpt-N` found on disk, newest (highest N) first."""
    found = []
    for index in glob.glob(os.path.join(checkpoint_dir, "ckpt-*.index")):
        match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(index))
        if match:
            found.append((int(match.group(1)), index[: -len(".index")]))
    return [path for _, path in sorted(found, reverse=True)]


def step_of(path: str) -> int:
    """The step in a checkpoint prefix `<dir>/ckpt-N`."""
    return int(path.rsplit("-", 1)[1])


def newest_number(checkpoint_dir: str) -> int:
    """The step of the newest checkpoint on disk (0 if none), intact or not."""
    paths = candidates(checkpoint_dir)
    return step_of(paths[0]) if paths else 0


def _why(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:160]


def verify(path: str) -> None:
    """Reads every tensor of a checkpoint; raises ValueError saying why it cannot be read."""
    try:
        reader = tf.train.load_checkpoint(path)
        for key in reader.get_variable_to_shape_map():
            reader.get_tensor(key)
    except Exception as error:  # TensorFlow reports damage as many error kinds (IndexError too)
        raise ValueError(_why(error)) from None


def restore_newest(
    checkpoint: tf.train.Checkpoint, checkpoint_dir: str, log=print, partial: bool = False
) -> str | None:
    """Restores the newest intact checkpoint into `checkpoint`; returns its path (None: none exists).

    Damaged ones are skipped with a one-line warning each.

    Raises:
      ValueError: checkpoints exist but none of them can be read.
    """
    paths = candidates(checkpoint_dir)
    for path in paths:
        try:
            verify(path)
            status = checkpoint.restore(path)
            status.expect_partial() if partial else status.assert_existing_objects_matched()
            return path
        except (ValueError, AssertionError, tf.errors.OpError) as error:
            log(f"warning: skipping checkpoint {path}: it cannot be read ({_why(error)})")
    if paths:
        raise ValueError(
            f"no intact checkpoint in {checkpoint_dir} (all {len(paths)} are damaged); "
            "delete the run folder and train again"
        )
    return None


def snapshots(folder: str) -> list[tuple[int | None, str]]:
    """(step, path) of the `.keras` snapshots in a folder (`epoch_0003.keras`: step 3; a name without a
    number: None), in training order."""
    found = [(snapshot_step(path), path) for path in glob.glob(os.path.join(glob.escape(folder), "*.keras"))]
    return sorted(found, key=lambda item: (item[0] is not None, item[0] or 0, item[1]))


def newest_snapshot(folder: str) -> str | None:
    """The path of the newest `.keras` snapshot in a folder (`snapshots` order), None when there is none."""
    found = snapshots(folder)
    return found[-1][1] if found else None


def snapshot_step(path: str) -> int | None:
    """The step in a snapshot's file name (`epoch_0003.keras`: 3), None without a number."""
    match = re.search(r"(\d+)\.keras$", path)
    return int(match.group(1)) if match else None


def remove_debris(checkpoint_dir: str) -> None:
    """Removes the temporary folders and files an interrupted or failed save leaves behind."""
    for path in glob.glob(os.path.join(checkpoint_dir, "*_temp*")):
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)


KEPT = "kept"  # subfolder of checkpoints kept forever, outside the rolling manager's pruning


def keep(checkpoint: tf.train.Checkpoint, checkpoint_dir: str, step: int) -> str:
    """Writes `<dir>/kept/ckpt-<step>`, which no pruning removes (feature evolution reads them)."""
    path = os.path.join(checkpoint_dir, KEPT, f"ckpt-{step}")
    try:
        return checkpoint.write(path)
    except (OSError, tf.errors.OpError) as error:
        if not is_write_failure(error):
            raise
        for debris in glob.glob(path + "*"):
            os.remove(debris)
        raise WriteError(
            f"could not write the kept checkpoint {path} ({reason(error)}); free space "
            "and run the same command again to resume"
        ) from None


def kept(checkpoint_dir: str) -> list[tuple[int, str]]:
    """(step, prefix) of the kept checkpoints and of the rolling ones, merged, oldest first."""
    found = {}
    for folder in (os.path.join(checkpoint_dir, KEPT), checkpoint_dir):
        for path in candidates(folder):
            found.setdefault(step_of(path), path)
    return sorted(found.items())


def save(manager: tf.train.CheckpointManager, step: int) -> str:
    """`manager.save(step)`, turning a refused write into a WriteError after removing its debris."""
    try:
        return manager.save(checkpoint_number=step)
    except (OSError, tf.errors.OpError) as error:
        if not is_write_failure(error):
            raise
        remove_debris(manager.directory)
        last = (
            manager.latest_checkpoint
            if manager.latest_checkpoint != os.path.join(manager.directory, f"ckpt-{step}")
            else None
        )
        raise WriteError(
            f"could not write the checkpoint of step {step} in {manager.directory} "
            f"({reason(error)}); the last good checkpoint is {last or 'none'}; free "
            "space and run the same command again to resume"
        ) from None
