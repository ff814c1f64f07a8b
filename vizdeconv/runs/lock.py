"""One writer per run folder: an exclusive lock file naming the process and host that hold it.

The lock is created atomically (O_CREAT | O_EXCL, which shared file systems honour), so of two
processes starting together exactly one gets it. A lock left behind by a killed process on this host
(its process id no longer runs) is taken over with a one-line notice; a lock of another host is never
taken over, since its process cannot be checked from here.
"""

import json
import os
import socket
import time

from vizdeconv.errors import RunInUse

LOCK_FILE = ".lock"
UNREADABLE_GRACE_SECONDS = 10.0  # a lock still being written by its owner is briefly unreadable


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class RunLock:
    """`with RunLock(workdir):` holds the run folder for this process.

    Args:
      workdir: an existing run folder.
      log: where the take-over notice goes.
      what: what this process does there, for the message of a refused second writer.
      folder, flag: what the folder is and the flag that picks another, for that message.
    """

    def __init__(
        self, workdir: str, log=print, what: str = "train", folder: str = "run folder", flag: str = "--workdir"
    ):
        self.path = os.path.join(workdir, LOCK_FILE)
        self.workdir, self.log, self.what = workdir, log, what
        self.folder, self.flag = folder, flag
        self.held = False

    def _holder(self) -> dict | None:
        try:
            with open(self.path) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def acquire(self) -> None:
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "what": self.what,
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        for _ in range(2):
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None:
                    age = time.time() - os.path.getmtime(self.path) if os.path.exists(self.path) else 0
                    if age < UNREADABLE_GRACE_SECONDS:
                        raise RunInUse(
                            f"{self.folder} {self.workdir} is being opened by another process "
                            f"({self.path}); try again in a few seconds"
                        ) from None
                    self.log(f"notice: taking over the unreadable lock {self.path}")
                elif holder.get("host") == me["host"] and not _alive(int(holder.get("pid", 0))):
                    self.log(
                        f"notice: taking over the lock of process {holder['pid']} on "
                        f"{holder['host']}, which is no longer running"
                    )
                else:
                    raise RunInUse(
                        f"{self.folder} {self.workdir} is in use by process {holder.get('pid')} on "
                        f"{holder.get('host')} ({holder.get('what', 'train')} since "
                        f"{holder.get('since', '?')}); wait for it to finish or pass another {self.flag}"
                    ) from None
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(handle, "w") as file:
                json.dump(me, file)
            self.held = True
            return
        raise RunInUse(f"{self.folder} {self.workdir} is in use (its lock {self.path} keeps coming back)")

    def release(self) -> None:
        if self.held:
            holder = self._holder()
            if holder and holder.get("pid") == os.getpid():
                os.remove(self.path)
            self.held = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
