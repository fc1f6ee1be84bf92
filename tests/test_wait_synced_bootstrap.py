"""`wait_synced` on a node that is still dialling its bootstrap peers waits for them.

Found by examples/offline_todo.py: a replica reopened with a bootstrap peer returned from
`wait_synced()` at once — connected to nobody yet, it was "in sync" with nobody — and
missed what the peer wrote while it was offline."""

from __future__ import annotations

from pathlib import Path

import orbitstore
from orbitstore.net.libp2p_config import Libp2pConfig
from orbitstore.testing.pairs import LOOPBACK, dial_address


def config(*peers: str) -> orbitstore.NodeConfig:
    return orbitstore.NodeConfig(
        network=Libp2pConfig(listen_addresses=(LOOPBACK,), bootstrap_peers=peers)
    )


async def test_reopened_replica_waits_for_its_bootstrap_peer(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path / "a", config=config()) as a:
        feed = await a.open("news", type="feed", write=["*"])
        await feed.add("first")
        async with orbitstore.open_node(tmp_path / "b", config=config(dial_address(a))) as b:
            replica = await b.open(feed.address, type="feed")
            await replica.wait_synced(timeout=30)
            assert len(replica) == 1
        for i in range(3):  # written while the replica is offline
            await feed.add(f"while away {i}")
        async with orbitstore.open_node(tmp_path / "b", config=config(dial_address(a))) as b:
            replica = await b.open(feed.address, type="feed")  # manifest is local now
            await replica.wait_synced(timeout=30)
            assert replica.heads == feed.heads
            assert [i.value for i in replica.items()][-1] == "while away 2"
