"""``node.drop(name_or_address)``: close a database, stop replicating it, forget its data.

The steps, in order:

1. Find it: a local name, or an address this node holds the manifest or a log of.
   Anything else is a NotFoundError (nothing is removed).
2. Close the handle if it is open. Closing ends the database's announcer, so the
   replication service unsubscribes from its topic and cancels its sync sessions
   (``Replication._forget``); a session still running can no longer write (the handle
   is closed).
3. Under the node's write lock (no batch and no other write may be open, so nothing is
   half-written), remove every row the store keeps for it in one transaction
   (:func:`orbitstore.storage.drop.drop_log`): entries and their blocks, heads, ACL
   frontiers, view rows and declared indexes, checkpoints, its local names and its
   manifest. A crash in the middle leaves the database whole, never half of it.

Dropping only forgets this node's copy: peers keep theirs, and opening the address again
(with a peer online) replicates it afresh. It is not a revocation and not an erasure from
the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from orbitstore.core.cid import Cid
from orbitstore.core.manifest import format_address, is_address, parse_address
from orbitstore.errors import NotFoundError, UsageError
from orbitstore.storage.drop import drop_log

if TYPE_CHECKING:
    from orbitstore.node.node import Node


@dataclass(frozen=True, slots=True, kw_only=True)
class DropReport:
    """What ``node.drop`` removed: the database's address, the local names that pointed
    at it, how many entries were forgotten, and whether a handle was open."""

    address: str
    names: tuple[str, ...]
    entries: int
    was_open: bool


def _resolve(node: Node, name_or_address: str) -> Cid:
    if is_address(name_or_address):
        db = parse_address(name_or_address)
        known = node.store.blocks.has(db) or db in node.store.databases()
        if not known:
            raise NotFoundError(
                f"this node holds no database {name_or_address!r:.200}",
                database=name_or_address,
            )
        return db
    found = node.store.get_name(name_or_address)
    if found is None:
        raise NotFoundError(
            f"this node has no database named {name_or_address!r:.200}",
            database=name_or_address,
        )
    return found


async def drop_database(node: Node, name_or_address: str) -> DropReport:
    """Close ``name_or_address``, leave its replication and remove its data (see the
    module docstring). NotFoundError if this node has no such database."""
    db = _resolve(node, name_or_address)
    if node.writes.in_batch:
        raise UsageError("cannot drop a database inside a batch: drop it after the batch")
    open_now = [d for d in node.open_databases() if d.cid == db]
    for database in open_now:
        await database.close()
    if node.discovery is not None:  # stop announcing it in the DHT now, not at the next wake
        node.discovery.remove_address(format_address(db))
    async with node.writes.locked():
        dropped = drop_log(node.store, db)
    node._open.pop(db, None)
    return DropReport(
        address=format_address(db),
        names=dropped.names,
        entries=dropped.entries,
        was_open=bool(open_now),
    )
