"""The keystore: a JSON file of Ed25519 seeds, readable only by its owner.

Format (version 1)::

    {"version": 1, "keys": {"default": "<64 hex characters: the 32-byte seed>"}}

The file is created with mode 0600 on first use. Opening a keystore that other users
can read or write raises :class:`~orbitstore.errors.KeystoreError`: a leaked seed lets
anyone write as you, forever.
"""

from __future__ import annotations

import json
import os
import stat
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

    def _write(self, keys: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = json.dumps({"version": KEYSTORE_VERSION, "keys": keys}, indent=2).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

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
        """The identity called ``name``, created (from the OS's randomness) if missing."""
        found = self.get(name)
        if found is not None:
            return found
        identity = Identity(os.urandom(SEED_LENGTH))
        keys = self._read()
        keys[name] = identity.seed.hex()
        self._write(keys)
        return identity
