"""The replication service: runs the sans-IO sync protocol over a :class:`Transport`.

One :class:`Replication` per node opened with a transport. For every open database it

- subscribes to the gossip topic ``/orbitstore/db/<manifest cid>``, with a validator that
  decodes and verifies every announcement before the transport delivers or forwards it;
- announces new local heads there (:mod:`orbitstore.node.announcer`);
- for a ydoc database, also subscribes to ``/orbitstore/awareness/<manifest cid>``: the
  presence of y-websocket clients between nodes, never stored
  (:mod:`orbitstore.node.awareness`);
- on an announcement: applies the inline entries, and syncs with the sender if some of
  the announced heads are still unknown (gossip is a hint, never the only path);
- runs a sync session (:mod:`orbitstore.node.session_runner`) when a peer connects, a
  database is opened, after reconnects and every ``anti_entropy_interval``; one at a
  time with each peer, whichever side opened it, and one of two that cross
  (:mod:`orbitstore.node.inbound`, :mod:`orbitstore.sync.inbound` Rule 4);
- answers manifest requests, and asks peers for one (:mod:`orbitstore.node.fetch`);
- for a private database (:mod:`orbitstore.core.privacy`): neither subscribes to nor
  announces on its topic (its heads are never gossiped), pushes local writes by syncing
  with the readers connected instead, opens and accepts sessions only after both peers
  proved a reader identity (:mod:`orbitstore.node.session_auth`), and sends its
  manifest only to a proven reader;
- stops all of that when the database is closed, and forgets it.

Everything a peer sends is verified before it is stored. A peer that breaks the protocol,
sends an invalid entry (anything the log would reject), an entry of another database or
too much, or asks for more than we serve, has its session dropped with an ``Error``
frame, and nothing of the offending frame is stored. Every boundary that handles remote
bytes also survives exceptions nobody expected: they are logged with the peer on the
``orbitstore.replication`` logger, counted (``unexpected_errors``), and end that peer's
session, never the node. See ``docs/replication.md``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import TYPE_CHECKING, Any

import trio

from orbitstore.core.cid import Cid
from orbitstore.core.devices import Delegation
from orbitstore.errors import (
    ClosedError,
    InvalidDataError,
    NetworkError,
    NotFoundError,
    SyncTimeoutError,
    UsageError,
)
from orbitstore.net.transport import PeerId, Transport
from orbitstore.node.announcer import TOPIC_PREFIX, Announcements, topic_for
from orbitstore.node.awareness import AwarenessRelay
from orbitstore.node.config import ReplicationConfig
from orbitstore.node.database import Database
from orbitstore.node.fetch import ManifestFetchReport, fetch_manifest
from orbitstore.node.inbound import serve_in
from orbitstore.node.privacy import is_private
from orbitstore.node.session_auth import auth_for
from orbitstore.node.session_runner import SessionRunner, store_entries
from orbitstore.node.sync_status import (
    DatabaseSyncStatus,
    DbState,
    PeerSyncStatus,
    ProgressFanout,
    ReplicationStatistics,
    SyncProgress,
)
from orbitstore.sync.auth import PeerAuth, Signer
from orbitstore.sync.frames import FrameDecoder
from orbitstore.sync.peers import SyncFailure, sources_for
from orbitstore.sync.received import check_entries
from orbitstore.sync.serve_limits import PeerBudgets, PeerServeBudget
from orbitstore.views.base import Lagged

if TYPE_CHECKING:
    from orbitstore.core.limits import EntryLimits

logger = logging.getLogger("orbitstore.replication")


class Replication:
    """The node's replication service. Made and owned by :func:`open_node`."""

    def __init__(
        self,
        *,
        transport: Transport,
        config: ReplicationConfig,
        limits: EntryLimits,
        identity: Signer | None = None,
    ) -> None:
        self.transport = transport
        # What this node proves to the peers of private databases (none: it cannot).
        self.identity = identity
        self.config = config
        self.entry_limits = limits
        self._dbs: dict[Cid, DbState] = {}
        self._addresses: dict[str, PeerId | None] = {}
        self._nursery: trio.Nursery | None = None
        self._peer_lot = trio.lowlevel.ParkingLot()  # woken when a peer connects
        self._announcements = Announcements(transport=transport, config=config, limits=limits)
        #: Awareness (presence, cursors) of ydoc databases over gossip, never stored.
        self.awareness = AwarenessRelay(transport=transport)
        self._progress = ProgressFanout()
        self._budgets = PeerBudgets(config.serve_limits)
        # Subscribing and unsubscribing a topic take turns: a database reopened while
        # its closed handle is being unsubscribed must end up subscribed.
        self._topics_lock = trio.Lock()
        self._counts: Counter[str] = Counter()  # fetched, served, refused, unexpected, crossed
        self._inbound: Counter[tuple[Cid, PeerId]] = Counter()  # sessions peers opened

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled (the node's nursery owns this task)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            # Inbound streams are served in our nursery (node/inbound.py).
            self.transport.set_stream_handler(lambda stream: serve_in(self, nursery, stream))
            self.transport.set_peer_handlers(
                connected=self._on_connected, disconnected=self._on_disconnected
            )
            nursery.start_soon(self._announcements.publisher)
            nursery.start_soon(self.awareness.publisher)
            nursery.start_soon(self._anti_entropy)
            nursery.start_soon(self._reconnector)
            task_status.started()
            await trio.sleep_forever()

    @property
    def peer_id(self) -> PeerId:
        return self.transport.peer_id

    async def connect(self, address: str) -> PeerId:
        """Dial ``address`` and keep reconnecting to it when the link drops."""
        with trio.fail_after(self.config.connect_timeout):
            peer = await self.transport.connect(address)
        self._addresses[address] = peer
        return peer

    async def add_database(self, database: Database) -> None:
        """Start replicating ``database`` (called by :meth:`Node.open`) until it is
        closed: then it is unsubscribed, its tasks stop and it is forgotten."""
        old = self._dbs.get(database.cid)
        if old is not None:
            if old.database is database:
                return
            await self._forget(old)  # a closed handle of the same database
        nursery = self._require_nursery()
        st = DbState(database)
        self._dbs[database.cid] = st

        async def on_gossip(peer: PeerId, data: bytes) -> None:
            await self._on_announcement(st, peer, data)

        if not is_private(st.database):  # a private database gossips nothing, presence too
            async with self._topics_lock:
                await self.transport.subscribe(
                    topic_for(database.cid),
                    on_gossip,
                    validator=self._announcements.validator(database),
                )
                if database.type_name == "ydoc":
                    await self.awareness.add(database.cid)
        ready = trio.Event()
        nursery.start_soon(self._announce, st, ready)
        await ready.wait()
        for peer in sorted(self.transport.connected_peers()):
            self.request_sync(database, peer)

    async def _announce(self, st: DbState, ready: trio.Event) -> None:
        """The database's announcer; once it ends (the database closed) the database is
        forgotten. When the service stops, the cancellation passes through: the transport
        is going away, there is nothing to unsubscribe from."""
        push = (lambda: self._push(st)) if is_private(st.database) else None
        try:
            await self._announcements.announcer(st.database, ready, st.scope, push)
        except ClosedError:
            ready.set()
        await self._forget(st)

    async def _forget(self, st: DbState) -> None:
        """Stop replicating a (closed) database: its announcer and sessions end."""
        st.scope.cancel()
        for scope in list(st.sessions):
            scope.cancel()
        if self._dbs.get(st.database.cid) is not st:
            return
        del self._dbs[st.database.cid]
        st.notify()
        if is_private(st.database):
            return  # never subscribed
        async with self._topics_lock:
            with (
                suppress(NetworkError, ClosedError),
                trio.move_on_after(self.config.connect_timeout),
            ):
                await self.awareness.remove(st.database.cid)
                await self.transport.unsubscribe(topic_for(st.database.cid))

    async def fetch_manifest(
        self, db: Cid, *, wait_for_peer: bool = False, delegation: Delegation | None = None
    ) -> ManifestFetchReport:
        """Ask every connected peer for the manifest block ``db`` (first verified answer
        wins, within ``manifest_timeout``). The caller stores it.

        ``wait_for_peer``: when no peer is connected yet (a node that has just started and
        is still dialling its bootstrap peers), wait up to ``manifest_timeout`` for one."""
        if wait_for_peer and not self.transport.connected_peers():
            with trio.move_on_after(self.config.manifest_timeout):
                while not self.transport.connected_peers():
                    await self._peer_lot.park()
        report = await fetch_manifest(
            self.transport, self.config, db, self.identity, delegation=delegation
        )
        self._counts["refused"] += report.invalid
        self._counts["unexpected"] += report.unexpected
        if report.fetched is not None:
            self._counts["fetched"] += 1
        return report

    def _require_nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise UsageError("the replication service is not running")
        return self._nursery

    # -- status ---------------------------------------------------------------------------

    def statistics(self) -> ReplicationStatistics:
        connected = self.transport.connected_peers()
        counts = self._announcements.counts
        return ReplicationStatistics(
            peer_id=self.peer_id,
            connected=tuple(sorted(connected)),
            databases=tuple(st.status(connected) for st in self._dbs.values()),
            announcements_sent=counts.sent,
            announcements_received=counts.received,
            announcements_dropped=counts.dropped,
            manifests_fetched=self._counts["fetched"],
            manifests_served=self._counts["served"],
            manifest_answers_refused=self._counts["refused"],
            announcements_rejected=counts.rejected,
            unexpected_errors=self._counts["unexpected"] + counts.unexpected,
            progress_dropped=self._progress.dropped,
            sessions_crossed=self._counts["crossed"],
        )

    @asynccontextmanager
    async def subscribe_progress(
        self, *, buffer: int = 1000
    ) -> AsyncIterator[trio.MemoryReceiveChannel[SyncProgress | Lagged]]:
        """Progress events from now on. A subscriber more than ``buffer`` events behind
        misses events (counted in ``progress_dropped``) and then receives one
        :class:`~orbitstore.views.base.Lagged` with the number it missed."""
        async with self._progress.subscribe(buffer) as channel:
            yield channel

    def _emit(self, event: SyncProgress) -> None:
        self._progress.emit(event)

    async def wait_synced(
        self,
        database: Database,
        *,
        peer: PeerId | None = None,
        timeout: float = 30.0,
        min_peers: int = 0,
    ) -> None:
        """Return once we hold every head the connected peers (or ``peer``) told us of,
        having heard from each of them. Heads a peer did not send in a completed session
        with it no longer count (see :mod:`orbitstore.sync.peers`). ``min_peers``: also
        wait until at least that many peers are connected (a node still dialling its
        bootstrap peers is not "in sync" with nobody). Raises SyncTimeoutError after
        ``timeout``."""
        st = self._dbs.get(database.cid)
        if st is None or st.database is not database:
            raise NotFoundError(f"{database.address} is not replicated by this node")

        def done() -> bool:
            connected = self.transport.connected_peers()
            enough = peer is not None or len(connected) >= min_peers
            return enough and st.synced(connected, peer)

        try:
            with trio.fail_after(timeout):
                while not done():
                    await st.changed.wait()
        except trio.TooSlowError as exc:
            connected = self.transport.connected_peers()
            waiting = st.unsynced(connected, peer)
            if peer is None and len(connected) < min_peers:
                waiting = f"{len(connected)} of at least {min_peers} peers connected; {waiting}"
            raise SyncTimeoutError(
                f"not synced with {peer or 'the connected peers'} after {timeout} s: {waiting}"
            ) from exc

    # -- announcements --------------------------------------------------------------------

    async def _on_announcement(self, st: DbState, peer: PeerId, data: bytes) -> None:
        """The gossip handler: a remote boundary, it survives anything the peer sends."""
        try:
            await self._handle_announcement(st, peer, data)
        except ClosedError:
            pass  # the database was closed meanwhile; it is being forgotten
        except Exception as exc:
            self._unexpected(st, peer, exc, "an announcement")

    async def _handle_announcement(self, st: DbState, peer: PeerId, data: bytes) -> None:
        database = st.database
        if self._dbs.get(database.cid) is not st or database._closed:
            return  # closed meanwhile
        record = st.peer(peer)
        announcement = self._announcements.take(database, peer, data)
        if announcement is None:
            record.last_failure = SyncFailure(
                error="ProtocolError", code="protocol", message="invalid announcement"
            )
            return
        heads = frozenset(announcement.heads)
        # An announcement updates what we know of the peer's heads, but it is not proof
        # that we heard from the peer on this connection: gossip replays old messages
        # to a new mesh member (IHAVE/IWANT), so only a hello (or "not found") is.
        log = database.log
        record.told(heads, log.has)
        record.has_db = True
        # Verified by the validator; the entries we held then were left out there.
        entries = [e for e in announcement.entries if not log.has(e.cid)]
        if entries:
            try:
                check_entries(entries, database.cid, log.access.can_write)
                await store_entries(st, peer, entries, sum(len(e.block) for e in entries))
            except InvalidDataError as exc:
                record.last_failure = SyncFailure.of(exc)
                record.failures += 1
            else:
                self._emit(
                    SyncProgress("entries", database.cid, peer, entries_received=len(entries))
                )
        st.notify()
        if not all(log.has(h) for h in heads):
            self._sync_for_heads(st, peer)

    def _push(self, st: DbState) -> None:
        """A private database's local writes: sync with the connected peers that proved
        a reader identity for it (what gossip does for a public one)."""
        for peer in sorted(self.transport.connected_peers()):
            if st.peer(peer).has_db and st.peer(peer).heard:
                self.request_sync(st.database, peer)

    def _auth(self, st: DbState, peer: PeerId, *, initiator: bool) -> PeerAuth | None:
        """The reader proof of a session with ``peer`` (None: a public database)."""
        return auth_for(st.database, self.identity, self.peer_id, peer, initiator=initiator)

    def _sync_for_heads(self, st: DbState, peer: PeerId) -> None:
        connected = self.transport.connected_peers()
        for other in sources_for(peer, connected, lambda p: st.peer(p).has_db):
            self.request_sync(st.database, other)

    def _unexpected(self, st: DbState | None, peer: PeerId, exc: Exception, where: str) -> None:
        """Something a peer sent raised an exception we did not expect: log it with the
        peer, count it, and carry on (the caller drops the peer's session)."""
        self._counts["unexpected"] += 1
        if st is not None:
            record = st.peer(peer)
            record.failures += 1
            record.last_failure = SyncFailure.of(exc, code="internal")
        of = f" for {st.database.address}" if st is not None else ""
        logger.warning("unexpected error handling %s from %s%s", where, peer, of, exc_info=exc)

    def _budget(self, peer: PeerId) -> PeerServeBudget:
        """The peer's serve buckets (kept across its sessions and reconnects)."""
        return self._budgets.get(peer, trio.current_time())

    # -- sessions -------------------------------------------------------------------------

    def request_sync(self, database: Database, peer: PeerId) -> None:
        """Sync ``database`` with ``peer`` soon (again, if a sync is running)."""
        st = self._dbs.get(database.cid)
        if st is None or st.database is not database or self._nursery is None:
            return
        link = st.link(peer)
        if link.active or self._inbound[st.database.cid, peer]:
            link.again = True  # after the running session, whoever opened it
            return
        link.active = True
        self._nursery.start_soon(self._sync_loop, st, peer)

    @contextmanager
    def inbound_session(self, st: DbState, peer: PeerId) -> Iterator[None]:
        """Around a session the peer opened: ours wait for it to end (two at once would
        each send the other what it is already being sent)."""
        key = (st.database.cid, peer)
        self._inbound[key] += 1
        try:
            yield
        finally:
            self._inbound[key] -= 1
            if not self._inbound[key]:
                del self._inbound[key]
                link = st.peers.get(peer)
                if link is not None and link.again and not link.active:
                    link.again = False
                    self.request_sync(st.database, peer)

    async def _sync_loop(self, st: DbState, peer: PeerId) -> None:
        link = st.link(peer)
        try:
            while self._dbs.get(st.database.cid) is st:
                link.again = False
                try:
                    with trio.fail_after(self.config.connect_timeout):
                        stream = await self.transport.open_stream(peer)
                except (NetworkError, trio.TooSlowError) as exc:
                    link.record.last_failure = SyncFailure.of(exc, code="network")
                    link.record.failures += 1
                    return
                decoder = FrameDecoder(self.config.frame_limits)
                try:
                    auth = self._auth(st, peer, initiator=True)
                    runner = SessionRunner(self, st, stream, decoder, [], auth=auth)
                    await runner.run()
                except Exception as exc:  # a remote boundary, like _serve
                    self._unexpected(st, peer, exc, "a sync session")
                    return
                if runner.crossed:  # the peer's session covers it: again after that one
                    self._counts["crossed"] += 1
                    link.again = True
                    return
                if not link.again or peer not in self.transport.connected_peers():
                    return
        finally:
            link.active = False
            st.notify()

    def state_of(self, db: Cid) -> DbState | None:
        """The state of the open database ``db`` (None: not replicated here)."""
        return self._dbs.get(db)

    def _count(self, what: str) -> None:
        self._counts[what] += 1  # node/inbound.py: "served" manifests, "crossed" sessions

    # -- peers ----------------------------------------------------------------------------

    async def _on_connected(self, peer: PeerId) -> None:
        self._peer_lot.unpark_all()
        for st in list(self._dbs.values()):
            st.notify()
            if self.peer_id < peer:
                self.request_sync(st.database, peer)
        await trio.lowlevel.checkpoint()

    async def _on_disconnected(self, peer: PeerId) -> None:
        self.awareness.peer_gone(peer)
        self._budgets.disconnected(peer, trio.current_time())
        for st in list(self._dbs.values()):
            link = st.peers.get(peer)
            if link is not None:
                link.record.heard = False
            st.notify()
        await trio.lowlevel.checkpoint()

    async def _anti_entropy(self) -> None:
        while True:
            await trio.sleep(self.config.anti_entropy_interval)
            for st in list(self._dbs.values()):
                for peer in sorted(self.transport.connected_peers()):
                    if self.peer_id < peer:
                        self.request_sync(st.database, peer)

    async def _reconnector(self) -> None:
        while True:
            await trio.sleep(self.config.reconnect_interval)
            connected = self.transport.connected_peers()
            for address, peer in list(self._addresses.items()):
                if peer is not None and peer in connected:
                    continue
                try:
                    with trio.fail_after(self.config.connect_timeout):
                        self._addresses[address] = await self.transport.connect(address)
                except (NetworkError, trio.TooSlowError):
                    pass


__all__ = [
    "TOPIC_PREFIX",
    "DatabaseSyncStatus",
    "PeerSyncStatus",
    "Replication",
    "ReplicationStatistics",
    "SyncFailure",
    "SyncProgress",
    "topic_for",
]
