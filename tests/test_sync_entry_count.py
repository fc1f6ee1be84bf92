"""The Hello's optional entry count (``n``): encoded only when given, decoded when present
or absent, carried into the sync status and progress, and shown by ``sync status --wait``
as "received N of M entries"; a peer that does not send it still syncs."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from orbitstore.cli.sync_view import Progress
from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.errors import ProtocolError
from orbitstore.node.keyvalue import KeyValue
from orbitstore.node.sync_status import SyncProgress
from orbitstore.server.status import database_status
from orbitstore.sync.frames import FrameDecoder, Hello, decode_body, encode_frame, encode_varint
from orbitstore.sync.session import PeerHeads, SyncSession
from orbitstore.testing.pairs import open_memory_pair
from orbitstore.views.base import Lagged

DB = Cid.for_block(codec.encode({"a database": 1}))
HEAD = Cid.for_block(codec.encode({"a head": 1}))
ENTRIES = 300


def test_a_hello_without_a_count_is_encoded_as_before_and_decodes() -> None:
    old_body = codec.encode({"t": "hello", "v": 1, "db": DB, "heads": [HEAD], "have": []})
    assert encode_frame(Hello(db=DB, heads=(HEAD,))) == encode_varint(len(old_body)) + old_body
    assert decode_body(old_body) == Hello(db=DB, heads=(HEAD,), entries=None)


def test_a_hello_with_a_count_round_trips() -> None:
    hello = Hello(db=DB, heads=(HEAD,), entries=12_345)
    frame = encode_frame(hello)
    assert codec.decode(frame[1:])["n"] == 12_345  # a one-byte length
    assert FrameDecoder().feed(frame) == [hello]
    assert FrameDecoder().feed(encode_frame(Hello(db=DB, entries=0))) == [Hello(db=DB, entries=0)]


@pytest.mark.parametrize("bad", [-1, True, "5", 1.5, None, [3]])
def test_a_count_that_is_not_an_unsigned_integer_is_refused(bad: Any) -> None:
    body = codec.encode({"t": "hello", "v": 1, "db": DB, "heads": [], "have": [], "n": bad})
    with pytest.raises(ProtocolError, match=r"hello\.n"):
        decode_body(body)


def test_unknown_hello_keys_are_still_refused() -> None:
    body = codec.encode({"t": "hello", "v": 1, "db": DB, "heads": [], "have": [], "m": 1})
    with pytest.raises(ProtocolError, match="exactly the keys"):
        decode_body(body)


class _Log:
    """An empty log, all a session needs to say hello."""

    heads: frozenset[Cid] = frozenset()

    def get(self, cid: Cid) -> None:
        return None

    def iter_blocks(self) -> Any:
        return iter(())


def test_the_session_says_its_count_and_reports_the_peers() -> None:
    ours, theirs = SyncSession(reader=_Log(), db=DB), SyncSession(reader=_Log(), db=DB)
    ours.start(entries=7)
    theirs.start()  # an older peer says nothing
    hello = ours.next_message()
    assert isinstance(hello, Hello) and hello.entries == 7
    assert theirs.receive(hello) == [PeerHeads(frozenset(), 7)]
    old = theirs.next_message()
    assert isinstance(old, Hello) and old.entries is None
    assert ours.receive(old) == [PeerHeads(frozenset(), None)]


def _drain(events: trio.MemoryReceiveChannel[SyncProgress | Lagged]) -> list[SyncProgress]:
    out: list[SyncProgress] = []
    while True:
        try:
            event = events.receive_nowait()
        except trio.WouldBlock:
            return out
        assert isinstance(event, SyncProgress)
        out.append(event)


async def _replicate(
    monkeypatch: pytest.MonkeyPatch | None,
) -> tuple[list[dict[str, Any]], list[SyncProgress], Any]:
    """``a`` holds ENTRIES entries, ``b`` catches up from nothing; with ``monkeypatch``,
    ``a`` sends no count. Returns b's status snapshots (before and after), its progress
    events and a's record of b."""
    async with open_memory_pair() as pair:
        kv = await pair.a.open("notes", type="keyvalue", write=["*"])
        assert isinstance(kv, KeyValue)
        async with kv.batch():
            for i in range(ENTRIES):
                await kv.put(f"k{i:04d}", i)
        if monkeypatch is not None:  # a speaks as a node from before the field: no "n"
            real = SyncSession.start

            def start(session: SyncSession, **kwargs: Any) -> None:
                if session._reader is kv.log:
                    kwargs["entries"] = None
                real(session, **kwargs)

            monkeypatch.setattr(SyncSession, "start", start)
        await pair.connect()
        replication = pair.b.replication
        assert replication is not None
        async with replication.subscribe_progress() as events:
            replica = await pair.b.open(kv.address, type="keyvalue")
            before = database_status(pair.b, replica)
            await replica.wait_synced(timeout=30)
            assert len(replica) == ENTRIES
            after = database_status(pair.b, replica)
            progress = _drain(events)
        assert pair.a.replication is not None
        a_db = next(d for d in pair.a.replication.statistics().databases if d.db == kv.cid)
        return [before, after], progress, a_db.peers[0]


# Real time, not trio's autojump clock: received frames are verified on worker threads,
# and the virtual clock jumps past every deadline while a thread works.
async def test_a_catch_up_reports_its_total_in_entries() -> None:
    (before, after), events, a_side = await _replicate(None)
    assert [p["entries"] for p in after["peers"]] == [ENTRIES]
    counted = [e for e in events if e.kind == "entries"]
    assert counted and all(e.peer_entries == ENTRIES for e in counted)
    assert counted[-1].entries_received == ENTRIES
    assert a_side.entries == 0  # b said it held nothing
    bar = Progress(start_received=0)
    for status in (before, after):
        bar.update(status)
    assert (bar.entries_done, bar.entries_total) == (ENTRIES, ENTRIES)
    line = bar.line("notes", "in sync with 1 peer", after)
    assert (
        line == f"notes: [{'#' * 24}] received {ENTRIES} of {ENTRIES} entries — in sync with 1 peer"
    )


async def test_a_peer_without_the_count_still_syncs_and_the_bar_counts_heads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (before, after), events, a_side = await _replicate(monkeypatch)
    assert [p["entries"] for p in after["peers"]] == [None]
    assert all(e.peer_entries is None for e in events if e.kind == "entries")
    assert a_side.entries == 0  # the new side still says its own count
    bar = Progress(start_received=0)
    for status in (before, after):
        bar.update(status)
    assert bar.entries_total is None
    assert " heads, " in bar.line("notes", "in sync with 1 peer", after)


def test_the_entry_total_never_shrinks_and_counts_what_our_log_gained() -> None:
    def status(ours: int, *peers: int | None) -> dict[str, Any]:
        listed = [{"has_database": True, "entries": n, "received": 0} for n in peers]
        return {"entries": ours, "missing": 1, "needed": 0, "peers": listed}

    bar = Progress(start_received=0)
    bar.update(status(100, 1000))  # we held 100 of the peer's 1,000 when --wait began
    assert (bar.entries_done, bar.entries_total) == (0, 900)
    bar.update(status(600, 1000, None))  # an older peer joins: it does not count
    assert (bar.entries_done, bar.entries_total) == (500, 900)
    bar.update(status(700, 1200))  # the peer grew
    assert (bar.entries_done, bar.entries_total) == (600, 1100)
    bar.update(status(1250, 1200))  # we hold entries it has not: never past done
    assert (bar.entries_done, bar.entries_total) == (1150, 1150)
    assert "received 1150 of 1150 entries" in bar.line("x", "in sync with 1 peer", status(1250))
