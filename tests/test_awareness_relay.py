"""Rooms of two nodes relay their clients' awareness over gossip (orbitstore.node.
awareness, orbitstore.server.ywebsocket.Room), on the in-memory network under trio's
virtual clock: updates and removals travel, a new room learns the others' states, a
node that disconnects takes its clients' states with it, bad gossip goes nowhere, and
nothing reaches the log."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pycrdt
import trio

from orbitstore.node import Node
from orbitstore.node.awareness import AwarenessRelay, awareness_topic
from orbitstore.node.ydoc import YDocument
from orbitstore.server.ywebsocket import Room, _Client
from orbitstore.testing.network import MemoryNetwork
from orbitstore.testing.pairs import open_memory_nodes, transport_of

DEADLINE = 30.0


def relay(node: Node) -> AwarenessRelay:
    assert node.replication is not None
    return node.replication.awareness


@asynccontextmanager
async def two_nodes(tmp_path: Path) -> AsyncIterator[tuple[Any, YDocument, YDocument, Node, Node]]:
    net = MemoryNetwork(rng=random.Random(3))
    paths = {"a": tmp_path / "a", "b": tmp_path / "b"}
    async with open_memory_nodes(net, {"a": None, "b": None}, paths=paths) as (a, b):
        doc_a = await a.open("notes", type="ydoc", write=["*"])
        doc_b = await b.open("notes", type="ydoc", write=["*"])
        assert isinstance(doc_a, YDocument) and isinstance(doc_b, YDocument)
        await transport_of(a).connect("mem/b")
        yield net, doc_a, doc_b, a, b


def client(room: Room) -> _Client:
    c = _Client(None, 64)  # type: ignore[arg-type]  # the rooms only queue to it here
    room.clients.add(c)
    return c


def state(name: str) -> tuple[int, bytes, pycrdt.Awareness]:
    """A Yjs client's awareness update announcing ``name``."""
    aw = pycrdt.Awareness(pycrdt.Doc())
    aw.set_local_state({"user": {"name": name}})
    return aw.client_id, aw.encode_awareness_update([aw.client_id]), aw


async def next_message(c: _Client) -> bytes:
    with trio.fail_after(DEADLINE):
        return await c.outbox.receive()


async def until(c: _Client, condition: Any) -> None:
    """Take ``c``'s messages until ``condition()`` holds (each within the deadline)."""
    while not condition():
        await next_message(c)


async def test_updates_removals_queries_and_disconnects(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with two_nodes(tmp_path) as (net, doc_a, doc_b, a, b):
        room_a, room_b = Room(doc_a, relay(a)), Room(doc_b, relay(b))
        assert room_a.relay is not None and room_b.relay is not None
        on_a, on_b = client(room_a), client(room_b)
        # A client of B announces itself: its own room's clients and A's get it.
        bea, update, _ = state("bea")
        room_b.local_update(on_b, update)
        assert await next_message(on_b) == pycrdt.create_awareness_message(update)
        assert await next_message(on_a) == pycrdt.create_awareness_message(update)
        assert room_a.awareness.states[bea] == {"user": {"name": "bea"}}
        assert room_a.remote_ids == {"b": {bea}}

        # A room opening on A later asks B for its clients' states and gets bea's.
        late = Room(doc_a, relay(a))
        on_late = client(late)
        answer = await next_message(on_late)
        assert late.awareness.states[bea] == {"user": {"name": "bea"}}
        assert answer == pycrdt.create_awareness_message(update)

        # The client leaves node B: the removal reaches A.
        room_b.leave(on_b)
        await until(on_a, lambda: bea not in room_a.awareness.states)

        # A new client on B, then B disconnects: A drops B's clients' states.
        cy, update2, _ = state("cy")
        on_b2 = client(room_b)
        room_b.local_update(on_b2, update2)
        await until(on_a, lambda: cy in room_a.awareness.states)
        net.partition(["a"], ["b"])
        await until(on_a, lambda: cy not in room_a.awareness.states)  # A removes them itself
        assert room_a.remote_ids == {}
        late.close()
        room_a.close()
        room_b.close()
        # Presence is never written to the log.
        assert len(doc_a) == len(doc_b) == 0


async def test_bad_gossip_is_refused_before_any_room_sees_it(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with two_nodes(tmp_path) as (_net, doc_a, doc_b, a, b):
        room_a = Room(doc_a, relay(a))
        on_a = client(room_a)
        assert b.replication is not None
        topic = awareness_topic(doc_a.cid)
        for garbage in (b"garbage", b"\xa2bdb\x00fupdate\x41\x01"):
            await b.replication.transport.publish(topic, garbage)
        # A good one after the bad ones: when it arrives, the bad ones were handled.
        bea, update, _ = state("bea")
        Room(doc_b, relay(b)).local_update(client(Room(doc_b, relay(b))), update)
        assert await next_message(on_a) == pycrdt.create_awareness_message(update)
        assert relay(a).counts.rejected == 2
        assert bea in room_a.awareness.states
        assert on_a.outbox.statistics().current_buffer_used == 0  # nothing else came


async def test_an_oversized_local_update_stays_on_its_node(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with two_nodes(tmp_path) as (_net, doc_a, doc_b, a, b):
        room_a, room_b = Room(doc_a, relay(a)), Room(doc_b, relay(b))
        on_a, on_b, other_b = client(room_a), client(room_b), client(room_b)
        _, big, _ = state("x" * 5000)
        room_b.local_update(on_b, big)
        assert await next_message(other_b) == pycrdt.create_awareness_message(big)
        assert relay(b).counts.dropped == 1
        _, small, _ = state("ok")
        room_b.local_update(on_b, small)
        assert await next_message(on_a) == pycrdt.create_awareness_message(small)
