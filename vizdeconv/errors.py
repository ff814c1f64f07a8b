"""Errors a user can cause that are not plain bad values: a run folder in use, a failed write."""

import contextlib
import errno
import os

WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EFBIG)
WRITE_MESSAGES = (
    "No space left on device",
    "Disk quota exceeded",
    "Read-only file system",
    "Input/output error",
    "Permission denied",
    "File too large",
)


class RunInUse(ValueError):
    """Another process holds the run folder."""


class WriteError(OSError):
    """A file could not be written (full disk, quota, read-only file system); temporary files are
    removed and earlier files are intact."""


def is_write_failure(error: BaseException) -> bool:
    """Whether an exception from a write (Python or TensorFlow) means the storage refused it."""
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        return True
    return any(message in str(error) for message in WRITE_MESSAGES)


def reason(error: BaseException) -> str:
    """The storage's reason in a few words, e.g. 'No space left on device'."""
    for message in WRITE_MESSAGES:
        if message in str(error):
            return message
    return getattr(error, "strerror", None) or " ".join(str(error).split())[:120]


@contextlib.contextmanager
def removed_on_failure(temporary: str):
    """Removes the file `temporary` if the block raises anything (a refused write, a Ctrl-C), then re-raises:
    a write to a temporary name renamed at its end leaves the earlier file and nothing beside it."""
    try:
        yield temporary
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def make_folder(path: str, what: str, flag: str) -> None:
    """Creates the folder `path` and its parents if needed.

    Raises:
      PermissionError: it cannot be created (a file in the way, a read-only or missing place), with a message
        naming `what` it is ("explorer output folder") and the `flag` that chooses it ("--out").
    """
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        why = "a file is in the way" if isinstance(error, FileExistsError) else error.strerror or str(error)
        raise PermissionError(f"cannot create {what} {path}: {why}; pass another {flag}") from None
