"""The two-node helpers of orbitstore.testing.pairs: both kinds replicate."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio

from orbitstore.core.identity import Identity
from orbitstore.errors import UsageError, WrongDatabaseTypeError
from orbitstore.node import open_node
from orbitstore.node.feed import Feed
from orbitstore.node.keyvalue import KeyValue
from orbitstore.testing.network import MemoryNetwork
from orbitstore.testing.pairs import (
    dial_address,
    open_libp2p_pair,
    open_memory_nodes,
    open_memory_pair,
    open_replica,
    transport_of,
    wait_for_entry,
)


async def test_a_memory_pair_replicates_once_connected(autojump_clock: trio.abc.Clock) -> None:
    async with open_memory_pair(names=("left", "right")) as pair:
        assert pair.network is not None and dial_address(pair.a) == "mem/left"
        feed = await pair.a.open("news", type="feed", write=["*"])
        await feed.add("hello")
        await pair.connect()
        replica = await pair.b.open(feed.address, type="feed")
        await replica.wait_synced(timeout=10)
        assert [i.value for i in replica.items()] == ["hello"]
        assert pair.a.identity.id != pair.b.identity.id


async def test_a_libp2p_pair_replicates_on_loopback(tmp_path: Path) -> None:
    async with open_libp2p_pair(paths=(tmp_path / "a", tmp_path / "b")) as pair:
        assert "/ip4/127.0.0.1/" in dial_address(pair.a)
        kv = await pair.a.open("kv", type="keyvalue")
        await kv.put("k", 1)
        replica = await pair.b.open(kv.address, type="keyvalue")
        with trio.fail_after(60):
            await replica.wait_synced(timeout=60)
        assert replica.heads == kv.heads


async def test_a_node_without_transport_has_no_address() -> None:
    async with open_node() as node:
        with pytest.raises(UsageError, match="no transport"):
            dial_address(node)


async def test_memory_nodes_replicate_through_the_helpers(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    net = MemoryNetwork(rng=random.Random(2))
    ids = {"a": Identity(bytes([7]) * 32), "b": None, "c": None}
    async with open_memory_nodes(net, ids, paths={"c": tmp_path / "c"}) as (a, b, c):
        assert a.id == ids["a"].id and b.id != c.id
        assert (tmp_path / "c" / "orbitstore.sqlite").exists()
        kv = await a.open("kv", type="keyvalue", write=["*"])
        first = await kv.put("k", 1)
        replica = await open_replica(b, kv.address, "a", KeyValue)
        assert replica.get("k") == 1 and replica.log.has(first.cid)
        later = await kv.put("k", 2)
        await wait_for_entry(b, replica, later)
        assert replica.get("k") == 2
        assert transport_of(b).peer_id == "b"
        with pytest.raises(WrongDatabaseTypeError):
            await open_replica(c, kv.address, "a", Feed)


async def test_the_helpers_refuse_a_node_without_transport() -> None:
    async with open_node() as node:
        with pytest.raises(UsageError, match="no transport"):
            transport_of(node)
        with pytest.raises(UsageError, match="no transport"):
            await open_replica(node, "/orbitstore/x", "a", KeyValue)
        with pytest.raises(UsageError, match="needs a node with a transport"):
            await wait_for_entry(node, await node.open("log"), None)
