"""The two-node helpers of orbitstore.testing.pairs: both kinds replicate."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from orbitstore.errors import UsageError
from orbitstore.node import open_node
from orbitstore.testing.pairs import dial_address, open_libp2p_pair, open_memory_pair


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
