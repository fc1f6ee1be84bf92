"""Batches are isolated: other tasks' writes wait for them, nested batches are
savepoints, changes are published after the outermost commit, and a rollback leaves
every database's in-memory state equal to what reopening the node would give."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pycrdt
import pytest
import trio
import trio.testing

from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.errors import UsageError
from orbitstore.node import NodeConfig, open_node
from orbitstore.node.config import ReplicationConfig
from orbitstore.node.database import Database
from orbitstore.node.keyvalue import KeyValue
from orbitstore.node.node import Node
from orbitstore.node.subscription import Subscription
from orbitstore.node.verify import MIN_BLOCKS_FOR_THREADS
from orbitstore.node.ydoc import YDocument
from orbitstore.storage.memory import MemoryStore
from orbitstore.sync.frames import Entries, Hello, encode_frame
from orbitstore.testing.network import MemoryNetwork
from orbitstore.views.base import Change, Lagged

ME = Identity(b"\x01" * 32)
PEER = Identity(b"\x02" * 32)
CONFIG = NodeConfig(timestamps=False, replication=ReplicationConfig(idle_timeout=5.0))


class Boom(Exception):
    pass


def chain(db: Cid, n: int, *, writer: Identity = PEER, payload: Any = None) -> list[Entry]:
    """``n`` entries by ``writer``, each on the previous one."""
    out: list[Entry] = []
    for i in range(n):
        out.append(
            Entry.create(
                writer,
                db=db,
                clock=i + 1,
                next=[out[-1].cid] if out else [],
                payload=payload if payload is not None else i,
            )
        )
    return out


def blocks(entries: Sequence[Entry]) -> list[tuple[Cid, bytes]]:
    return [(e.cid, e.block) for e in entries]


def drain(sub: Subscription) -> list[Change]:
    out: list[Change] = []
    while (item := sub.receive_nowait()) is not None:
        assert not isinstance(item, Lagged)
        out.append(item)
    return out


def memory_state(db: Database) -> tuple[Any, ...]:
    log = db.log
    return (dict(log.head_clocks), len(log), log.pending_count, log.needed)


def stored_state(db: Database) -> tuple[Any, ...]:
    return (dict(db.log.head_clocks), len(db), [e.cid for e in db.entries()])


@asynccontextmanager
async def reopened(path: Path) -> AsyncIterator[Node]:
    async with open_node(path, identity=ME, config=CONFIG) as node:
        yield node


async def test_a_receive_from_another_task_waits_for_the_batch(tmp_path: Path) -> None:
    """The bug: the other database's receive joined the open batch, was published at
    once, and was rolled back with the batch while its log kept the rolled-back heads."""
    async with open_node(tmp_path, identity=ME, config=CONFIG) as node:
        a = await node.open("a", write=["*"])
        b = await node.open("b", write=["*"])
        await a.append("before")
        incoming = chain(b.cid, 3)
        received = trio.Event()
        async with a.subscribe() as sub_a, b.subscribe() as sub_b, trio.open_nursery() as n:

            async def replicate() -> None:  # a task of a nursery opened before the batch
                await b.receive(blocks(incoming))
                received.set()

            with pytest.raises(Boom):
                async with a.batch():
                    await a.append("inside")
                    n.start_soon(replicate)  # started from inside, but not inside
                    await trio.testing.wait_all_tasks_blocked()
                    assert not received.is_set()  # it waits for the batch to end
                    assert len(b) == 0 and drain(sub_b) == []
                    assert drain(sub_a) == []  # nothing published before the commit
                    raise Boom
            with trio.fail_after(5):
                await received.wait()
            assert drain(sub_a) == []  # the rolled-back append was never published
            assert [c.cid for c in drain(sub_b)] == [e.cid for e in incoming]
        before_a, before_b = memory_state(a), memory_state(b)
        assert [e.payload for e in a.entries()] == ["before"]
        assert len(b) == 3
    async with reopened(tmp_path) as again:
        a2, b2 = await again.open("a"), await again.open("b")
        assert memory_state(a2) == before_a
        assert memory_state(b2) == before_b


async def test_writes_of_the_batch_context_span_databases(tmp_path: Path) -> None:
    """Writes to another database from inside a batch (and from a task started inside
    it) are part of the batch: rolled back with it, published with its commit."""
    async with open_node(tmp_path, identity=ME, config=CONFIG) as node:
        a = await node.open("a")
        b = await node.open("b", type="keyvalue")
        assert isinstance(b, KeyValue)
        await b.put("k", "old")
        before = memory_state(a), memory_state(b)
        async with b.subscribe() as sub:
            with pytest.raises(Boom):
                async with a.batch():
                    await a.append(1)
                    async with trio.open_nursery() as inner:
                        inner.start_soon(b.put, "k", "new")
                    assert b.get("k") == "new"  # reads see the batch's own writes
                    raise Boom
            assert drain(sub) == []
            assert b.get("k") == "old"
            assert (memory_state(a), memory_state(b)) == before
            async with a.batch():
                await a.append(2)
                await b.put("k", "committed")
                assert drain(sub) == []
            assert [c.value for c in drain(sub)] == ["committed"]


async def test_a_nested_batch_that_fails_rolls_back_only_its_part(tmp_path: Path) -> None:
    async with open_node(tmp_path, identity=ME, config=CONFIG) as node:
        a = await node.open("a")
        b = await node.open("b", write=["*"])
        held = chain(b.cid, 2)
        async with a.subscribe() as sub_a, b.subscribe() as sub_b:
            async with a.batch():
                await a.append("outer 1")
                with pytest.raises(Boom):
                    async with b.batch():  # a batch of another database nests too
                        await a.append("inner")
                        await b.receive(blocks(held[1:]))  # held: its parent is missing
                        assert b.log.pending_count == 1
                        raise Boom
                assert b.log.pending_count == 0  # the inner part is undone in memory too
                assert [e.payload for e in a.entries()] == ["outer 1"]
                await a.append("outer 2")
                assert drain(sub_a) == [] and drain(sub_b) == []
            assert [c.value for c in drain(sub_a)] == ["outer 1", "outer 2"]
            assert drain(sub_b) == []
        state_a, state_b = memory_state(a), memory_state(b)
    async with reopened(tmp_path) as again:
        assert memory_state(await again.open("a")) == state_a
        assert memory_state(await again.open("b")) == state_b


async def test_rollback_restores_held_entries(tmp_path: Path) -> None:
    """Entries held before the batch and released (applied) in it are held again after
    it rolls back, and entries held by the batch are not."""
    async with open_node(tmp_path, identity=ME, config=CONFIG) as node:
        b = await node.open("b", write=["*"])
        entries = chain(b.cid, 4)
        await b.receive(blocks(entries[2:3]))  # held: waits for entries[1]
        assert b.log.pending_count == 1
        before = memory_state(b)
        with pytest.raises(Boom):
            async with b.batch():
                await b.receive(blocks(entries[:2]))  # releases the held one
                await b.receive([*blocks(entries[3:]), (Cid.for_block(b"x"), b"junk")])
                assert len(b) == 4 and b.log.pending_count == 0
                raise Boom
        assert memory_state(b) == before
        await b.receive(blocks(entries[:2]))
        assert len(b) == 3 and b.log.pending_count == 0


async def test_a_rolled_back_batch_reopens_the_ydoc_view(tmp_path: Path) -> None:
    """A ydoc's document lives in memory and cannot undo an update: after a rollback
    the handle's view is reopened from the store, equal to a fresh open."""
    async with open_node(tmp_path, identity=ME, config=CONFIG) as node:
        doc = await node.open("doc", type="ydoc")
        assert isinstance(doc, YDocument)
        await doc.append_text("kept ")
        with pytest.raises(Boom):
            async with doc.batch():
                await doc.append_text("gone")
                assert doc.text() == "kept gone"
                raise Boom
        assert doc.text() == "kept "
        await doc.append_text("more")
        text, state = doc.text(), memory_state(doc)
    async with reopened(tmp_path) as again:
        doc2 = await again.open("doc", type="ydoc")
        assert isinstance(doc2, YDocument)
        assert doc2.text() == text == "kept more"
        assert memory_state(doc2) == state


async def test_memory_node_rolls_back_log_and_view() -> None:
    store = MemoryStore()
    async with open_node(store=store, identity=ME, config=CONFIG) as node:
        kv = await node.open("kv", type="keyvalue")
        assert isinstance(kv, KeyValue)
        await kv.put("a", 1)
        with pytest.raises(Boom):
            async with kv.batch():
                await kv.put("a", 2)
                await kv.put("b", 3)
                raise Boom
        assert dict(kv.items()) == {"a": 1}
        assert len(kv) == 1
        await kv.put("c", 4)
        state = memory_state(kv), dict(kv.items())
    async with open_node(store=store, identity=ME, config=CONFIG) as node:
        kv2 = await node.open("kv", type="keyvalue")
        assert isinstance(kv2, KeyValue)
        assert (memory_state(kv2), dict(kv2.items())) == state


async def test_ydoc_autocommit_outside_a_batch_does_not_deadlock_it(tmp_path: Path) -> None:
    """A commit from another task waits for the batch without holding the commit lock
    the batch's own commit needs."""
    async with open_node(tmp_path, identity=ME, config=CONFIG) as node:
        doc = await node.open("doc", type="ydoc")
        assert isinstance(doc, YDocument)
        async with trio.open_nursery() as n, doc.batch():
            text = doc.doc.get("text", type=pycrdt.Text)
            text += "a"
            n.start_soon(doc.commit)  # from outside the batch's context...
            await trio.testing.wait_all_tasks_blocked()
            with trio.fail_after(5):
                await doc.append_text("b")  # ...while the batch commits its own
        assert doc.text() == "ab"


async def test_a_frame_with_one_wrong_clock_is_refused_whole() -> None:
    """Item 9: a frame whose entries verify but one breaks the clock rule stores nothing
    (before: the valid ones beside it were stored) and ends the session."""
    manifest = Manifest(name="p", type="log", access=StaticAccess.of(["*"]), meta={})
    db, manifest_block = manifest.to_block()
    good = chain(db, 5)
    wrong = Entry.create(PEER, db=db, clock=9, next=[good[-1].cid], payload="bad clock")
    store = MemoryStore()
    store.blocks.put(db, manifest_block)
    net = MemoryNetwork(rng=random.Random(3))
    async with (
        net.open_transport("victim") as tv,
        net.open_transport("evil") as te,
        open_node(store=store, identity=ME, transport=tv, config=CONFIG) as node,
    ):
        v = await node.open(f"/orbitstore/{db}")
        await te.connect("mem/victim")
        stream = await te.open_stream("victim")
        frame = Entries(blocks=blocks([*good, wrong]))
        await stream.send_all(encode_frame(Hello(db=db)) + encode_frame(frame))
        with trio.fail_after(10):
            while await stream.receive_some():  # the victim answers and hangs up
                pass
        assert len(v) == 0
        assert v.log.pending_count == 0
        assert node.replication is not None
        peers = [p for d in node.replication.statistics().databases for p in d.peers]
        assert [p.failures for p in peers if p.peer == "evil"] == [1]


async def test_a_bulk_receive_does_not_skip_what_a_failing_batch_holds(tmp_path: Path) -> None:
    """The pipelined receive filtered out entries it saw in the store — uncommitted ones
    of another task's open batch, which then rolled back: they were lost."""
    async with open_node(tmp_path, identity=ME, config=CONFIG) as node:
        b = await node.open("b", write=["*"])
        incoming = chain(b.cid, MIN_BLOCKS_FOR_THREADS + 10)
        done = trio.Event()
        async with trio.open_nursery() as n:

            async def replicate() -> None:
                await b.receive(blocks(incoming))
                done.set()

            with pytest.raises(Boom):
                async with b.batch():
                    await b.receive(blocks(incoming))
                    assert len(b) == len(incoming)
                    n.start_soon(replicate)
                    await trio.testing.wait_all_tasks_blocked()
                    raise Boom
            with trio.fail_after(10):
                await done.wait()
        assert len(b) == len(incoming)
        assert b.heads == {incoming[-1].cid}


async def test_opening_a_database_inside_a_batch(tmp_path: Path) -> None:
    """Opening writes to the store (name, log row, view catch-up); a rollback would
    undo that under the new handle, so only already open databases can be opened."""
    async with open_node(tmp_path, identity=ME, config=CONFIG) as node:
        a = await node.open("a")
        async with a.batch():
            assert await node.open("a") is a
            with pytest.raises(UsageError):
                await node.open("new")
        assert "new" not in node.databases()
        await node.open("new")
