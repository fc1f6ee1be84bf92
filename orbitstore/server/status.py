"""Sync status as JSON: the node's peers, and per database what each peer has and lacks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orbitstore.node.database import Database
from orbitstore.node.node import Node
from orbitstore.node.ydoc import YDocument
from orbitstore.sync.peers import SyncFailure

if TYPE_CHECKING:
    from orbitstore.server.ywebsocket import Rooms


def node_status(node: Node) -> dict[str, Any]:
    """The node's writer id and, with a transport, its peer id, addresses and peers."""
    out: dict[str, Any] = {"writer": node.id, "networked": node.replication is not None}
    if node.replication is None:
        out.update(peer_id=None, addresses=[], connected=[])
        return out
    transport = node.replication.transport
    stats = node.replication.statistics()
    out.update(
        peer_id=stats.peer_id,
        addresses=transport.listen_addresses(),
        connected=list(stats.connected),
        announcements_sent=stats.announcements_sent,
        announcements_received=stats.announcements_received,
    )
    return out


def database_status(node: Node, database: Database, rooms: Rooms | None = None) -> dict[str, Any]:
    """One database's sync state: entries, heads, what the connected peers announced
    that we lack, and per peer what was sent and received (as ``orbitstore serve``
    prints it); for a ydoc database with ``rooms``, its awareness relay's counters
    (``awareness``, None for the other types)."""
    log = database.log
    peers: list[dict[str, Any]] = []
    missing: set[Any] = set()
    mine = None
    if node.replication is not None:
        stats = node.replication.statistics()
        mine = next((d for d in stats.databases if d.db == database.cid), None)
        for p in mine.peers if mine is not None else ():
            if p.peer not in stats.connected:
                continue
            missing.update(h for h in p.heads_known if not log.has(h))
            peers.append(
                {
                    "peer": p.peer,
                    "sent": p.entries_sent,
                    "received": p.entries_received,
                    "entries": p.entries,
                    "missing": p.missing,
                    "sessions": p.sessions,
                    "failures": p.failures,
                    "syncing": p.syncing,
                    "has_database": p.has_database,
                    "last_error": p.last_error,
                    "last_failure": _failure_json(p.last_failure),
                }
            )
    return {
        "name": database.name,
        "address": database.address,
        "entries": len(database),
        "heads": len(database.heads),
        "missing": len(missing),
        "needed": mine.needed if mine is not None else 0,
        "synced": mine.synced if mine is not None else False,
        "peers": peers,
        "awareness": (
            rooms.awareness(database.cid)
            if rooms is not None and isinstance(database, YDocument)
            else None
        ),
    }


def _failure_json(failure: SyncFailure | None) -> dict[str, Any] | None:
    """The last failure, typed: ``code``, ``message`` and, for a refused write or
    identity, the ``user`` and ``device`` it belongs to where one is known."""
    if failure is None:
        return None
    return {
        "code": failure.code,
        "message": failure.message,
        "user": failure.user,
        "device": failure.device,
    }
