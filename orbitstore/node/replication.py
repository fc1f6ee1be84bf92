"""The replication service: runs the sans-IO sync protocol over a :class:`Transport`.

One :class:`Replication` per node opened with a transport. For every open database it

- subscribes to the gossip topic ``/orbitstore/db/<manifest cid>``;
- announces new local heads there, coalesced (at most one message per database per
  ``announce_interval``), with the newest small entries inline, through a bounded queue;
- on an announcement: applies the inline entries, and syncs with the sender if some of
  the announced heads are still unknown (gossip is a hint, never the only path);
- runs a sync session (:mod:`orbitstore.sync.session`) over a stream when a peer
  connects, when a database is opened, after reconnects and every
  ``anti_entropy_interval`` (anti-entropy);
- answers peers' manifest requests for the databases it replicates, and asks its peers
  for a manifest the node lacks (:mod:`orbitstore.node.fetch`).

Everything a peer sends is verified before it is stored. A peer that breaks the protocol,
sends an invalid entry (anything the log would reject), an entry of another database or
too much, has its session dropped with an ``Error`` frame, and nothing of the offending
frame is stored. See ``docs/replication.md``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.errors import (
    InvalidDataError,
    NetworkError,
    NotFoundError,
    OrbitstoreError,
    ProtocolError,
    SyncTimeoutError,
    UsageError,
)
from orbitstore.net.transport import PeerId, Stream, Transport
from orbitstore.node.config import ReplicationConfig
from orbitstore.node.database import Database
from orbitstore.node.fetch import ManifestFetchReport, fetch_manifest, serve_manifest_request
from orbitstore.node.verify import verify_blocks, verify_chunk
from orbitstore.sync.frames import (
    Done,
    Error,
    FrameDecoder,
    GetManifest,
    Hello,
    Message,
    encode_frame,
)
from orbitstore.sync.session import ApplyEntries, PeerHeads, SyncSession
from orbitstore.views.base import Lagged

if TYPE_CHECKING:
    from orbitstore.core.limits import EntryLimits
    from orbitstore.core.oplog import OpLog

TOPIC_PREFIX = "/orbitstore/db/"
_WRITE_BYTES = 64 * 1024  # coalesce frames into writes of at least this size
# Verified frames waiting for the applier (at most ~1 MiB of entries at the default
# frame size). One would be enough for verify and apply to overlap; a few let the applier
# commit several frames at once when it is the slower side.
_FRAMES_AHEAD = 4


def topic_for(db: Cid) -> str:
    return f"{TOPIC_PREFIX}{db}"


# --- status ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerSyncStatus:
    peer: PeerId
    heads_known: frozenset[Cid]
    """The peer's heads, as it last told us (hello or announcement)."""
    missing: int
    """How many of those heads we do not hold yet."""
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


@dataclass(frozen=True, slots=True)
class DatabaseSyncStatus:
    db: Cid
    peers: tuple[PeerSyncStatus, ...]
    needed: int
    """Parents the log is waiting for (held entries whose ancestors are missing)."""
    synced: bool
    """We hold every head the connected peers have announced."""


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


@dataclass(slots=True)
class _Peer:
    heads: frozenset[Cid] = frozenset()
    # Heads the peer told us of (hello or announcement) that we did not hold then. A
    # later message never removes one: gossip may replay an older announcement after a
    # newer hello, and wait_synced must still wait for what the hello promised.
    unheld: set[Cid] = field(default_factory=set)
    heard: bool = False
    has_db: bool = True
    entries_sent: int = 0
    entries_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    sessions: int = 0
    failures: int = 0
    active: bool = False
    again: bool = False
    last_sync: float | None = None
    last_error: str | None = None


@dataclass(slots=True)
class _Db:
    database: Database
    peers: dict[PeerId, _Peer] = field(default_factory=dict)
    inflight: dict[Cid, PeerId] = field(default_factory=dict)
    changed: trio.Event = field(default_factory=trio.Event)

    def peer(self, peer: PeerId) -> _Peer:
        state = self.peers.get(peer)
        if state is None:
            state = self.peers[peer] = _Peer()
        return state

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


class _Backlog:
    """Frames verified and handed to the applier but not applied yet."""

    def __init__(self) -> None:
        self._count = 0
        self._drained = trio.Event()
        self._drained.set()

    def add(self) -> None:
        if not self._count:
            self._drained = trio.Event()
        self._count += 1

    def done(self) -> None:
        self._count -= 1
        if not self._count:
            self._drained.set()

    async def wait_drained(self) -> None:
        await self._drained.wait()


class _Wake:
    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = trio.Event()


# --- the service -----------------------------------------------------------------------


class Replication:
    """The node's replication service. Made and owned by :func:`open_node`."""

    def __init__(
        self,
        *,
        transport: Transport,
        config: ReplicationConfig,
        limits: EntryLimits,
    ) -> None:
        self.transport = transport
        self.config = config
        self._limits = limits
        self._dbs: dict[Cid, _Db] = {}
        self._addresses: dict[str, PeerId | None] = {}
        self._nursery: trio.Nursery | None = None
        self._peer_lot = trio.lowlevel.ParkingLot()  # woken when a peer connects
        self._announce_send, self._announce_recv = trio.open_memory_channel[tuple[str, bytes]](
            config.announce_queue
        )
        self._progress: set[trio.MemorySendChannel[SyncProgress]] = set()
        self._counts = {
            "sent": 0,
            "received": 0,
            "dropped": 0,
            "fetched": 0,
            "served": 0,
            "refused": 0,
        }

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled (the node's nursery owns this task)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.transport.set_stream_handler(self._on_stream)
            self.transport.set_peer_handlers(
                connected=self._on_connected, disconnected=self._on_disconnected
            )
            nursery.start_soon(self._publisher)
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
        """Start replicating ``database`` (called by :meth:`Node.open`)."""
        if database.cid in self._dbs:
            return
        st = _Db(database)
        self._dbs[database.cid] = st

        async def on_gossip(peer: PeerId, data: bytes) -> None:
            await self._on_announcement(st, peer, data)

        await self.transport.subscribe(topic_for(database.cid), on_gossip)
        nursery = self._require_nursery()
        ready = trio.Event()
        nursery.start_soon(self._announcer, st, ready)
        await ready.wait()
        for peer in sorted(self.transport.connected_peers()):
            self.request_sync(database, peer)

    async def fetch_manifest(self, db: Cid, *, wait_for_peer: bool = False) -> ManifestFetchReport:
        """Ask every connected peer for the manifest block ``db`` (first verified answer
        wins, within ``manifest_timeout``). The caller stores it.

        ``wait_for_peer``: when no peer is connected yet (a node that has just started and
        is still dialling its bootstrap peers), wait up to ``manifest_timeout`` for one."""
        if wait_for_peer and not self.transport.connected_peers():
            with trio.move_on_after(self.config.manifest_timeout):
                while not self.transport.connected_peers():
                    await self._peer_lot.park()
        report = await fetch_manifest(self.transport, self.config, db)
        self._counts["refused"] += report.invalid
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
        return ReplicationStatistics(
            peer_id=self.peer_id,
            connected=tuple(sorted(connected)),
            databases=tuple(self._db_status(st, connected) for st in self._dbs.values()),
            announcements_sent=self._counts["sent"],
            announcements_received=self._counts["received"],
            announcements_dropped=self._counts["dropped"],
            manifests_fetched=self._counts["fetched"],
            manifests_served=self._counts["served"],
            manifest_answers_refused=self._counts["refused"],
        )

    def _db_status(self, st: _Db, connected: set[PeerId]) -> DatabaseSyncStatus:
        log = st.database.log
        peers = tuple(
            PeerSyncStatus(
                peer=peer,
                heads_known=p.heads,
                missing=self._unheld(p, log),
                has_database=p.has_db,
                entries_sent=p.entries_sent,
                entries_received=p.entries_received,
                bytes_sent=p.bytes_sent,
                bytes_received=p.bytes_received,
                sessions=p.sessions,
                failures=p.failures,
                syncing=p.active,
                last_sync=p.last_sync,
                last_error=p.last_error,
            )
            for peer, p in sorted(st.peers.items())
        )
        return DatabaseSyncStatus(
            db=st.database.cid,
            peers=peers,
            needed=len(log.needed),
            synced=self._synced(st, connected, None),
        )

    @asynccontextmanager
    async def progress(
        self, *, buffer: int = 1000
    ) -> AsyncIterator[trio.MemoryReceiveChannel[SyncProgress]]:
        """Progress events from now on (dropped for this subscriber when it lags)."""
        send, recv = trio.open_memory_channel[SyncProgress](buffer)
        self._progress.add(send)
        try:
            yield recv
        finally:
            self._progress.discard(send)
            send.close()

    def _emit(self, event: SyncProgress) -> None:
        for channel in list(self._progress):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                pass
            except trio.BrokenResourceError:
                self._progress.discard(channel)

    def _synced(self, st: _Db, connected: set[PeerId], peer: PeerId | None) -> bool:
        log = st.database.log
        peers = connected if peer is None else {peer} & connected
        if peer is not None and not peers:
            return False
        for p in peers:
            state = st.peers.get(p)
            if state is None or not state.heard:
                return False
            if state.has_db and self._unheld(state, log):
                return False
        return True

    @staticmethod
    def _unheld(state: _Peer, log: OpLog) -> int:
        """How many heads the peer told us of we still lack (forgets those we hold)."""
        if state.unheld:
            state.unheld = {h for h in state.unheld if not log.has(h)}
        return len(state.unheld)

    @staticmethod
    def _told(state: _Peer, heads: frozenset[Cid], log: OpLog) -> None:
        state.heads = heads
        state.unheld.update(h for h in heads if not log.has(h))

    async def wait_synced(
        self, database: Database, *, peer: PeerId | None = None, timeout: float = 30.0
    ) -> None:
        """Return once we hold every head the connected peers (or ``peer``) told us of,
        having heard from each of them. Raises SyncTimeoutError after ``timeout``."""
        st = self._dbs.get(database.cid)
        if st is None:
            raise NotFoundError(f"{database.address} is not replicated by this node")
        try:
            with trio.fail_after(timeout):
                while not self._synced(st, self.transport.connected_peers(), peer):
                    await st.changed.wait()
        except trio.TooSlowError as exc:
            raise SyncTimeoutError(
                f"not synced with {peer or 'the connected peers'} after {timeout} s"
            ) from exc

    # -- announcements --------------------------------------------------------------------

    async def _announcer(self, st: _Db, ready: trio.Event) -> None:
        db = st.database
        async with db.subscribe() as changes:
            ready.set()
            last = -math.inf
            async for item in changes:
                if not isinstance(item, Lagged) and not item.local:
                    continue
                # The first write after a quiet spell is announced at once (propagation
                # latency); writes within announce_interval of an announcement wait for
                # the interval to end and share one more.
                wait = last + self.config.announce_interval - trio.current_time()
                if wait > 0:
                    await trio.sleep(wait)
                while changes.receive_nowait() is not None:
                    pass
                self._queue_announcement(st)
                last = trio.current_time()

    def _queue_announcement(self, st: _Db) -> None:
        db = st.database
        heads = sorted(db.heads)
        inline: list[Entry] = []
        budget = self.config.announce_inline_bytes
        for entry in db.log.traverse(heads, reverse=True, limit=256):
            if len(entry.block) > budget:
                break
            budget -= len(entry.block)
            inline.append(entry)
        inline.reverse()
        data = codec.encode(
            {
                "db": db.cid,
                "heads": heads,
                "entries": [[e.cid, e.block] for e in inline],
            }
        )
        try:
            self._announce_send.send_nowait((topic_for(db.cid), data))
        except trio.WouldBlock:
            self._counts["dropped"] += 1

    async def _publisher(self) -> None:
        async for topic, data in self._announce_recv:
            try:
                with trio.fail_after(self.config.connect_timeout):
                    await self.transport.publish(topic, data)
                self._counts["sent"] += 1
            except (NetworkError, trio.TooSlowError):
                self._counts["dropped"] += 1

    async def _on_announcement(self, st: _Db, peer: PeerId, data: bytes) -> None:
        self._counts["received"] += 1
        state = st.peer(peer)
        try:
            heads, blocks = self._decode_announcement(st, data)
        except ProtocolError as exc:
            state.last_error = str(exc)
            return
        # An announcement updates what we know of the peer's heads, but it is not proof
        # that we heard from the peer on this connection: gossip replays old messages
        # to a new mesh member (IHAVE/IWANT), so only a hello (or "not found") is.
        self._told(state, heads, st.database.log)
        state.has_db = True
        # Inline entries we hold already (the announcement repeats the newest ones) are
        # not decoded and verified again.
        log = st.database.log
        blocks = [(cid, block) for cid, block in blocks if not log.has(cid)]
        if blocks:
            try:
                await self._apply(st, peer, blocks)
            except ProtocolError as exc:
                state.last_error = str(exc)
                state.failures += 1
            else:
                self._emit(
                    SyncProgress("entries", st.database.cid, peer, entries_received=len(blocks))
                )
        st.notify()
        if not all(st.database.log.has(h) for h in heads):
            connected = self.transport.connected_peers()
            if peer in connected:
                self.request_sync(st.database, peer)
            else:
                # Gossip forwarded it from a peer we are not connected to: the peers it
                # came through are likely to hold the entries.
                for other in sorted(connected):
                    if st.peer(other).has_db:
                        self.request_sync(st.database, other)

    def _decode_announcement(
        self, st: _Db, data: bytes
    ) -> tuple[frozenset[Cid], list[tuple[Cid, bytes]]]:
        try:
            msg = codec.decode(data)
        except InvalidDataError as exc:
            raise ProtocolError(f"announcement is not DAG-CBOR: {exc}") from exc
        limits = self.config.frame_limits
        if not isinstance(msg, dict) or set(msg) != {"db", "heads", "entries"}:
            raise ProtocolError("announcement must be a map of db, heads, entries")
        if msg["db"] != st.database.cid:
            raise ProtocolError("announcement for another database")
        heads, entries = msg["heads"], msg["entries"]
        if (
            not isinstance(heads, list)
            or len(heads) > limits.max_cids_per_message
            or not all(isinstance(h, Cid) for h in heads)
        ):
            raise ProtocolError("announcement heads must be a list of CIDs")
        if not isinstance(entries, list) or len(entries) > limits.max_blocks_per_frame:
            raise ProtocolError("announcement entries must be a list")
        blocks: list[tuple[Cid, bytes]] = []
        for item in entries:
            if (
                not isinstance(item, list)
                or len(item) != 2
                or not isinstance(item[0], Cid)
                or not isinstance(item[1], bytes)
            ):
                raise ProtocolError("announcement entries are [cid, bytes] pairs")
            blocks.append((item[0], item[1]))
        return frozenset(heads), blocks

    # -- verify and apply -----------------------------------------------------------------

    async def _apply(self, st: _Db, peer: PeerId, blocks: Sequence[tuple[Cid, bytes]]) -> Any:
        """Verify every block first (nothing stored if one fails), then apply."""
        entries = await self._verify(st, blocks)
        return await self._store(st, peer, entries, sum(len(b) for _, b in blocks))

    async def _verify(self, st: _Db, blocks: Sequence[tuple[Cid, bytes]]) -> list[Entry]:
        """Decode and check every block of one frame, or raise a ProtocolError naming
        the first bad one. Large frames are verified on worker threads (libsodium
        releases the GIL), so the event loop keeps reading the stream and applying the
        previous frame meanwhile."""
        db = st.database
        if len(blocks) >= self.config.thread_verify_min_blocks:
            entries, rejected = await verify_blocks(
                blocks, threads=db.verify_threads, limits=self._limits
            )
        else:
            entries, rejected = verify_chunk(blocks, self._limits)
        if rejected:
            first = rejected[0]
            raise ProtocolError(
                f"peer sent an invalid entry {first.cid}: {first.error}"
            ) from first.error
        access = db.log.access
        for entry in entries:
            if entry.db != db.cid:
                raise ProtocolError(f"peer sent entry {entry.cid} of database {entry.db}")
            if not access.can_write(entry.writer):
                raise ProtocolError(f"peer sent entry {entry.cid} by unauthorized {entry.writer}")
        return entries

    async def _store(self, st: _Db, peer: PeerId, entries: list[Entry], size: int) -> Any:
        """Apply verified entries of one frame; a rejection is the peer's fault."""
        db = st.database
        result = await db.receive_entries(entries, all_or_nothing=True)
        if result.rejected:
            first = result.rejected[0]
            raise ProtocolError(f"peer sent an invalid entry {first.cid}: {first.error}")
        state = st.peer(peer)
        state.entries_received += len(entries)
        state.bytes_received += size
        for entry in result.added:
            st.inflight.pop(entry.cid, None)
        st.notify()
        return result

    # -- sessions -------------------------------------------------------------------------

    def request_sync(self, database: Database, peer: PeerId) -> None:
        """Sync ``database`` with ``peer`` soon (again, if a sync is running)."""
        st = self._dbs.get(database.cid)
        if st is None or self._nursery is None:
            return
        state = st.peer(peer)
        if state.active:
            state.again = True
            return
        state.active = True
        self._nursery.start_soon(self._sync_loop, st, peer)

    async def _sync_loop(self, st: _Db, peer: PeerId) -> None:
        state = st.peer(peer)
        try:
            while True:
                state.again = False
                try:
                    with trio.fail_after(self.config.connect_timeout):
                        stream = await self.transport.open_stream(peer)
                except (NetworkError, trio.TooSlowError) as exc:
                    state.last_error = f"cannot open a stream: {exc!r}"
                    state.failures += 1
                    return
                await self._run_session(st, stream, FrameDecoder(self.config.frame_limits), [])
                if not state.again or peer not in self.transport.connected_peers():
                    return
        finally:
            state.active = False
            st.notify()

    async def _on_stream(self, stream: Stream) -> None:
        """Inbound stream (in the transport's task): served in our own nursery."""
        done = trio.Event()
        try:
            self._require_nursery().start_soon(self._serve, stream, done)
        except (UsageError, RuntimeError):
            await stream.close()
            return
        await done.wait()

    async def _serve(self, stream: Stream, done: trio.Event) -> None:
        try:
            decoder = FrameDecoder(self.config.frame_limits)
            first: list[Message] = []
            try:
                with trio.fail_after(self.config.idle_timeout):
                    while not first:
                        data = await stream.receive_some(_WRITE_BYTES)
                        if not data:
                            return
                        first = decoder.feed(data)
            except (ProtocolError, NetworkError, trio.TooSlowError):
                return
            hello = first[0]
            if isinstance(hello, GetManifest):
                await self._answer_manifest(stream, hello)
                return
            st = self._dbs.get(hello.db) if isinstance(hello, Hello) else None
            if st is None:
                with trio.move_on_after(self.config.idle_timeout):
                    with suppress(NetworkError):
                        await stream.send_all(
                            encode_frame(Error(code="not_found", message="database not open"))
                        )
                return
            await self._run_session(st, stream, decoder, first)
        finally:
            with suppress(NetworkError):
                await stream.close()
            done.set()

    async def _answer_manifest(self, stream: Stream, request: GetManifest) -> None:
        """Only the manifests of databases we replicate, never other blocks."""
        st = self._dbs.get(request.db)
        block = None
        if st is not None:
            cid, data = st.database.manifest.to_block()
            block = data if cid == request.db else None
        if await serve_manifest_request(stream, request, block, self.config):
            self._counts["served"] += 1

    async def _run_session(
        self, st: _Db, stream: Stream, decoder: FrameDecoder, first: list[Message]
    ) -> None:
        db = st.database
        peer = stream.remote_peer
        state = st.peer(peer)
        config = self.config
        session = SyncSession(
            reader=db.log,
            db=db.cid,
            frame_limits=config.frame_limits,
            limits=config.session_limits,
        )
        session.start()
        wake = _Wake()
        mine: set[Cid] = set()  # CIDs this session put in flight
        errors: list[OrbitstoreError] = []
        self._emit(SyncProgress("started", db.cid, peer))

        def needed() -> set[Cid]:
            out: set[Cid] = set()
            for cid in db.log.needed:
                owner = st.inflight.get(cid)
                if owner is None:
                    st.inflight[cid] = peer
                    mine.add(cid)
                    out.add(cid)
                elif owner == peer:
                    out.add(cid)
            return out

        # Received frames flow receiver -> applier: the receiver verifies frame k+1 (on
        # worker threads when large) and keeps reading the stream while the applier
        # stores frame k. Every block of a frame is verified before any of it is stored.
        # A Done waits until everything before it is applied: the want it may trigger
        # is computed from what the log still needs.
        to_apply, applying = trio.open_memory_channel[tuple[list[Entry], int]](_FRAMES_AHEAD)
        backlog = _Backlog()

        async def handle(message: Message) -> None:
            if isinstance(message, Error) and message.code == "not_found":
                state.has_db = False
                state.heard = True
                raise NotFoundError("the peer does not have this database open")
            if isinstance(message, Done):
                await backlog.wait_drained()
                session.entries_applied(needed())
            for event in session.receive(message):
                if isinstance(event, PeerHeads):
                    self._told(state, event.heads, db.log)
                    state.heard = True
                    st.notify()
                    state.has_db = True
                elif isinstance(event, ApplyEntries):
                    entries = await self._verify(st, event.blocks)
                    backlog.add()
                    await to_apply.send((entries, sum(len(b) for _, b in event.blocks)))

        async def applier(cancel: trio.CancelScope) -> None:
            try:
                async with applying:
                    async for first_entries, first_size in applying:
                        # Frames that queued up while the last commit ran are applied in
                        # one transaction: commits are the costliest part of applying
                        # (every dirty index page goes to the WAL each time).
                        entries, size, frames = list(first_entries), first_size, 1
                        while True:
                            try:
                                more, more_size = applying.receive_nowait()
                            except trio.WouldBlock:
                                break
                            entries.extend(more)
                            size += more_size
                            frames += 1
                        await self._store(st, peer, entries, size)
                        session.entries_applied(needed())
                        for _ in range(frames):
                            backlog.done()
                        wake.set()
                        self._emit(
                            SyncProgress(
                                "entries",
                                db.cid,
                                peer,
                                entries_received=session.statistics().entries_received,
                            )
                        )
            except OrbitstoreError as exc:
                errors.append(exc)
                cancel.cancel()

        async def receiver(cancel: trio.CancelScope) -> None:
            try:
                async with to_apply:
                    for message in first:
                        await handle(message)
                        wake.set()
                    while not session.receiving_done:
                        with trio.fail_after(config.idle_timeout):
                            data = await stream.receive_some(_WRITE_BYTES)
                        if not data:
                            raise NetworkError("the peer ended the stream before the exchange did")
                        for message in decoder.feed(data):
                            await handle(message)
                            wake.set()
            except trio.TooSlowError:
                errors.append(NetworkError("the peer went silent"))
                cancel.cancel()
            except OrbitstoreError as exc:
                errors.append(exc)
                cancel.cancel()

        async def sender(cancel: trio.CancelScope) -> None:
            try:
                while True:
                    out = bytearray()
                    while len(out) < _WRITE_BYTES:
                        message = session.next_message()
                        if message is None:
                            break
                        out += encode_frame(message)
                    if out:
                        with trio.fail_after(config.idle_timeout):
                            await stream.send_all(bytes(out))
                        continue
                    if session.sending_done:
                        return
                    await wake.wait()
            except trio.TooSlowError:
                errors.append(NetworkError("the peer does not read"))
                cancel.cancel()
            except OrbitstoreError as exc:
                errors.append(exc)
                cancel.cancel()

        with trio.move_on_after(config.session_timeout) as timeout:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender, nursery.cancel_scope)
                nursery.start_soon(applier, nursery.cancel_scope)
                await receiver(nursery.cancel_scope)
                wake.set()
        if timeout.cancelled_caught:
            errors.append(NetworkError("the sync session timed out"))
        for cid in mine:
            if st.inflight.get(cid) == peer:
                del st.inflight[cid]
        stats = session.statistics()
        state.entries_sent += stats.entries_sent
        state.bytes_sent += stats.bytes_sent
        state.sessions += 1
        if errors and not isinstance(errors[0], NotFoundError):
            error = errors[0]
            state.failures += 1
            state.last_error = f"{error.code}: {error}"
            if isinstance(error, InvalidDataError) and "peer_code" not in error.details:
                with trio.move_on_after(1.0):
                    with suppress(NetworkError):
                        await stream.send_all(encode_frame(session.fail(error.code, str(error))))
            self._emit(SyncProgress("failed", db.cid, peer, error=state.last_error))
        elif not errors:
            state.heard = True
            state.last_sync = trio.current_time()
            state.last_error = None
            self._emit(
                SyncProgress(
                    "finished",
                    db.cid,
                    peer,
                    entries_received=stats.entries_received,
                    entries_sent=stats.entries_sent,
                )
            )
        st.notify()
        with suppress(NetworkError):
            await stream.close()

    # -- peers ----------------------------------------------------------------------------

    async def _on_connected(self, peer: PeerId) -> None:
        self._peer_lot.unpark_all()
        for st in list(self._dbs.values()):
            st.notify()
            if self.peer_id < peer:
                self.request_sync(st.database, peer)
        await trio.lowlevel.checkpoint()

    async def _on_disconnected(self, peer: PeerId) -> None:
        for st in list(self._dbs.values()):
            state = st.peers.get(peer)
            if state is not None:
                state.heard = False
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
