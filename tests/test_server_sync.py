"""Sync status, peers and connect through the API, on two nodes of the in-memory
network; replicated entries appear in the changes feed like local ones."""

from __future__ import annotations

import random
from pathlib import Path

import trio

from orbitstore.node import Database, open_node
from orbitstore.node.keyvalue import KeyValue
from orbitstore.testing.network import MemoryNetwork
from tests.helpers.api import asgi_client

DEADLINE = 30.0


async def wait_entries(db: Database, count: int) -> None:
    with trio.fail_after(DEADLINE):
        async with db.subscribe() as changes:
            while len(db) < count:
                await changes.__anext__()


async def test_connect_status_and_replicated_changes(tmp_path: Path) -> None:
    net = MemoryNetwork(rng=random.Random(5))
    async with (
        net.open_transport("a") as ta,
        net.open_transport("b") as tb,
        open_node(tmp_path / "a", transport=ta) as a,
        open_node(tmp_path / "b", transport=tb) as b,
        asgi_client(a) as api,
    ):
        kv_b = await b.open("shared", type="keyvalue", write=["*"])
        assert isinstance(kv_b, KeyValue)
        await kv_b.put("from-b", 1)
        manifest = b.store.blocks.get(kv_b.cid)
        assert manifest is not None
        a.store.blocks.put(kv_b.cid, manifest)

        assert (await api.get("/v1/peers")).json()["connected"] == []
        connected = await api.post("/v1/peers", json={"address": "mem/b"})
        assert connected.json() == {"peer": "b", "address": "mem/b"}
        opened = await api.post("/v1/databases", json={"address": kv_b.address})
        assert opened.status_code == 200 and opened.json()["type"] == "keyvalue"

        await wait_entries(await a.open(kv_b.address, type="keyvalue"), 1)
        status = (await api.get("/v1/sync")).json()
        assert status["networked"] is True and status["connected"] == ["b"]
        one = status["databases"][0]
        assert one["address"] == kv_b.address and one["entries"] == 1
        assert [p["peer"] for p in one["peers"]] == ["b"]
        mine = (await api.get(f"/v1/databases/{kv_b.cid}/sync")).json()
        assert mine["missing"] == 0 and mine["heads"] == 1
        listed = (await api.get("/v1/databases")).json()["databases"]
        assert listed == [{"name": None, "address": kv_b.address, "type": "keyvalue", "open": True}]

        # Replicated entries are in the changes feed, with arrival numbers of this node.
        page = (await api.get(f"/v1/databases/{kv_b.cid}/changes?since=0")).json()
        assert [c["payload"]["key"] for c in page["results"]] == ["from-b"]
        await kv_b.put("later", 2)
        longpoll = await api.get(
            f"/v1/databases/{kv_b.cid}/changes?since={page['last_seq']}&feed=longpoll&timeout=20"
        )
        assert [c["payload"]["key"] for c in longpoll.json()["results"]] == ["later"]
        got = (await api.get(f"/v1/databases/{kv_b.cid}/keys/later")).json()
        assert got == {"key": "later", "value": 2}


async def test_connect_to_an_unreachable_peer(tmp_path: Path) -> None:
    net = MemoryNetwork(rng=random.Random(6))
    async with (
        net.open_transport("a") as ta,
        open_node(tmp_path / "a", transport=ta) as a,
        asgi_client(a) as api,
    ):
        r = await api.post("/v1/peers", json={"address": "mem/nobody"})
        assert r.status_code == 502 and r.json()["error"]["code"] == "peer_unavailable"
        r = await api.post("/v1/peers", json={})
        assert r.status_code == 400
