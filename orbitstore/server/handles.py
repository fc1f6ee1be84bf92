"""Database handles for requests: a path segment (local name or CID) to an open database.

The API opens a database the first time a request names it (as the type its manifest
declares) and keeps the handle until it is closed through the API or the node stops.
"""

from __future__ import annotations

from typing import Any, TypeVar

from orbitstore.core.manifest import Manifest, format_address, is_address, parse_address
from orbitstore.errors import NotFoundError, WrongDatabaseTypeError
from orbitstore.node.access import writers_of
from orbitstore.node.counter import Counter
from orbitstore.node.database import Database
from orbitstore.node.documents import Documents
from orbitstore.node.feed import Feed
from orbitstore.node.keyvalue import KeyValue
from orbitstore.node.node import Node
from orbitstore.node.ydoc import YDocument
from orbitstore.server.responses import jsonable

D = TypeVar("D", bound=Database)


class Handles:
    """Open databases by the reference a request used (a local name or a CID)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._by_ref: dict[str, Database] = {}

    async def get(self, ref: str) -> Database:
        """The open database ``ref`` names; NotFoundError if this node has none."""
        found = self._by_ref.get(ref)
        if found is not None and not found.closed:
            return found
        manifest = self.manifest(ref)
        db = await self.node.open(ref, type=manifest.type)
        self._by_ref[ref] = db
        return db

    async def typed(self, ref: str, cls: type[D]) -> D:
        """The open database ``ref`` names, which must be of ``cls``'s type (else 409)."""
        db = await self.get(ref)
        if not isinstance(db, cls):
            raise WrongDatabaseTypeError(
                f"{db.name!r} is a {db.type} database, not a {cls.type_name}",
                expected=cls.type_name,
                actual=db.type,
            )
        return db

    def manifest(self, ref: str) -> Manifest:
        try:
            return self.node.manifest(ref)
        except NotFoundError:
            raise NotFoundError(f"this node has no database {ref!r:.200}", database=ref) from None

    def address_of(self, ref: str) -> str:
        """The address of the database ``ref`` (a local name, a CID or an address)
        names; NotFoundError if it is none of these."""
        named = self.node.databases().get(ref)
        if named is not None:
            return named
        if not is_address(ref):
            raise NotFoundError(f"this node has no database {ref!r:.200}", database=ref)
        return format_address(parse_address(ref))

    def forget(self, address: str) -> None:
        """Drop every reference to the database at ``address`` (it was dropped)."""
        for key in [k for k, v in self._by_ref.items() if v.address == address]:
            del self._by_ref[key]

    def remember(self, ref: str, db: Database) -> None:
        self._by_ref[ref] = db

    async def close(self, ref: str) -> Database:
        db = await self.get(ref)
        await db.close()
        for key in [k for k, v in self._by_ref.items() if v is db]:
            del self._by_ref[key]
        return db


def writers_json(db: Database) -> list[dict[str, Any]]:
    """Who may write ``db``, as users with their devices (:func:`writers_of`)."""
    return writers_of(db)


def database_info(db: Database) -> dict[str, Any]:
    """What ``GET /v1/databases/<db>`` answers."""
    m = db.manifest
    info: dict[str, Any] = {
        "name": db.name,
        "address": db.address,
        "type": db.type,
        "access": m.access.to_manifest(),
        "meta": jsonable(m.meta),
        "entries": len(db),
        "heads": sorted(str(h) for h in db.heads),
        "last_seq": db.last_seq,
        "open": not db.closed,
        "writers": writers_json(db),
    }
    if isinstance(db, KeyValue | Documents | Feed):
        info["count"] = db.count()
    if isinstance(db, Documents):
        info["id_field"] = db.id_field
        info["indexes"] = db.indexes()
    if isinstance(db, Counter):
        info["value"] = db.value
    if isinstance(db, YDocument):
        stats = db.statistics().document
        info["ydoc"] = {"applied": stats.applied, "ignored": stats.ignored}
    return info
