"""Manifests for :meth:`Node.open`: building a new database's, finding a known one's (in
the store, or else from the connected peers), and the checks an open makes against it.

The manifest fixes a database's type, access, encryption and read control for good (its
CID is the database's address), so these are decided once, here, before a handle exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from orbitstore.core import encryption as enc
from orbitstore.core import privacy
from orbitstore.core.access import ANYONE, AccessController, CapabilitiesAccess, StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.devices import Delegation
from orbitstore.core.manifest import (
    Manifest,
    check_name,
    format_address,
    is_address,
    parse_address,
)
from orbitstore.errors import (
    InvalidDataError,
    InvalidValueError,
    NotFoundError,
    StorageCorruptedError,
    UsageError,
    WrongDatabaseTypeError,
)
from orbitstore.node.types import database_class
from orbitstore.node.writes import NodeWrites
from orbitstore.storage.base import NodeStore

if TYPE_CHECKING:
    from orbitstore.node.opening import Network


class Manifests:
    """The manifests a node knows (its store) and can ask its peers for (over
    ``network``; None on a node without a transport)."""

    def __init__(
        self,
        *,
        store: NodeStore,
        writes: NodeWrites,
        network: Network | None,
        delegation: Callable[[], Delegation | None] = lambda: None,
    ) -> None:
        self._store = store
        # This node's delegation when it is a linked device: its proof for a private
        # database's manifest shows it (docs/sync-protocol.md, the reader proof).
        self._delegation = delegation
        self._writes = writes
        self._replication = None if network is None else network.replication
        # A node that dials peers by itself: a fetch waits for a first connection.
        self._expects_peers = network is not None and network.expects_peers

    async def add(self, name: str, manifest: Manifest) -> Cid:
        """Store a new database's manifest under its local ``name``; its CID."""
        db, block = manifest.to_block()
        async with self._writes.locked():
            with self._store.transaction():
                self._store.blocks.put(db, block)
                self._store.set_name(name, db)
        return db

    def check_name_free(self, name: str, db: Cid) -> None:
        """InvalidValueError unless ``name`` is a valid name and names ``db`` or nothing."""
        holder = self._store.get_name(check_name(name))
        if holder is not None and holder != db:
            raise InvalidValueError(
                f"{name!r:.200} already names another database on this node"
                f" ({format_address(holder)}); choose another name"
            )

    async def name_opened(self, db: Cid, name: str | None) -> str | None:
        """Give ``db``, opened by address, a local name: ``name`` (InvalidValueError if it
        names another database), or else its manifest's name if that names nothing here
        yet. A database that has a name keeps it. Its local name, or None."""
        held = sorted(n for n, cid in self._store.names().items() if cid == db)
        if name is None:
            if held:
                return held[0]
            name = self.load(db).name
            if self._store.get_name(name) is not None:
                return None  # taken by another database: the address still works
        self.check_name_free(name, db)
        if name not in held:
            async with self._writes.locked():
                with self._store.transaction():
                    self._store.set_name(name, db)
        return name

    def load(self, db: Cid) -> Manifest:
        """The stored manifest of ``db``; NotFoundError if the store lacks it."""
        block = self._store.blocks.get(db)
        if block is None:
            raise NotFoundError(f"the manifest of {format_address(db)} is not in this node's store")
        try:
            return Manifest.from_block(db, block)
        except InvalidDataError as exc:
            raise StorageCorruptedError(f"stored manifest {db} is invalid: {exc}") from exc

    def lookup(self, name_or_address: str) -> Manifest:
        """The manifest of a database this node knows, by local name or address."""
        if is_address(name_or_address):
            return self.load(parse_address(name_or_address))
        found = self._store.get_name(name_or_address)
        if found is None:
            raise NotFoundError(f"this node has no database named {name_or_address!r:.200}")
        return self.load(found)

    async def find(self, db: Cid) -> Manifest:
        """The manifest from the store, or else from the connected peers (then stored)."""
        if self._store.blocks.has(db):
            return self.load(db)
        if self._replication is None:
            raise NotFoundError(
                f"the manifest of {format_address(db)} is not in this node's store, and the"
                " node has no transport to ask peers for it; open the node with a transport"
                " and connect to a peer that has the database open",
                address=format_address(db),
                asked=0,
            )
        report = await self._replication.fetch_manifest(
            db, wait_for_peer=self._expects_peers, delegation=self._delegation()
        )
        if report.fetched is None:
            raise NotFoundError(
                report.explain(),
                address=format_address(db),
                asked=report.asked,
                not_found=report.not_found,
                invalid=report.invalid,
                failed=report.failed,
                unanswered=report.unanswered,
            )
        async with self._writes.locked():
            with self._store.transaction():
                self._store.blocks.put(db, report.fetched.block)
        return report.fetched.manifest


def new_manifest(  # noqa: PLR0917 - the arguments of Node.open()
    name: str,
    type_name: str,
    write: Iterable[str] | None,
    meta: dict[str, object] | None,
    access: str,
    encrypted: bool,
    private: bool,
    replicas: Iterable[str] | None,
    *,
    node_id: str,
    user_id: str,
) -> Manifest:
    """The manifest of a new database created by the node ``node_id`` (writing for
    ``user_id``, who owns it under capabilities access)."""
    if enc.META_KEY in (meta or {}):
        raise UsageError("use encrypted=True, not meta['encryption']")
    if privacy.META_KEY in (meta or {}):
        raise UsageError("use private=True (and replicas=...), not meta['read']")
    database_class(type_name)[0].check_meta(meta or {})
    full_meta = dict(meta or {})
    if encrypted:
        full_meta[enc.META_KEY] = enc.EncryptionSpec(owner=node_id).to_meta()
    if private:
        full_meta[privacy.META_KEY] = _new_read_spec(access, write, replicas)
    elif replicas is not None:
        raise UsageError("replicas=... names who may hold a private database")
    access_controller = _new_access(access, write, node_id=node_id, user_id=user_id)
    return Manifest(name=name, type=type_name, access=access_controller, meta=full_meta)


def _new_access(
    kind: str, write: Iterable[str] | None, *, node_id: str, user_id: str
) -> AccessController:
    if kind == "capabilities":
        if write is not None:
            raise UsageError("capabilities access takes no write list: grant rights instead")
        return CapabilitiesAccess.of(user_id)
    if kind != "static":
        raise UsageError(f"access is 'static' or 'capabilities', not {kind!r:.40}")
    return StaticAccess.of(write if write is not None else [node_id])


def check_open(
    manifest: Manifest, name_or_address: str, *, type_name: str, encrypted: bool, private: bool
) -> None:
    """What :meth:`Node.open` asked for (``type``, ``encrypted``, ``private``) against
    what the manifest says: a typed error if they disagree."""
    if private and privacy.META_KEY not in manifest.meta:
        raise UsageError(
            f"{name_or_address!r:.200} exists and is not private: read control is chosen"
            " when a database is created (its manifest, and so its address, records it)"
        )
    _read_spec(manifest)
    if encrypted and enc.META_KEY not in manifest.meta:
        raise UsageError(
            f"{name_or_address!r:.200} exists and is not encrypted: encryption is chosen"
            " when a database is created (its manifest, and so its address, records it)"
        )
    if manifest.type != type_name:
        raise WrongDatabaseTypeError(
            f"{name_or_address!r} is a {manifest.type} database, not a {type_name}",
            expected=type_name,
            actual=manifest.type,
        )


def _new_read_spec(
    access: str, write: Iterable[str] | None, replicas: Iterable[str] | None
) -> dict[str, Any]:
    if access == "static" and write is not None and ANYONE in write:
        raise UsageError("a private database cannot let anyone ('*') write: anyone would read")
    try:
        return privacy.ReadSpec.of(replicas or ()).to_meta()
    except InvalidValueError as exc:
        raise InvalidValueError(f"private database: {exc.message}") from exc


def _read_spec(manifest: Manifest) -> privacy.ReadSpec | None:
    try:
        return privacy.ReadSpec.from_meta(manifest.meta)
    except InvalidValueError as exc:
        raise InvalidDataError(
            f"database {manifest.name!r:.80} declares a read control this node cannot use: {exc}"
        ) from exc


def encryption_spec(manifest: Manifest) -> enc.EncryptionSpec | None:
    """The encryption a manifest declares (None: in the clear)."""
    try:
        return enc.EncryptionSpec.from_meta(manifest.meta)
    except InvalidValueError as exc:
        raise StorageCorruptedError(
            f"database {manifest.name!r} declares an encryption this node cannot use: {exc}"
        ) from exc
