"""The keystore: a JSON file of Ed25519 seeds, readable only by its owner.

Format (version 1)::

    {"version": 1, "keys": {"default": "<64 hex characters: the 32-byte seed>"}}

The file is created with mode 0600 on first use, atomically and exclusively: it is
written in full under a unique temporary name and linked into place, which fails if a
keystore appeared meanwhile (another process won the race; its key is loaded instead).

Opening a keystore that other users can read or write raises
:class:`~orbitstore.errors.KeystoreError`: a leaked seed lets anyone write as you,
forever.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import tempfile
from pathlib import Path

from orbitstore.core.identity import SEED_LENGTH, Identity
from orbitstore.errors import InvalidValueError, KeystoreError

KEYSTORE_VERSION = 1


class Keystore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _read(self) -> dict[str, str]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeystoreError(
                f"keystore {self.path} is accessible by other users"
                f" (mode {stat.S_IMODE(st.st_mode):o}); run: chmod 600 {self.path}"
            )
        try:
            doc = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise KeystoreError(f"cannot read keystore {self.path}: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("version") != KEYSTORE_VERSION:
            raise KeystoreError(f"keystore {self.path} is not a version-1 keystore")
        keys = doc.get("keys")
        if not isinstance(keys, dict):
            raise KeystoreError(f"keystore {self.path} has no 'keys' map")
        return {str(k): str(v) for k, v in keys.items()}

    def _temp_file(self, keys: dict[str, str]) -> str:
        """A fully written, fsynced temp file (unique name, mode 0600) holding ``keys``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"version": KEYSTORE_VERSION, "keys": keys}, indent=2).encode()
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        return tmp

    def _create(self, keys: dict[str, str]) -> bool:
        """Create the keystore holding ``keys`` if no keystore exists, atomically: the
        complete file is linked into place, which fails if one appeared meanwhile
        (then False: another process won, and its keys are the ones to use)."""
        tmp = self._temp_file(keys)
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        _fsync_dir(self.path.parent)
        return True

    def _add(self, name: str, seed_hex: str) -> Identity:
        """Add a key to an existing keystore (under a lock, so two adders do not drop
        each other's key); if ``name`` appeared meanwhile, that key wins."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            keys = self._read()
            if name not in keys:
                keys[name] = seed_hex
                tmp = self._temp_file(keys)
                os.replace(tmp, self.path)
                _fsync_dir(self.path.parent)
        finally:
            os.close(fd)
        found = self.get(name)
        assert found is not None
        return found

    def names(self) -> list[str]:
        return sorted(self._read())

    def get(self, name: str = "default") -> Identity | None:
        seed_hex = self._read().get(name)
        if seed_hex is None:
            return None
        try:
            seed = bytes.fromhex(seed_hex)
            return Identity(seed)
        except (ValueError, InvalidValueError) as exc:
            raise KeystoreError(f"key {name!r} in {self.path} is malformed") from exc

    def get_or_create(self, name: str = "default") -> Identity:
        """The identity called ``name``, created (from the OS's randomness) if missing.

        Safe against other processes doing the same at the same moment: exactly one key
        is created under ``name`` and every caller gets that one."""
        try:
            found = self.get(name)
            if found is not None:
                return found
            seed_hex = os.urandom(SEED_LENGTH).hex()
            if not self.path.exists() and self._create({name: seed_hex}):
                return Identity(bytes.fromhex(seed_hex))
            return self._add(name, seed_hex)
        except OSError as exc:
            raise KeystoreError(f"cannot create keystore {self.path}: {exc}") from exc


def _fsync_dir(directory: Path) -> None:
    """Make a new directory entry durable (the file's own fsync does not cover it)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
