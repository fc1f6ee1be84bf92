"""The y-websocket endpoint with a Python Yjs client (pycrdt's y-protocols functions over
trio-websocket), on a real Hypercorn: sync both ways, updates become entries, entries
from elsewhere reach clients, awareness between clients, bad input, a read-only node."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pycrdt
import pytest
import trio
from pycrdt import YMessageType, YSyncMessageType

from orbitstore.core.identity import Identity
from orbitstore.node import Node, open_node
from orbitstore.node.ydoc import YDocument
from orbitstore.server.ywebsocket import MESSAGE_AUTH
from tests.helpers.api import WsClient, WsClosed, open_ws, running_api

DEADLINE = 20.0


class YClient:
    """A minimal y-websocket client: a pycrdt Doc and Awareness synced over one socket."""

    def __init__(self, ws: WsClient) -> None:
        self.ws = ws
        self.doc: pycrdt.Doc[Any] = pycrdt.Doc()
        self.awareness = pycrdt.Awareness(self.doc)
        self.denied: list[bytes] = []
        self.synced = False

    def text(self) -> str:
        return str(self.doc.get("text", type=pycrdt.Text))

    async def handle_one(self) -> None:
        message = await self.ws.receive()
        assert isinstance(message, bytes)
        if message[0] == YMessageType.SYNC:
            reply = pycrdt.handle_sync_message(message[1:], self.doc)
            if message[1] == YSyncMessageType.SYNC_STEP2:
                self.synced = True
            if reply is not None:
                await self.ws.send(reply)
        elif message[0] == YMessageType.AWARENESS:
            self.awareness.apply_awareness_update(pycrdt.read_message(message[1:]), "server")
        elif message[0] == MESSAGE_AUTH:
            self.denied.append(message)

    async def until(self, condition: Callable[[], bool]) -> None:
        with trio.fail_after(DEADLINE):
            while not condition():
                await self.handle_one()

    async def sync(self) -> None:
        await self.ws.send(pycrdt.create_sync_message(self.doc))
        await self.until(lambda: self.synced)

    async def edit(self, text: str) -> None:
        before = self.doc.get_state()
        root = self.doc.get("text", type=pycrdt.Text)
        root += text
        await self.ws.send(pycrdt.create_update_message(self.doc.get_update(before)))

    async def announce(self, state: dict[str, Any]) -> None:
        self.awareness.set_local_state(state)
        update = self.awareness.encode_awareness_update([self.doc.client_id])
        await self.ws.send(pycrdt.create_awareness_message(update))


@asynccontextmanager
async def yclient(base: str, room: str) -> AsyncIterator[YClient]:
    url = base.replace("http://", "ws://", 1) + f"/ydoc/{room}"
    async with open_ws(url) as ws:
        yield YClient(ws)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with open_node(tmp_path / "node") as n:
        yield n


async def notes(node: Node, **kwargs: Any) -> YDocument:
    db = await node.open("notes", type="ydoc", **kwargs)
    assert isinstance(db, YDocument)
    return db


async def wait_text(db: YDocument, expected: str) -> None:
    with trio.fail_after(DEADLINE):
        async with db.subscribe() as changes:
            while db.text() != expected:
                await changes.__anext__()


async def test_sync_both_ways_and_updates_become_entries(node: Node) -> None:
    db = await notes(node)
    await db.append_text("hello")
    async with running_api(node) as base, yclient(base, "notes") as client:
        await client.sync()
        await client.until(lambda: client.text() == "hello")
        entries_before = len(db)
        await client.edit(" world")
        await wait_text(db, "hello world")
        assert len(db) == entries_before + 1  # one signed entry per client update
    cid = db.address.removeprefix("/orbitstore/")
    async with running_api(node) as base, yclient(base, cid) as late:  # by CID too
        await late.sync()
        await late.until(lambda: late.text() == "hello world")


async def test_entries_from_elsewhere_reach_connected_clients(node: Node, tmp_path: Path) -> None:
    db = await notes(node, write=["*"])
    # Another writer's entry, received as replication delivers it (verified blocks).
    other_doc: pycrdt.Doc[Any] = pycrdt.Doc()
    other_doc.get("text", type=pycrdt.Text).insert(0, "from afar")
    from orbitstore.core.oplog import OpLog
    from orbitstore.storage.memory import MemoryStore

    store = MemoryStore()
    log = OpLog(
        db=db.cid,
        access=db.log.access,
        store=store.log_store(db.cid),
        identity=Identity(b"\x07" * 32),
        limits=db.log.limits,
    )
    entry = log.append({"op": "update", "update": other_doc.get_update()}, ts=None)
    async with running_api(node) as base, yclient(base, "notes") as client:
        await client.sync()
        result = await db.receive([(entry.cid, entry.block)])
        assert len(result.added) == 1
        await client.until(lambda: client.text() == "from afar")


async def test_awareness_reaches_the_other_client_and_leaves_with_it(node: Node) -> None:
    await notes(node)
    async with running_api(node) as base, yclient(base, "notes") as bob:
        await bob.sync()
        async with yclient(base, "notes") as ada:
            await ada.sync()
            await ada.announce({"user": {"name": "ada"}})
            ada_id = ada.doc.client_id
            await bob.until(lambda: bob.awareness.states.get(ada_id) == {"user": {"name": "ada"}})
        await bob.until(lambda: ada_id not in bob.awareness.states)  # removed on disconnect
        async with yclient(base, "notes") as cy:  # a newcomer gets no stale state
            await cy.sync()
            assert ada_id not in cy.awareness.states


async def test_awareness_of_present_clients_reaches_a_newcomer(node: Node) -> None:
    await notes(node)
    async with running_api(node) as base, yclient(base, "notes") as ada:
        await ada.sync()
        await ada.announce({"cursor": 3})
        await ada.until(lambda: ada.awareness.states.get(ada.doc.client_id) == {"cursor": 3})
        async with yclient(base, "notes") as bob:
            await bob.until(lambda: bob.awareness.states.get(ada.doc.client_id) == {"cursor": 3})


@pytest.mark.parametrize(
    "garbage",
    [
        bytes([0, 2, 5, 1, 2, 3, 4, 5]),  # a sync update that is not a Yjs update
        bytes([0, 9]),  # an unknown sync step
        bytes([0, 0]),  # a sync step 1 without its state vector
        bytes([1, 200]),  # a truncated awareness message
        bytes([7]),  # an unknown message type
    ],
)
async def test_bad_messages_close_only_that_connection(node: Node, garbage: bytes) -> None:
    db = await notes(node)
    async with running_api(node) as base:
        async with yclient(base, "notes") as bad:
            await bad.ws.send(garbage)
            with pytest.raises(WsClosed) as closed, trio.fail_after(DEADLINE):
                while True:
                    await bad.handle_one()
            assert closed.value.code == 4422
        async with yclient(base, "notes") as good:
            await good.sync()
            await good.edit("still fine")
            await wait_text(db, "still fine")


async def test_unknown_or_wrong_type_rooms_are_refused(node: Node) -> None:
    await node.open("kv", type="keyvalue")
    async with running_api(node) as base:
        for room, code in [("missing", 4404), ("kv", 4409)]:
            async with yclient(base, room) as client:
                with pytest.raises(WsClosed) as closed, trio.fail_after(DEADLINE):
                    await client.handle_one()
                assert closed.value.code == code


async def test_a_read_only_node_refuses_updates_but_serves_the_document(
    node: Node, tmp_path: Path
) -> None:
    writer = Identity(b"\x09" * 32)
    db = await notes(node, write=[writer.id])  # this node may read, not write
    async with running_api(node) as base, yclient(base, "notes") as client:
        await client.sync()
        await client.edit("nope")
        await client.until(lambda: bool(client.denied))
        assert b"may not write" in client.denied[0]
    assert db.text() == "" and len(db) == 0
