"""Runs one :class:`~orbitstore.sync.session.SyncSession` over a stream: the thin I/O
adapter between the sans-IO session and the transport.

Three tasks per session: the *receiver* reads frames, feeds them to the session and
verifies the entries it hands out (on worker threads when large), the *applier* stores
verified frames (several at once when they queue up: commits are the costly part), and
the *sender* writes what the session says, coalesced into large writes. Every block of a
frame is verified before any of it is stored; the session itself holds back a ``Done``
until everything before it was applied.

This is a remote boundary: whatever the peer's bytes make any of the three raise —
a typed error, or anything else (then logged with the peer and counted) — ends the
session with an ``Error`` frame (best effort), never the node. What we serve is metered
per session by the session and per peer by the service's token buckets
(:mod:`orbitstore.sync.serve_limits`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import suppress
from functools import partial
from time import thread_time
from typing import TYPE_CHECKING, Any, Protocol

import trio

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.errors import (
    AccessDeniedError,
    ClosedError,
    InvalidDataError,
    NetworkError,
    NotFoundError,
    OrbitstoreError,
    ProtocolError,
    ServeLimitError,
)
from orbitstore.net.transport import PeerId, Stream
from orbitstore.node.access import principal_of
from orbitstore.node.config import ReplicationConfig
from orbitstore.node.session_auth import authenticate
from orbitstore.node.sync_status import DbState, SyncProgress
from orbitstore.node.verify import Pending, verify_chunk
from orbitstore.sync.auth import peer_error
from orbitstore.sync.frames import Done, Entries, Error, FrameDecoder, Message, Want, encode_frame
from orbitstore.sync.inbound import BUSY
from orbitstore.sync.peers import SyncFailure
from orbitstore.sync.received import check_entries, invalid_entry_error
from orbitstore.sync.serve_limits import PeerServeBudget
from orbitstore.sync.session import ApplyEntries, PeerHeads, SyncSession, hello_sample

if TYPE_CHECKING:
    from orbitstore.core.limits import EntryLimits
    from orbitstore.sync.auth import PeerAuth

logger = logging.getLogger("orbitstore.replication")
READ_BYTES = 64 * 1024  # read at most this much at once
_WRITE_BYTES = 64 * 1024  # coalesce frames into writes of at least this size
# Frames received and not applied yet: being verified, or verified and waiting for the
# applier (at most ~2 MiB of entries at the default frame size).
_FRAMES_AHEAD = 8
# Frames the applier merges into one commit at most: commits are the costliest part of
# applying, so the applier takes what queued up while the last one ran. Half of
# _FRAMES_AHEAD: while it commits (the event loop does nothing else meanwhile), the
# frames after those are on the verification workers, which would sit idle otherwise.
_MERGE_FRAMES = 4


class Service(Protocol):
    """What a session needs from the replication service."""

    config: ReplicationConfig

    entry_limits: EntryLimits

    def _emit(self, event: SyncProgress) -> None: ...

    def _unexpected(self, st: DbState | None, peer: PeerId, exc: Exception, where: str) -> None: ...

    def _budget(self, peer: PeerId) -> PeerServeBudget: ...


class _Crossed(Exception):
    """The peer answered our hello with ``busy`` (sync/inbound.py Rule 4)."""


class _Wake:
    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = trio.Event()


class SessionRunner:
    """One session with one peer about one database."""

    def __init__(
        self,
        service: Service,
        st: DbState,
        stream: Stream,
        decoder: FrameDecoder,
        first: Sequence[Message],
        *,
        auth: PeerAuth | None = None,
    ) -> None:
        self._service = service
        self._auth = auth  # a private database: the reader proof comes first
        self._st = st
        self._stream = stream
        self._decoder = decoder
        self._first = list(first)
        self.peer = stream.remote_peer
        self._config = service.config
        db = st.database
        self.session = SyncSession(
            reader=db.log,
            db=db.cid,
            frame_limits=self._config.frame_limits,
            limits=self._config.session_limits,
            serve_limits=self._config.serve_limits,
        )
        self._wake = _Wake()
        self._errors: list[Exception] = []
        self._hello_heads: frozenset[Cid] = frozenset()
        self._claimed: set[Cid] = set()  # blocks of st.inflight.arriving not applied yet
        self._started = st.peer(self.peer).session_started()
        self._to_apply, self._applying = trio.open_memory_channel[tuple[Pending[list[Entry]], int]](
            _FRAMES_AHEAD
        )
        self._nursery: trio.Nursery | None = None
        #: The peer answered ``busy``: its own session with us covers this one.
        self.crossed = False

    # -- the session ----------------------------------------------------------------------

    async def run(self) -> None:
        st = self._st
        if self._auth is not None and not await self._authenticate():
            return
        began = thread_time()
        self.session.start(have=self._hello_sample(), entries=len(st.database.log))
        self._charge_time(thread_time() - began)
        self._service._emit(SyncProgress("started", st.database.cid, self.peer))
        with trio.CancelScope() as scope:
            st.sessions.add(scope)
            try:
                with trio.move_on_after(self._config.session_timeout) as timeout:
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        nursery.start_soon(self._guard, self._sender, nursery.cancel_scope)
                        nursery.start_soon(self._guard, self._applier, nursery.cancel_scope)
                        await self._guard(self._receiver, nursery.cancel_scope)
                        self._wake.set()
                if timeout.cancelled_caught:
                    self._errors.append(NetworkError("the sync session timed out"))
            finally:
                st.sessions.discard(scope)
                st.inflight.release(self)
                st.inflight.arriving.release(self._claimed)  # what it did not apply
        with trio.CancelScope(shield=True):
            await self._finish()

    async def _authenticate(self) -> bool:
        """The reader proof of a private database (node/session_auth.py); False when it
        failed (then the session is over: recorded, and the peer told why)."""
        assert self._auth is not None
        st = self._st
        try:
            with trio.CancelScope() as scope:  # closing the database cancels it
                st.sessions.add(scope)
                try:
                    self._first = await authenticate(
                        self._stream,
                        self._decoder,
                        self._first,
                        self._auth,
                        self._config.idle_timeout,
                    )
                finally:
                    st.sessions.discard(scope)
            if scope.cancelled_caught:
                raise ClosedError("the database was closed during the reader proof")
        except OrbitstoreError as exc:
            if isinstance(exc, ProtocolError) and exc.details.get("peer_code") == BUSY.code:
                self.crossed = True  # a private database's crossing (sync/inbound.py Rule 4)
                st.inflight.release(self)
                with trio.CancelScope(shield=True):
                    await self._finish()
                return False
            if isinstance(exc, AccessDeniedError):
                identity = exc.details.get("identity")
                if isinstance(identity, str):  # the peer proved an identity we refuse
                    exc.details.update(principal_of(st.database, identity))
                logger.info("private %s with %s: %s", st.database.address, self.peer, exc)
                record = st.peer(self.peer)
                record.heard, record.has_db = True, False  # nothing to wait for from it
            st.inflight.release(self)
            self._errors.append(exc)
            with trio.CancelScope(shield=True):
                await self._finish()
            return False
        return True

    async def _guard(self, task: Any, cancel: trio.CancelScope) -> None:
        """Run one of the three tasks; whatever it raises ends the session."""
        try:
            await task()
        except _Crossed:
            cancel.cancel()
        except trio.TooSlowError:
            self._errors.append(NetworkError("the peer went silent or does not read"))
            cancel.cancel()
        except Exception as exc:  # a remote boundary: see the module docstring
            if not isinstance(exc, OrbitstoreError):
                self._service._unexpected(self._st, self.peer, exc, "a sync session")
            self._errors.append(exc)
            cancel.cancel()

    async def _finish(self) -> None:
        st, peer = self._st, self.peer
        if self.crossed:  # neither completed nor failed: the other session decides
            st.notify()
            with suppress(NetworkError, ClosedError):
                await self._stream.close()
            return
        record = st.peer(peer)
        stats = self.session.statistics()
        record.entries_sent += stats.entries_sent
        record.bytes_sent += stats.bytes_sent
        record.sessions += 1
        error = self._errors[0] if self._errors else None
        if error is None:
            record.session_completed(
                self._started, self._hello_heads, st.database.log.has, st.inflight.arriving.pending
            )
            record.last_sync = trio.current_time()
            record.last_failure = None
            self._service._emit(
                SyncProgress(
                    "finished",
                    st.database.cid,
                    peer,
                    entries_received=stats.entries_received,
                    entries_sent=stats.entries_sent,
                )
            )
        elif not isinstance(error, NotFoundError):
            await self._failed(error)
        st.notify()
        with suppress(NetworkError, ClosedError):
            await self._stream.close()

    async def _failed(self, error: Exception) -> None:
        record = self._st.peer(self.peer)
        if isinstance(error, OrbitstoreError):
            failure = SyncFailure.of(error)
            record.failures += 1
        else:  # _unexpected counted it
            failure = SyncFailure.of(error, code="internal")
        record.last_failure = failure
        if isinstance(error, ServeLimitError):
            record.cut_off += 1
        ours = not isinstance(error, OrbitstoreError) or (
            isinstance(error, InvalidDataError) and "peer_code" not in error.details
        )
        if ours:  # the peer's fault: what it claimed and did not send stops counting
            st = self._st
            record.failed_to_deliver(
                self._started, self._hello_heads, st.database.log.has, st.inflight.arriving.pending
            )
        if ours:  # tell the peer why we drop it (best effort)
            frame = encode_frame(self.session.fail(failure.code, failure.message))
            with trio.move_on_after(1.0), suppress(NetworkError, ClosedError):
                await self._stream.send_all(frame)
        self._service._emit(
            SyncProgress(
                "failed", self._st.database.cid, self.peer, error=str(failure), failure=failure
            )
        )

    # -- the three tasks ------------------------------------------------------------------

    async def _receiver(self) -> None:
        async with self._to_apply:
            for message in self._first:
                await self._handle(message)
            while not self.session.receiving_done:
                await self._turn()
                with trio.fail_after(self._config.idle_timeout):
                    data = await self._stream.receive_some(READ_BYTES)
                if not data:
                    if self.session.receiving_done:  # done while we waited (our last want
                        break  # went out meanwhile): the peer rightly closed
                    raise NetworkError("the peer ended the stream before the exchange did")
                began = thread_time()
                messages = self._decoder.feed(data)
                self._charge_time(thread_time() - began)
                for message in messages:
                    await self._handle(message)

    async def _handle(self, message: Message) -> None:
        st, record = self._st, self._st.peer(self.peer)
        if isinstance(message, Error) and message.code == "not_found":
            record.has_db = False
            record.heard = True
            raise NotFoundError("the peer does not have this database open")
        if isinstance(message, Error) and message.code == BUSY.code:
            # The peer runs its own session of this database with us (sync/inbound.py
            # Rule 4): that one syncs both ways; this one ends, not as a failure.
            self.crossed = True
            raise _Crossed
        if isinstance(message, Error) and message.code == AccessDeniedError.code:
            # A private database: the peer checked our proof after we checked its own.
            record.heard, record.has_db = True, False
            raise peer_error(message, "to serve this private database")
        if isinstance(message, Want) and message.cids:
            self._charge_want()
        if isinstance(message, Done):  # the want it triggers asks for these
            self.session.entries_applied(self._claim_needed(), batches=0)
        began = thread_time()
        events = self.session.receive(message)  # a hello or a want walks the log
        self._charge_time(thread_time() - began)
        for event in events:
            if isinstance(event, PeerHeads):
                self._hello_heads = event.heads
                record.told(event.heads, st.database.log.has)
                record.entries = event.entries
                record.heard = True
                record.has_db = True
                st.notify()
            elif isinstance(event, ApplyEntries):
                # Blocks another session of the database is verifying, or applied just
                # now, are skipped: two sessions that crossed stream the same log.
                arriving = st.inflight.arriving
                keep = arriving.claim(cid for cid, _ in event.blocks)
                blocks = [block for block, k in zip(event.blocks, keep, strict=True) if k]
                self._claimed.update(cid for cid, _ in blocks)
                # Verified in the background (the next frames are read and checked
                # meanwhile, the workers never wait); applied in the order received.
                assert self._nursery is not None
                limits = self._service.entry_limits
                verified = Pending.run(
                    self._nursery, partial(verify_frame, st, blocks, self._config, limits)
                )
                await self._to_apply.send((verified, sum(len(b) for _, b in blocks)))
        self._wake.set()

    async def _applier(self) -> None:
        async with self._applying:
            async for first, first_size in self._applying:
                # Frames that queued up while the last commit ran are applied in one
                # transaction: commits are the costliest part of applying (every dirty
                # index page goes to the WAL each time).
                entries, size, frames = list(await first.result()), first_size, 1
                while frames < _MERGE_FRAMES:  # bounded: the receiver keeps queueing
                    try:
                        more, more_size = self._applying.receive_nowait()
                    except trio.WouldBlock:
                        break
                    entries.extend(await more.result())
                    size += more_size
                    frames += 1
                if entries:
                    await store_entries(self._st, self.peer, entries, size)
                    cids = [entry.cid for entry in entries]
                    self._st.inflight.arriving.applied(cids)
                    self._claimed.difference_update(cids)
                self.session.entries_applied(self._claim_needed(), batches=frames)
                self._wake.set()
                received = self.session.statistics().entries_received
                self._service._emit(
                    SyncProgress(
                        "entries",
                        self._st.database.cid,
                        self.peer,
                        entries_received=received,
                        peer_entries=self._st.peer(self.peer).entries,
                    )
                )

    async def _sender(self) -> None:
        while True:
            await self._turn()
            out = bytearray()
            began = thread_time()
            while len(out) < _WRITE_BYTES:
                message = self.session.next_message()
                if message is None:
                    break
                if isinstance(message, Entries):
                    self._charge_bytes(message.size)
                out += encode_frame(message)
            self._charge_time(thread_time() - began)
            if out:
                with trio.fail_after(self._config.idle_timeout):
                    await self._stream.send_all(bytes(out))
                continue
            if self.session.sending_done:
                return
            await self._wake.wait()

    # -- helpers --------------------------------------------------------------------------

    def _claim_needed(self) -> set[Cid]:
        """What the log needs that no other session is asking for (now ours)."""
        return self._st.inflight.claim(self, self._st.database.log.needed)

    def _hello_sample(self) -> tuple[Cid, ...]:
        """Our Hello's ``have`` for the current heads, kept on the database's state."""
        st = self._st
        log = st.database.log
        heads = log.heads
        kept = st.hello_sample
        if kept is None or kept[0] != heads:
            have = hello_sample(log, heads, self._config.session_limits.have_samples)
            kept = st.hello_sample = (heads, have)
        return kept[1]

    async def _turn(self) -> None:
        """Wait while the peer's time bucket is in debt (serve_limits Rule 3)."""
        bucket = self._service._budget(self.peer).time
        while (wait := bucket.wait(trio.current_time())) > 0:
            await trio.sleep(wait)

    def _charge_time(self, seconds: float) -> None:
        self._service._budget(self.peer).time.charge(seconds, trio.current_time())

    def _charge_want(self) -> None:
        if not self._service._budget(self.peer).wants.take(1, trio.current_time()):
            raise ServeLimitError("peer sent wants faster than we answer them")

    def _charge_bytes(self, size: int) -> None:
        if not self._service._budget(self.peer).bytes.take(size, trio.current_time()):
            raise ServeLimitError("peer asked for more bytes than we serve it per second")


# -- verify and apply ---------------------------------------------------------------------


async def verify_frame(
    st: DbState,
    blocks: Sequence[tuple[Cid, bytes]],
    config: ReplicationConfig,
    limits: EntryLimits,
) -> list[Entry]:
    """Decode and check every block of one frame, or raise a ProtocolError naming the
    first bad one. Large frames are verified on worker threads (libsodium releases the
    GIL), so the event loop keeps reading the stream and applying the previous frame
    meanwhile."""
    db = st.database
    # One bad entry ends the session: stop verifying there (a frame of forged entries
    # costs one signature check per thread, not one per entry).
    if len(blocks) >= config.thread_verify_min_blocks:
        entries, rejected = await db.verifier.verify(blocks, limits=limits, stop_at_first=True)
    else:
        entries, rejected = verify_chunk(blocks, limits, stop_at_first=True)
    if rejected:
        first = rejected[0]
        raise ProtocolError(
            f"peer sent an invalid entry {first.cid}: {first.error}"
        ) from first.error
    check_entries(entries, db.cid, db.log.access.can_write)
    return entries


async def store_entries(st: DbState, peer: PeerId, entries: list[Entry], size: int) -> Any:
    """Apply verified entries of one frame; a rejection is the peer's fault."""
    db = st.database
    result = await db.receive_entries(entries, all_or_nothing=True)
    if result.rejected:
        first = result.rejected[0]
        writer = first.error.details.get("writer")
        who = principal_of(db, writer) if isinstance(writer, str) else {}
        raise invalid_entry_error(first.cid, first.error, who)
    record = st.peer(peer)
    record.entries_received += len(entries)
    record.bytes_received += size
    st.inflight.arrived(entry.cid for entry in result.added)
    st.notify()
    return result


__all__ = ["READ_BYTES", "Service", "SessionRunner", "store_entries", "verify_frame"]
