"""Replication status: the public statistics types, progress events and their fan-out.

:class:`ReplicationStatistics` is what ``node.replication.statistics()`` returns: per
database, per peer, what we know of the peer (from :class:`~orbitstore.sync.peers.
PeerRecord`), and the failures as typed values (:class:`SyncFailure`: the error's class
name and stable code), not strings. :class:`ProgressFanout` hands progress events to
subscribers without ever blocking the service: a subscriber that falls behind misses
events, counted, and receives one :class:`~orbitstore.views.base.Lagged` marker with the
count before the next event it gets (like a database subscription).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from orbitstore.core.cid import Cid
from orbitstore.net.transport import PeerId
from orbitstore.sync.peers import InflightWants, PeerRecord, SyncFailure
from orbitstore.views.base import Lagged

if TYPE_CHECKING:
    from orbitstore.node.database import Database


@dataclass(frozen=True, slots=True)
class PeerSyncStatus:
    peer: PeerId
    heads_known: frozenset[Cid]
    """The peer's heads, as it last told us (hello or announcement)."""
    missing: int
    """How many of those heads we do not hold yet (undelivered ones included)."""
    has_database: bool
    entries_sent: int
    entries_received: int
    bytes_sent: int
    bytes_received: int
    sessions: int
    failures: int
    syncing: bool
    last_sync: float | None
    """trio clock time of the last completed session."""
    last_error: str | None
    """``"<code>: <message>"`` of the last failure (``last_failure`` has it typed)."""
    last_failure: SyncFailure | None = None
    undelivered: int = 0
    """Heads the peer told us of and did not send in a completed session: they no
    longer hold ``wait_synced`` (see :mod:`orbitstore.sync.peers`)."""
    cut_off: int = 0
    """Sessions cut off because the peer asked for more than we serve."""
    entries: int | None = None
    """How many entries of the database the peer holds, from its last Hello; None when
    it did not say (a node from before the Hello's ``n`` field): progress then counts
    heads."""


@dataclass(frozen=True, slots=True)
class DatabaseSyncStatus:
    db: Cid
    peers: tuple[PeerSyncStatus, ...]
    needed: int
    """Parents the log is waiting for (held entries whose ancestors are missing)."""
    synced: bool
    """We hold every head the connected peers have announced (and can serve)."""


@dataclass(frozen=True, slots=True)
class ReplicationStatistics:
    peer_id: PeerId
    connected: tuple[PeerId, ...]
    databases: tuple[DatabaseSyncStatus, ...]
    announcements_sent: int
    announcements_received: int
    announcements_dropped: int
    manifests_fetched: int
    """Manifests this node fetched from peers (to open an address)."""
    manifests_served: int
    """Manifests this node sent to peers that asked."""
    manifest_answers_refused: int
    """Peers' answers to our manifest requests that did not verify."""
    announcements_rejected: int = 0
    """Announcements that did not decode or verify: refused before being forwarded."""
    unexpected_errors: int = 0
    """Peer input that raised an exception we did not expect (logged with the peer on
    the ``orbitstore.replication`` logger); the peer's session was dropped."""
    progress_dropped: int = 0
    """Progress events subscribers missed because they were behind."""
    sessions_crossed: int = 0
    """Sessions that crossed one of ours about the same database and were ended, by us
    (``busy``) or by the peer (sync/inbound.py Rule 4): each would have sent the log a
    second time."""


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """A progress event: ``kind`` is ``started``, ``entries``, ``finished`` or ``failed``.

    ``entries`` follows every batch of entries applied, from a session or from an
    announcement (then outside of any started/finished pair), once they are in the log:
    it is the signal that the log grew, even when no view changed (an entry that loses
    a last-writer-wins race changes no key)."""

    kind: str
    db: Cid
    peer: PeerId
    entries_received: int = 0
    entries_sent: int = 0
    error: str | None = None
    failure: SyncFailure | None = None
    peer_entries: int | None = None
    """On ``entries`` events: how many entries the peer holds, from its Hello (None:
    it did not say). With the log's length, the total of a catch-up in entries."""


@dataclass(slots=True)
class PeerLink:
    """The service's scheduling state of one (database, peer)."""

    record: PeerRecord = field(default_factory=PeerRecord)
    active: bool = False
    again: bool = False


@dataclass(slots=True)
class DbState:
    """One replicated database."""

    database: Database
    peers: dict[PeerId, PeerLink] = field(default_factory=dict)
    inflight: InflightWants = field(default_factory=InflightWants)
    changed: trio.Event = field(default_factory=trio.Event)
    # Cancel the database's announcer and sessions when it is closed.
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    sessions: set[trio.CancelScope] = field(default_factory=set)
    # The ``have`` sample of our Hello for these heads (sync/session.hello_sample): kept
    # while the heads stay the same, instead of a walk per session.
    hello_sample: tuple[frozenset[Cid], tuple[Cid, ...]] | None = None

    def link(self, peer: PeerId) -> PeerLink:
        link = self.peers.get(peer)
        if link is None:
            link = self.peers[peer] = PeerLink()
        return link

    def peer(self, peer: PeerId) -> PeerRecord:
        return self.link(peer).record

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def synced(self, connected: set[PeerId], peer: PeerId | None) -> bool:
        """We heard from every connected peer (or ``peer``) and hold what it claims."""
        has = self.database.log.has
        peers = connected if peer is None else {peer} & connected
        if peer is not None and not peers:
            return False
        for p in peers:
            link = self.peers.get(p)
            if link is None or not link.record.heard:
                return False
            if link.record.has_db and link.record.missing(has):
                return False
        return True

    def unsynced(self, connected: set[PeerId], peer: PeerId | None) -> str:
        """What :meth:`synced` still waits for, in words (for SyncTimeoutError)."""
        has = self.database.log.has
        peers = sorted(connected if peer is None else {peer} & connected)
        if not peers:
            return f"{peer} is not connected" if peer is not None else "no peer is connected"
        parts = []
        for p in peers:
            link = self.peers.get(p)
            if link is None or not link.record.heard:
                parts.append(f"{p}: not heard from yet")
            elif link.record.has_db and (missing := link.record.missing(has)):
                parts.append(f"{p}: {missing} announced heads not held")
        return "; ".join(parts) or "nothing (synced just now)"

    def status(self, connected: set[PeerId]) -> DatabaseSyncStatus:
        log = self.database.log
        return DatabaseSyncStatus(
            db=self.database.cid,
            peers=tuple(
                _peer_status(peer, link, log.has) for peer, link in sorted(self.peers.items())
            ),
            needed=len(log.needed),
            synced=self.synced(connected, None),
        )


def _peer_status(peer: PeerId, link: PeerLink, has: Callable[[Cid], bool]) -> PeerSyncStatus:
    r = link.record
    failure = r.last_failure
    return PeerSyncStatus(
        peer=peer,
        heads_known=r.heads,
        missing=r.all_missing(has),
        has_database=r.has_db,
        entries_sent=r.entries_sent,
        entries_received=r.entries_received,
        bytes_sent=r.bytes_sent,
        bytes_received=r.bytes_received,
        sessions=r.sessions,
        failures=r.failures,
        syncing=link.active,
        last_sync=r.last_sync,
        last_error=None if failure is None else str(failure),
        last_failure=failure,
        undelivered=len(r.undelivered),
        cut_off=r.cut_off,
        entries=r.entries,
    )


class ProgressFanout:
    """Progress events to every subscriber, never blocking (see the module docstring)."""

    def __init__(self) -> None:
        self._subscribers: dict[trio.MemorySendChannel[SyncProgress | Lagged], int] = {}
        self.dropped = 0

    @asynccontextmanager
    async def subscribe(
        self, buffer: int
    ) -> AsyncIterator[trio.MemoryReceiveChannel[SyncProgress | Lagged]]:
        send, recv = trio.open_memory_channel[SyncProgress | Lagged](buffer)
        self._subscribers[send] = 0
        try:
            yield recv
        finally:
            self._subscribers.pop(send, None)
            send.close()

    def emit(self, event: SyncProgress) -> None:
        for channel, missed in list(self._subscribers.items()):
            try:
                if missed:
                    channel.send_nowait(Lagged(missed))
                    self._subscribers[channel] = 0
                channel.send_nowait(event)
            except trio.WouldBlock:
                self._subscribers[channel] += 1
                self.dropped += 1
            except trio.BrokenResourceError:
                self._subscribers.pop(channel, None)


__all__ = [
    "DatabaseSyncStatus",
    "DbState",
    "PeerLink",
    "PeerSyncStatus",
    "ProgressFanout",
    "ReplicationStatistics",
    "SyncProgress",
]
