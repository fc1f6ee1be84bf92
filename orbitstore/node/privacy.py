"""Private databases on this node: who is a reader now, and which blocks stay unserved.

:func:`read_spec` reads a manifest's read control (:mod:`orbitstore.core.privacy`);
:func:`reader_role` gathers what the decision needs from an open database's current
state (its static writers, or its capability state; the readers of its current key
epoch) — this is the one place "is this identity a member or an allowed replica" is
answered; :class:`PublicBlocks` is the block source Bitswap serves from: the node's
blocks minus those of private databases (members get those over authenticated sync).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from orbitstore.core import codec
from orbitstore.core.access import CapabilitiesAccess, StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.devices import Delegation
from orbitstore.core.manifest import Manifest
from orbitstore.core.privacy import META_KEY, ReadSpec, Role
from orbitstore.core.privacy import reader_role as _decide
from orbitstore.errors import DecodeError, InvalidDataError, InvalidValueError, StorageError

if TYPE_CHECKING:
    from orbitstore.node.database import Database
    from orbitstore.storage.base import BlockStore

# Rights that make an identity a member of a capabilities database (an ``invite`` right
# belongs to a one-time invite key, not to a person).
_MEMBER_RIGHTS = frozenset({"write", "admin"})
# The right that makes an identity a replica of a private capabilities database.
REPLICA_RIGHT = "replica"


def read_spec(manifest: Manifest) -> ReadSpec | None:
    """The read control ``manifest`` declares (None: public); InvalidDataError if it is
    malformed."""
    try:
        return ReadSpec.from_meta(manifest.meta)
    except InvalidValueError as exc:
        raise InvalidDataError(f"database {manifest.name!r:.80}: {exc}") from exc


def is_private(database: Database) -> bool:
    """Whether ``database`` is private (checked when it was opened)."""
    return META_KEY in database.manifest.meta


def writers_now(database: Database) -> frozenset[str]:
    """Who may write ``database`` now: its static writers, or under capabilities the
    owner and every identity holding ``write`` or ``admin`` in the current state."""
    access = database.manifest.access
    if isinstance(access, StaticAccess):
        return access.writers
    if isinstance(access, CapabilitiesAccess):
        caps = database.log.capabilities
        holders = {access.owner}
        if caps is not None:
            holders.update(did for did, right, _ in caps.graph.state() if right in _MEMBER_RIGHTS)
        return frozenset(holders)
    return frozenset()  # pragma: no cover - the two controllers above are all there is


def reader_role(database: Database, did: str, delegation: Delegation | None = None) -> Role | None:
    """Whether ``did`` may read ``database`` now, as a member or a replica (named in
    the manifest, or holding the ``replica`` right). A linked device reads as its user:
    the user its link ops in the log name, or the one of the ``delegation`` it presented
    in its reader proof (unless the log knows it unlinked, or it expired)."""
    spec = read_spec(database.manifest)
    if spec is None:
        return "member"  # a public database: anyone reads it
    epoch_readers = database.readers if database.encrypted else frozenset()
    if did in epoch_readers:  # its own key was sealed the epoch key
        return "member"
    caps = database.log.capabilities
    replicas: frozenset[str] = frozenset()
    principal = did
    if isinstance(database.manifest.access, CapabilitiesAccess) and caps is not None:
        principal = caps.graph.principal_for(did, delegation, now=time.time_ns() // 1_000_000)
        replicas = frozenset(d for d, right, _ in caps.graph.state() if right == REPLICA_RIGHT)
    return _decide(
        spec,
        principal,
        writers=writers_now(database),
        epoch_readers=epoch_readers,
        replicas=replicas,
    )


class PublicBlocks:
    """The node's blocks, without the manifests and entries of private databases (a
    :class:`~orbitstore.net.transport.BlockSource` for Bitswap, which authenticates
    nobody). Whether a database is private is read from its manifest once and kept:
    manifests never change."""

    def __init__(self, blocks: BlockStore) -> None:
        self._blocks = blocks
        self._private: dict[Cid, bool] = {}

    def get(self, cid: Cid) -> bytes | None:
        block = self._blocks.get(cid)
        if block is None:
            return None
        try:
            value = codec.decode(block)
        except DecodeError:
            return block  # not a block of ours (raw bytes): nothing private about it
        if not isinstance(value, dict):
            return block
        if _looks_like_manifest(value):
            return None if self._is_private_manifest(cid, block) else block
        db = value.get("db")
        if isinstance(db, Cid) and "sig" in value and self._is_private_db(db):
            return None
        return block

    def _is_private_manifest(self, cid: Cid, block: bytes) -> bool:
        known = self._private.get(cid)
        if known is None:
            try:
                manifest = Manifest.from_block(cid, block)
                known = read_spec(manifest) is not None
            except InvalidDataError:
                meta = codec.decode(block).get("meta")
                known = isinstance(meta, dict) and META_KEY in meta  # malformed: withhold
            self._private[cid] = known
        return known

    def _is_private_db(self, db: Cid) -> bool:
        known = self._private.get(db)
        if known is not None:
            return known
        try:
            block = self._blocks.get(db)
        except StorageError:
            return True  # cannot tell: withhold
        if block is None:
            return True  # an entry of a database we hold no manifest of: withhold
        return self._is_private_manifest(db, block)


def _looks_like_manifest(value: dict[object, object]) -> bool:
    return set(value) == {"name", "type", "access", "meta"}


__all__ = ["REPLICA_RIGHT", "PublicBlocks", "is_private", "read_spec", "reader_role", "writers_now"]
