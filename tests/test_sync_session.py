"""Two sessions wired back to back, without I/O (like h11's ConnectionPair)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.errors import ProtocolError, ServeLimitError
from orbitstore.storage.memory import MemoryStore
from orbitstore.sync.frames import (
    Done,
    Entries,
    FrameDecoder,
    FrameLimits,
    Hello,
    Message,
    Want,
    encode_frame,
)
from orbitstore.sync.serve_limits import ServeLimits
from orbitstore.sync.session import RECENT_RECEIVED, ApplyEntries, SyncSession

WRITERS = [Identity(bytes([i + 1]) * 32) for i in range(3)]
MANIFEST = Manifest(name="t", type="log", access=StaticAccess.of(["*"]), meta={})
DB, _ = MANIFEST.to_block()


def new_log(writer: int = 0) -> OpLog:
    return OpLog(
        db=DB, access=MANIFEST.access, store=MemoryStore().log_store(DB), identity=WRITERS[writer]
    )


def exchange(a: OpLog, b: OpLog) -> tuple[int, SyncSession, SyncSession]:
    """Run a full exchange; returns the number of flights (one-way trips) it took."""
    sa, sb = SyncSession(reader=a, db=DB), SyncSession(reader=b, db=DB)
    sa.start()
    sb.start()
    decoders = {id(sa): FrameDecoder(), id(sb): FrameDecoder()}
    flights = 0
    while not (sa.complete and sb.complete):
        flights += 1
        assert flights < 50, "exchange does not terminate"
        for src, dst, log in ((sa, sb, b), (sb, sa, a)):
            data = b""
            while (m := src.next_message()) is not None:
                data += encode_frame(m)
            for msg in decoders[id(dst)].feed(data):
                for ev in dst.receive(msg):
                    if isinstance(ev, ApplyEntries):
                        result = log.receive(ev.blocks)
                        assert not result.rejected
                        dst.entries_applied(result.needed)
    return flights, sa, sb


@pytest.mark.parametrize("n", [1, 10, 300, 3000])
def test_fresh_replica_catches_up_in_constant_round_trips(n: int) -> None:
    a, b = new_log(), new_log()
    a.append_many(range(n))
    flights, sa, sb = exchange(a, b)
    assert b.heads == a.heads and len(b) == n
    assert flights == 2  # hello+entries+done, then want{} — independent of n
    assert sa.statistics().entries_sent == n
    assert sb.statistics().entries_sent == 0
    assert sa.statistics().frames_sent <= 3 + n * 300 // (256 * 1024) + 1


def test_already_synced_sends_nothing() -> None:
    a = new_log()
    a.append_many(range(50))
    b = new_log()
    b.join(a)
    _, sa, sb = exchange(a, b)
    assert sa.statistics().entries_sent == sb.statistics().entries_sent == 0


def test_diverged_histories_send_only_a_little_extra() -> None:
    a, b = new_log(0), new_log(1)
    a.append_many(range(1000))
    b.join(a)
    a.append_many(range(7))
    b.append_many(range(5))
    flights, sa, sb = exchange(a, b)
    assert a.heads == b.heads and len(a) == 1012
    assert flights == 2
    # The `have` sample finds the common ancestry: far fewer than 1000 resent.
    assert 7 <= sa.statistics().entries_sent <= 7 + 32
    assert 5 <= sb.statistics().entries_sent <= 5 + 32


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3)), max_size=25))
def test_random_concurrent_histories_converge(ops: list[tuple[int, int]]) -> None:
    logs = [new_log(i) for i in range(3)]
    for writer, sync_with in ops:
        logs[writer].append(writer)
        if sync_with < 3 and sync_with != writer:
            exchange(logs[writer], logs[sync_with])
    exchange(logs[0], logs[1])
    exchange(logs[1], logs[2])
    exchange(logs[0], logs[1])
    assert logs[0].heads == logs[1].heads == logs[2].heads


def test_want_fills_a_gap() -> None:
    a, b = new_log(), new_log()
    entries = a.append_many(range(20))
    # b already holds entry 15 pending (parents missing) and says so in its wants.
    b.receive([(entries[15].cid, entries[15].block)])
    assert b.needed
    # b's hello claims a head it does not hold: a would send nothing below it...
    sa, sb = SyncSession(reader=a, db=DB), SyncSession(reader=b, db=DB)
    sa.start()
    sb.start()
    assert isinstance(sa.next_message(), Hello)
    sb.next_message()
    sa.receive(Hello(db=DB, heads=(entries[-1].cid,)))
    assert isinstance(sa.next_message(), Done)  # peer claims to have everything
    # ... until b wants the gap: a then sends what is wanted (and the ancestors it
    # cannot prove b holds), parents first.
    sa.receive(Want(cids=(entries[14].cid, entries[13].cid)))
    msg = sa.next_message()
    assert isinstance(msg, Entries)
    sent = [c for c, _ in msg.blocks]
    assert {entries[13].cid, entries[14].cid} <= set(sent)
    assert sent == [e.cid for e in entries if e.cid in set(sent)]  # parents first
    assert isinstance(sa.next_message(), Done)


def hostile(messages: list[object]) -> None:
    a = new_log()
    a.append_many(range(3))
    s = SyncSession(reader=a, db=DB)
    s.start()
    with pytest.raises(ProtocolError):
        for m in messages:
            s.receive(m)  # type: ignore[arg-type]


def test_hostile_sequences() -> None:
    other = Cid.for_block(b"other db")
    hostile([Done()])  # before hello
    hostile([Hello(db=other)])  # another database
    hostile([Hello(db=DB, v=2)])  # another version
    hostile([Hello(db=DB), Hello(db=DB)])  # twice
    hostile([Hello(db=DB), Done(), Done()])  # a round never opened
    hostile([Hello(db=DB), Done(), Entries(blocks=())])  # entries outside a round
    hostile([Hello(db=DB), Want(), Want(cids=(DB,))])  # want after "nothing more"


class _CountingReader:
    """An OpLog reader that counts what the session reads."""

    def __init__(self, log: OpLog) -> None:
        self.log = log
        self.gets = 0
        self.streamed = 0

    @property
    def heads(self) -> frozenset[Cid]:
        return self.log.heads

    def get(self, cid: Cid) -> Entry | None:
        self.gets += 1
        return self.log.get(cid)

    def iter_blocks(self) -> Iterator[tuple[Cid, bytes]]:
        for item in self.log.iter_blocks():
            self.streamed += 1
            yield item


def test_fresh_peer_gets_the_log_streamed_without_a_walk() -> None:
    a = new_log()
    a.append_many(range(5000))
    reader = _CountingReader(a)
    sa = SyncSession(reader=reader, db=DB)
    sa.start()
    gets_for_hello = reader.gets  # the `have` sample: a dozen entries
    sa.receive(Hello(db=DB))  # a fresh replica: no heads, no have
    assert isinstance(sa.next_message(), Hello)
    first = sa.next_message()
    assert isinstance(first, Entries) and first.blocks
    # Only about one frame was read, nothing was decoded, and it starts at the root.
    assert reader.streamed <= len(first.blocks) + 1 < 5000
    assert reader.gets == gets_for_hello
    assert first.blocks[0][0] == next(a.traverse()).cid
    sent = list(first.blocks)
    while isinstance(m := sa.next_message(), Entries):
        sent.extend(m.blocks)
    assert isinstance(m, Done)
    assert [cid for cid, _ in sent] == [e.cid for e in a.traverse()]


def test_a_fresh_replica_does_not_stream_back_what_it_receives() -> None:
    # The replica's log was empty at the writer's Hello: its Rule 2a answer is nothing,
    # not a stream of its own log, which fills with the writer's entries as they arrive.
    a, b = new_log(), new_log()
    a.append_many(range(3 * RECENT_RECEIVED))
    reader = _CountingReader(b)
    sa, sb = SyncSession(reader=a, db=DB), SyncSession(reader=reader, db=DB)
    sa.start()
    sb.start()
    sb.receive(sa.next_message())  # the writer's hello: nothing in common with b
    sa.receive(sb.next_message())  # b's hello: fresh
    for message in drain(sa):
        for event in sb.receive(message):
            if isinstance(event, ApplyEntries):
                sb.entries_applied(b.receive(event.blocks).needed)
        while (m := sb.next_message()) is not None:
            assert not isinstance(m, Entries), "the replica echoed entries"
            sa.receive(m)
    assert len(b) == len(a)
    assert reader.streamed == 0
    assert sb.statistics().entries_sent == 0


def test_disjoint_histories_stream_and_converge() -> None:
    a, b = new_log(0), new_log(1)
    a.append_many(range(700))
    b.append_many(range(300))  # nothing in common with a
    flights, sa, sb = exchange(a, b)
    assert a.heads == b.heads and len(a) == len(b) == 1000
    assert flights == 2
    assert sa.statistics().entries_sent == 700 and sb.statistics().entries_sent == 300


def test_entries_appended_while_streaming_arrive_by_want_or_next_sync() -> None:
    a, b = new_log(), new_log()
    a.append_many(range(3000))
    sa, sb = SyncSession(reader=a, db=DB), SyncSession(reader=b, db=DB)
    sa.start()
    sb.start()
    sa.receive(Hello(db=DB))  # b's hello: fresh
    assert isinstance(sa.next_message(), Hello)
    first = sa.next_message()
    assert isinstance(first, Entries)
    a.append_many(range(10))  # the writer keeps writing mid-stream
    rest: list[Entries] = []
    while isinstance(m := sa.next_message(), Entries):
        rest.append(m)
    result = b.receive([*first.blocks, *(blk for frame in rest for blk in frame.blocks)])
    assert not result.rejected
    assert len(b) >= 3000
    exchange(a, b)  # the next sync brings whatever the stream did not
    assert b.heads == a.heads and len(b) == 3010


# --- memory, serve limits, and Done ordering -------------------------------------------


def drain(session: SyncSession) -> list[Message]:
    out = []
    while (m := session.next_message()) is not None:
        out.append(m)
    return out


def test_session_memory_does_not_grow_with_the_log() -> None:
    n = 10_000
    a, b = new_log(), new_log()
    entries = a.append_many(range(n))
    sa, sb = SyncSession(reader=a, db=DB), SyncSession(reader=b, db=DB)
    sa.start()
    sb.start()
    sa.receive(sb.next_message())  # b's hello: a fresh replica, so a streams (Rule 2a)
    streamed = drain(sa)
    assert isinstance(streamed[-1], Done)
    for message in streamed:
        for event in sb.receive(message):
            if isinstance(event, ApplyEntries):
                sb.entries_applied(b.receive(event.blocks).needed)
    assert len(b) == n
    # A want round after the streamed catch-up: the walk stops at the heads a streamed.
    sa.receive(Done())
    sa.receive(Want(cids=(entries[5000].cid, entries[9000].cid)))
    answer = drain(sa)
    sent = [cid for m in answer if isinstance(m, Entries) for cid, _ in m.blocks]
    assert sent == [entries[5000].cid, entries[9000].cid]
    stats_a, stats_b = sa.statistics(), sb.statistics()
    assert stats_a.known <= 16  # heads, have, the stream's heads, the wanted CIDs
    assert stats_b.known <= 16
    assert stats_b.received_remembered <= RECENT_RECEIVED < n


def test_wants_beyond_the_serve_limit_cut_the_peer_off() -> None:
    a = new_log()
    entries = a.append_many(range(50))
    limits = ServeLimits(max_wants_per_session=3)
    sa = SyncSession(reader=a, db=DB, serve_limits=limits)
    sa.start()
    sa.receive(Hello(db=DB, heads=(entries[-1].cid,)))
    drain(sa)
    for _ in range(3):
        sa.receive(Want(cids=(entries[10].cid,)))
        answer = [c for m in drain(sa) if isinstance(m, Entries) for c, _ in m.blocks]
        assert answer[-1] == entries[10].cid  # with the ancestors it cannot prove b has
    with pytest.raises(ServeLimitError):
        sa.receive(Want(cids=(entries[10].cid,)))
    assert sa.next_message() is None  # failed: nothing more is served


@pytest.mark.parametrize(
    "limits",
    [ServeLimits(max_bytes_per_session=2_000), ServeLimits(max_entries_per_session=10)],
)
def test_serving_stops_at_the_per_session_bounds(limits: ServeLimits) -> None:
    a = new_log()
    a.append_many(range(300))
    small = FrameLimits(target_frame_bytes=1_000)
    sa = SyncSession(reader=a, db=DB, serve_limits=limits, frame_limits=small)
    sa.start()
    sa.receive(Hello(db=DB))
    served = 0
    with pytest.raises(ServeLimitError):
        while (m := sa.next_message()) is not None:
            served += len(m.blocks) if isinstance(m, Entries) else 0
    assert 0 < served < 300


def test_a_done_waits_for_everything_before_it_to_be_applied() -> None:
    a, b = new_log(), new_log()
    entries = a.append_many(range(5))
    sb = SyncSession(reader=b, db=DB)
    sb.start()
    drain(sb)
    sb.receive(Hello(db=DB, heads=(entries[-1].cid,)))
    (apply,) = sb.receive(Entries(blocks=tuple((e.cid, e.block) for e in entries[2:])))
    assert isinstance(apply, ApplyEntries)
    sb.receive(Done())  # fed at once: the want waits until the frame is applied
    assert [m for m in drain(sb) if isinstance(m, Want)] == []
    result = b.receive(apply.blocks)
    sb.entries_applied(result.needed)
    (want,) = [m for m in drain(sb) if isinstance(m, Want)]
    assert set(want.cids) == set(result.needed) and want.cids
