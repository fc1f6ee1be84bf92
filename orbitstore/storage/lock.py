"""One owner per node directory: an exclusive OS lock held for the node's lifetime.

The lock is ``flock(LOCK_EX | LOCK_NB)`` on ``<directory>/orbitstore.lock``; the holder
writes its pid into the file. ``flock`` belongs to the open file, so it is refused to a
second opener in another process *and* in the same process, and the kernel drops it when
the holder exits, however it exits (SIGKILL included): a lock file left behind by a dead
process never blocks anyone. The file itself is never deleted (deleting it would let two
openers lock two different files).

Why: two processes on one directory each keep the log's heads in memory and overwrite
the other's on every write, so entries one of them acknowledged stop being reachable
from the stored heads (and are then never offered to peers). See docs/failure-model.md.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from orbitstore.errors import NodeLockedError, StorageError

LOCK_FILE = "orbitstore.lock"


class DirectoryLock:
    """The held lock of one node directory. Use :meth:`acquire`; :meth:`release` once."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, directory: str | Path) -> DirectoryLock:
        """Lock ``directory`` for this process, or raise NodeLockedError naming the
        holder's pid (StorageError if the lock file cannot be opened at all)."""
        path = Path(directory) / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot open the lock file {path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder is not None else "another process"
            raise NodeLockedError(
                f"the node directory {Path(directory)} is in use by {who} (an"
                " `orbitstore serve` or another program that opened it); stop it, or talk"
                " to it through its API instead of opening the directory a second time",
                pid=holder if holder is not None else "unknown",
                path=str(directory),
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"cannot lock {path}: {exc}") from exc
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"cannot write the lock file {path}: {exc}") from exc
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock (idempotent). The pid is cleared first, so a stale pid is never
        read by the next opener."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:  # the pid stays; the next holder overwrites it
            pass
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> DirectoryLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    """The pid the holder wrote (None if it has not written it yet, or it is garbage)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
