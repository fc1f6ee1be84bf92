"""``<node directory>/api.json``: where a running ``orbitstore serve`` serves its API.

``serve`` writes it (mode 0600: it holds the API token) once the API listens, and
removes it when it stops. The command line reads it to talk to the running node instead
of opening the directory a second time (which the directory lock refuses). A file left
behind by a process that died is stale: it counts only while the pid it names is alive
and is the pid that holds the directory lock (``orbitstore.lock``, storage/lock.py).

Only the standard library is imported here: ``kv get`` reads this file on every run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

API_FILE = "api.json"
LOCK_FILE = "orbitstore.lock"  # the same name as orbitstore.storage.lock.LOCK_FILE


class RunningApi(NamedTuple):
    """The API of the node process that owns a node directory (a named tuple, not a
    dataclass: every command reads this file, and ``dataclasses`` costs ~10 ms to
    import)."""

    url: str
    token: str | None
    pid: int


def write_api_file(home: Path, *, url: str, token: str | None) -> Path:
    """Write ``api.json`` for this process (atomically, readable by its owner only)."""
    path = home / API_FILE
    tmp = home / f".{API_FILE}.{os.getpid()}"
    data = json.dumps({"url": url, "token": token, "pid": os.getpid()})
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def remove_api_file(home: Path) -> None:
    """Remove ``api.json`` if this process wrote it."""
    path = home / API_FILE
    found = _read(path)
    if found is not None and found.pid == os.getpid():
        path.unlink(missing_ok=True)


def running_api(home: Path) -> RunningApi | None:
    """The API named by ``home/api.json`` if its process is alive and holds the
    directory lock; None if there is no such file or it is stale (or unreadable)."""
    found = _read(home / API_FILE)
    if found is None or _lock_holder(home) != found.pid:
        return None
    try:
        os.kill(found.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        pass
    return found


def _read(path: Path) -> RunningApi | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        url, token, pid = data["url"], data.get("token"), data["pid"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (isinstance(url, str) and isinstance(pid, int)):
        return None
    if token is not None and not isinstance(token, str):
        return None
    return RunningApi(url=url, token=token, pid=pid)


def _lock_holder(home: Path) -> int | None:
    """The pid in the lock file (the lock's holder clears it when it releases)."""
    try:
        text = (home / LOCK_FILE).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
