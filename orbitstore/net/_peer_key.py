"""The persisted libp2p identity of a node (its peer id), in a file only its owner reads.

The file holds the private key in libp2p's protobuf encoding (the same bytes
``libp2p.save_identity`` writes), so other libp2p tools can read it. It is written
atomically with mode 0600; a key file that other users can read is refused, because
whoever holds it can impersonate the node's peer id.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from libp2p import generate_new_ed25519_identity
from libp2p.crypto.keys import KeyPair, KeyType
from libp2p.crypto.serialization import deserialize_private_key

from orbitstore.errors import KeystoreError


def load_or_create_peer_key(path: Path | None) -> KeyPair:
    """The Ed25519 key pair stored at ``path``, created there if missing.

    ``None`` gives a fresh, unsaved key (a new peer id on every start)."""
    if path is None:
        return generate_new_ed25519_identity()
    try:
        st = path.stat()
    except FileNotFoundError:
        key_pair = generate_new_ed25519_identity()
        _write_key(path, key_pair.private_key.serialize())
        return key_pair
    except OSError as exc:
        raise KeystoreError(f"cannot read peer key {path}: {exc}") from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeystoreError(
            f"peer key {path} is accessible by other users"
            f" (mode {stat.S_IMODE(st.st_mode):o}); run: chmod 600 {path}"
        )
    try:
        private_key = deserialize_private_key(path.read_bytes())
    except OSError as exc:
        raise KeystoreError(f"cannot read peer key {path}: {exc}") from exc
    except Exception as exc:  # protobuf and crypto errors of several kinds
        raise KeystoreError(f"peer key {path} is malformed: {exc}") from exc
    if private_key.get_type() != KeyType.Ed25519:
        raise KeystoreError(f"peer key {path} is not an Ed25519 key")
    return KeyPair(private_key, private_key.get_public_key())


def _write_key(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        raise KeystoreError(f"cannot write peer key {path}: {exc}") from exc
