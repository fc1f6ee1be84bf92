"""The pipelined receive path (large frames verified on worker threads) in real time.

The simulation tests run on trio's virtual clock, where worker threads are kept out
(``thread_verify_min_blocks``); these run the production default on the in-memory
network, waiting on events with deadlines.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from hypothesis import assume, given
from hypothesis import strategies as st

from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.node import Database, Node, NodeConfig, inbound, open_node
from orbitstore.node.config import ReplicationConfig
from orbitstore.storage.memory import MemoryStore
from orbitstore.sync.frames import Entries, Hello, encode_frame
from orbitstore.sync.inbound import crossing_refused
from orbitstore.testing.network import MemoryNetwork
from orbitstore.testing.pairs import NodePair, open_memory_pair

CONFIG = NodeConfig(timestamps=False, replication=ReplicationConfig(idle_timeout=5.0))
MANIFEST = Manifest(name="p", type="log", access=StaticAccess.of(["*"]), meta={})
DB, MANIFEST_BLOCK = MANIFEST.to_block()


def _stores() -> list[MemoryStore]:
    stores = [MemoryStore(), MemoryStore()]
    for s in stores:
        s.blocks.put(DB, MANIFEST_BLOCK)
    return stores


@asynccontextmanager
async def _writer_of_4000(
    net: MemoryNetwork,
) -> AsyncIterator[tuple[NodePair, Node, Node, Database]]:
    """A writer holding 4,000 entries and a replica, not connected yet."""
    async with open_memory_pair(
        network=net,
        names=("writer", "replica"),
        identities=(Identity(b"\x01" * 32), Identity(b"\x02" * 32)),
        stores=_stores(),
        config=CONFIG,
    ) as pair:
        writer, replica = pair.nodes
        assert writer.replication is not None and replica.replication is not None
        w = await writer.open(f"/orbitstore/{DB}")
        for start in range(0, 4000, 500):
            await w.append_many(range(start, start + 500))
        yield pair, writer, replica, w


async def test_large_catch_up_through_threaded_verification() -> None:
    assert CONFIG.replication.thread_verify_min_blocks <= 64
    net = MemoryNetwork(rng=random.Random(1), latency=(0.0, 0.001))
    stores = _stores()
    async with open_memory_pair(
        network=net,
        names=("writer", "replica"),
        identities=(Identity(b"\x01" * 32), Identity(b"\x02" * 32)),
        stores=stores,
        config=CONFIG,
    ) as pair:
        writer, replica = pair.nodes
        w = await writer.open(f"/orbitstore/{DB}")
        for start in range(0, 3000, 500):
            await w.append_many(range(start, start + 500))
        r = await replica.open(f"/orbitstore/{DB}")
        await pair.connect()
        with trio.fail_after(30):
            await r.wait_synced(timeout=30)
        assert r.heads == w.heads and len(r) == 3000
        assert [e.cid for e in r.entries()] == [e.cid for e in w.entries()]


async def test_a_large_frame_with_one_forged_block_is_refused_whole() -> None:
    net = MemoryNetwork(rng=random.Random(2))
    evil = Identity(b"\x03" * 32)
    good: list[Entry] = []
    for i in range(99):
        good.append(
            Entry.create(evil, db=DB, clock=i + 1, next=[good[-1].cid] if good else [], payload=i)
        )
    forged = bytearray(Entry.create(evil, db=DB, clock=100, next=[good[-1].cid], payload="x").block)
    forged[-5] ^= 1  # breaks the signature
    blocks = [(e.cid, e.block) for e in good] + [(Cid.for_block(bytes(forged)), bytes(forged))]
    assert len(blocks) >= CONFIG.replication.thread_verify_min_blocks
    (store, _) = _stores()
    async with (
        net.open_transport("victim") as tv,
        net.open_transport("evil") as te,
        open_node(
            store=store, identity=Identity(b"\x02" * 32), transport=tv, config=CONFIG
        ) as node,
    ):
        v = await node.open(f"/orbitstore/{DB}")
        await te.connect("mem/victim")
        stream = await te.open_stream("victim")
        await stream.send_all(encode_frame(Hello(db=DB)) + encode_frame(Entries(blocks=blocks)))
        with trio.fail_after(10):
            while await stream.receive_some():  # the victim answers and hangs up
                pass
        assert len(v) == 0
        assert node.replication is not None
        peers = [p for d in node.replication.statistics().databases for p in d.peers]
        assert [p.failures for p in peers if p.peer == "evil"] == [1]


async def test_no_second_session_with_a_peer_while_its_own_runs() -> None:
    # A sync requested (anti-entropy, gossip) while the peer's session with us runs waits
    # for it to end: two at once would each queue what the other is already sending
    # (the writer the rest of its log twice, the replica its log back).
    net = MemoryNetwork(rng=random.Random(3), latency=(0.0, 0.001))
    async with _writer_of_4000(net) as (pair, writer, replica, w):
        r = await replica.open(f"/orbitstore/{DB}")
        async with replica.replication.subscribe_progress() as progress:
            await pair.connect()  # one of them opens the session
            with trio.fail_after(30):
                async for event in progress:
                    if getattr(event, "kind", None) == "entries":
                        break  # the first frame is in: the session is running
            async with writer.replication.subscribe_progress() as finished:
                writer.replication.request_sync(w, replica.replication.peer_id)
                with trio.fail_after(30):
                    ended = 0
                    async for event in finished:  # the session running, then the next
                        ended += getattr(event, "kind", None) in ("finished", "failed")
                        if ended == 2:
                            break
        assert len(r) == 4000
        stats = writer.replication.statistics()
        (peer,) = [p for d in stats.databases for p in d.peers]
        assert peer.entries_received == 0  # nothing came back
        assert peer.entries_sent == 4000  # and nothing was sent twice


async def _two_finished_then_synced(progress: Any, *databases: Database) -> None:
    """Two sessions finish (the surviving one, then the refused side's next one; or
    both, without Rule 4), none fails; then every one of ``databases`` is synced."""
    with trio.fail_after(30):
        finished = 0
        async for event in progress:
            assert getattr(event, "kind", None) != "failed", event
            finished += getattr(event, "kind", None) == "finished"
            if finished == 2:
                break
        for database in databases:
            await database.wait_synced(timeout=30)


async def test_two_sessions_that_cross_collapse_to_one() -> None:
    """Both sides open a session about the database at the same moment (a writer's sync
    and the replica's open): the hellos cross. sync/inbound.py Rule 4: the side with the
    smaller peer id answers the other's hello ``busy``, one session syncs both ways, and
    the log is sent once. Before, both sessions streamed it: 8,000 entries for 4,000."""
    net = MemoryNetwork(rng=random.Random(5), latency=(0.0, 0.001))
    async with _writer_of_4000(net) as (pair, writer, replica, w):
        await pair.connect()  # the replica does not have it open: nothing to sync yet
        st = writer.replication.state_of(DB)
        assert st is not None
        with trio.fail_after(30):  # its connect-time session (answered not_found) ends
            while any(link.active for link in st.peers.values()):
                await st.changed.wait()  # set by every change of the sync state
        async with writer.replication.subscribe_progress() as progress:
            r = await replica.open(f"/orbitstore/{DB}")  # starts the replica's session...
            writer.replication.request_sync(w, replica.replication.peer_id)  # ...and ours
            await _two_finished_then_synced(progress, r, w)
        assert len(r) == 4000
        crossed = [node.replication.statistics().sessions_crossed for node in pair.nodes]
        # One side refused, the other was refused (and the refused side's sync after the
        # surviving session may cross that session's end once more: refused the same way).
        assert crossed[0] == crossed[1] >= 1
        for node in pair.nodes:
            stats = node.replication.statistics()
            (peer,) = [p for d in stats.databases for p in d.peers]
            assert peer.failures == 0 and peer.last_failure is None, (node, peer)
        (sent,) = [p for d in writer.replication.statistics().databases for p in d.peers]
        assert sent.entries_sent == 4000  # once


@pytest.mark.parametrize("rule_4", [True, False])
async def test_two_sessions_of_a_private_database_that_cross_collapse_to_one(
    rule_4: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule 4 for a private database too: the refusal comes before the reader proof (it
    tells the peer nothing new: our own session with it already named the database).
    Before, both sessions proved their readers and streamed the log: 2,000 for 1,000.

    Without Rule 4 (a peer from before it), both sessions run: the replica's second one
    skips the blocks the first is applying and completes first. It used to call the
    writer's head undelivered then, and ``wait_synced`` returned with nothing applied
    (sync/peers.py Rule 1: a head another session brings is not undelivered)."""
    if not rule_4:
        monkeypatch.setattr(inbound, "crossing_refused", lambda *_, **__: False)
    net = MemoryNetwork(rng=random.Random(6), latency=(0.0, 0.001))
    ids = (Identity(b"\x01" * 32), Identity(b"\x02" * 32))
    async with open_memory_pair(
        network=net,
        names=("writer", "replica"),
        identities=ids,
        stores=(MemoryStore(), MemoryStore()),
        config=CONFIG,
    ) as pair:
        writer, replica = pair.nodes
        assert writer.replication is not None and replica.replication is not None
        w = await writer.open("team", type="log", write=[i.id for i in ids], private=True)
        for start in range(0, 1000, 500):
            await w.append_many(range(start, start + 500))
        block = writer.store.blocks.get(w.cid)
        assert block is not None
        replica.store.blocks.put(w.cid, block)
        await pair.connect()
        st = writer.replication.state_of(w.cid)
        assert st is not None
        with trio.fail_after(30):  # its connect-time session (answered not_found) ends
            while any(link.active for link in st.peers.values()):
                await st.changed.wait()
        async with writer.replication.subscribe_progress() as progress:
            r = await replica.open(w.address)
            writer.replication.request_sync(w, replica.replication.peer_id)
            await _two_finished_then_synced(progress, r, w)
        assert len(r) == 1000  # wait_synced returned: everything is applied
        crossed = [node.replication.statistics().sessions_crossed for node in pair.nodes]
        for node in pair.nodes:
            stats = node.replication.statistics()
            (peer,) = [p for d in stats.databases for p in d.peers]
            assert peer.failures == 0 and peer.last_failure is None, (node, peer)
            assert peer.undelivered == 0, (node, peer)
        (sent,) = [p for d in writer.replication.statistics().databases for p in d.peers]
        if rule_4:
            assert crossed[0] == crossed[1] >= 1
            assert sent.entries_sent == 1000  # once
        else:
            assert crossed == [0, 0] and sent.entries_sent == 2000


@given(st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60))
def test_of_two_crossing_sessions_exactly_one_is_refused(a: str, b: str) -> None:
    """sync/inbound.py Rule 4, for any two distinct peer ids: when both sides' sessions
    run, exactly one side refuses; when only one side's runs, the other serves it."""
    assume(a != b)
    both = [
        crossing_refused(a, b, own_session_running=True),
        crossing_refused(b, a, own_session_running=True),
    ]
    assert both.count(True) == 1
    assert not crossing_refused(a, b, own_session_running=False)
    assert not crossing_refused(b, a, own_session_running=False)
