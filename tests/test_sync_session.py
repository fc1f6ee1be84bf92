"""Two sessions wired back to back, without I/O (like h11's ConnectionPair)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.errors import ProtocolError
from orbitstore.storage.memory import MemoryStore
from orbitstore.sync.frames import Done, Entries, FrameDecoder, Hello, Want, encode_frame
from orbitstore.sync.session import ApplyEntries, SyncSession

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
