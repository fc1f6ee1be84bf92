"""The awareness relay's counters per ydoc database in ``GET /v1/sync``: two nodes of
the in-memory network, each with its own HTTP server and a y-websocket client (pycrdt's
y-protocols over a real WebSocket) announcing its presence to the other."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import pycrdt
import trio

from orbitstore.node import open_node
from orbitstore.node.ydoc import YDocument
from orbitstore.server.ywebsocket import AwarenessStatistics, Room, _Client
from orbitstore.testing.network import MemoryNetwork
from tests.helpers.api import running_api
from tests.test_server_ydoc import yclient

DEADLINE = 30.0


async def notes_of(client: httpx.AsyncClient) -> dict[str, Any]:
    status = (await client.get("/v1/sync")).json()
    (notes,) = (d for d in status["databases"] if d["name"] == "notes")
    one = (await client.get("/v1/databases/notes/sync")).json()
    assert one["awareness"]["relayed_in"] == notes["awareness"]["relayed_in"]
    return notes  # type: ignore[no-any-return]


async def test_sync_status_counts_what_the_awareness_relay_did(tmp_path: Path) -> None:
    net = MemoryNetwork(rng=random.Random(7))
    async with (
        net.open_transport("a") as ta,
        net.open_transport("b") as tb,
        open_node(tmp_path / "a", transport=ta) as a,
        open_node(tmp_path / "b", transport=tb) as b,
    ):
        doc_a = await a.open("notes", type="ydoc", write=["*"])
        doc_b = await b.open("notes", type="ydoc", write=["*"])
        await a.open("settings", type="keyvalue")
        assert isinstance(doc_a, YDocument) and isinstance(doc_b, YDocument)
        await ta.connect("mem/b")
        assert a.replication is not None
        await a.replication.wait_synced(doc_a, timeout=DEADLINE, min_peers=1)
        async with (
            running_api(a) as base_a,
            running_api(b) as base_b,
            httpx.AsyncClient(base_url=base_a) as api_a,
            httpx.AsyncClient(base_url=base_b) as api_b,
        ):
            status = (await api_a.get("/v1/sync")).json()
            by_name = {d["name"]: d for d in status["databases"]}
            assert by_name["settings"]["awareness"] is None  # not a ydoc
            zero = {"clients": 0, "relayed_in": 0, "relayed_out": 0, "gossip_in": 0}
            assert by_name["notes"]["awareness"] == {**zero, "gossip_out": 0, "dropped": 0}

            async with yclient(base_a, "notes") as ada, yclient(base_b, "notes") as bea:
                await ada.sync()
                await bea.sync()
                await ada.announce({"user": {"name": "ada"}})
                await bea.announce({"user": {"name": "bea"}})
                bea_id, ada_id = bea.doc.client_id, ada.doc.client_id
                # Each sees the other's presence: it went over gossip both ways.
                await ada.until(lambda: bea_id in ada.awareness.states)
                await bea.until(lambda: ada_id in bea.awareness.states)
                on_a, on_b = (
                    (await notes_of(api_a))["awareness"],
                    (await notes_of(api_b))["awareness"],
                )
                for counts in (on_a, on_b):
                    assert counts["clients"] == 1
                    assert counts["relayed_in"] == 1  # the client's one announcement
                    # Its own echo and the other node's client's state, at least.
                    assert counts["relayed_out"] >= 2
                    assert counts["gossip_in"] >= 1  # the other node's client
                    assert counts["gossip_out"] >= 2  # the room's query, the announcement
                    assert counts["dropped"] == 0
            # Both clients gone: no client, the counters stay.
            with trio.fail_after(DEADLINE):
                while (await notes_of(api_a))["awareness"]["clients"] != 0:
                    await trio.sleep(0.01)  # the server notices the close
            after = (await notes_of(api_a))["awareness"]
            assert after["relayed_in"] == 1 and after["gossip_out"] >= on_a["gossip_out"]


async def test_a_client_too_slow_for_an_awareness_message_counts_as_dropped(
    tmp_path: Path,
) -> None:
    async with open_node(tmp_path / "n") as node:
        doc = await node.open("notes", type="ydoc")
        assert isinstance(doc, YDocument)
        statistics = AwarenessStatistics()
        room = Room(doc, None, statistics)
        slow = _Client(None, 1)  # type: ignore[arg-type]  # the room only queues to it
        room.clients.add(slow)
        awareness = pycrdt.Awareness(pycrdt.Doc())
        awareness.set_local_state({"user": {"name": "ada"}})
        update = awareness.encode_awareness_update([awareness.client_id])
        room.local_update(slow, update)  # queued
        room.local_update(slow, update)  # the queue is full: dropped, the client cancelled
        assert statistics == AwarenessStatistics(relayed_in=2, relayed_out=1, dropped=1)
        assert slow.overflowed
