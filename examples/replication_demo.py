"""Two real nodes in one process (libp2p on 127.0.0.1): one writes, the other catches up.

Run: ``.venv/bin/python examples/replication_demo.py`` (node directories in a temporary
folder; takes a few seconds).

Alice creates a log and appends 100 entries. Bob starts with Alice's dial address as a
bootstrap peer and opens the database by its address alone: he asks Alice for the
manifest, checks it against the address, and syncs the log; ``wait_synced`` returns when
he holds every head Alice announced (or raises after the deadline).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio

import orbitstore
from orbitstore.net.libp2p_config import Libp2pConfig

LOOPBACK = "/ip4/127.0.0.1/tcp/0"  # the OS picks a free port


def config(*peers: str) -> orbitstore.NodeConfig:
    return orbitstore.NodeConfig(
        network=Libp2pConfig(listen_addresses=(LOOPBACK,), bootstrap_peers=peers)
    )


def dial_address(node: orbitstore.Node) -> str:
    assert node.replication is not None
    transport = node.replication.transport
    address = transport.listen_addresses()[0]
    return address if "/p2p/" in address else f"{address}/p2p/{transport.peer_id}"


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with orbitstore.open_node(Path(tmp) / "alice", config=config()) as alice:
            log = await alice.open("events", write=["*"])
            await log.append_many(f"message {i}" for i in range(100))
            async with orbitstore.open_node(
                Path(tmp) / "bob", config=config(dial_address(alice))
            ) as bob:
                replica = await bob.open(log.address)
                await replica.wait_synced(timeout=30)
                same = replica.heads == log.heads
                print(f"bob holds {len(replica)} entries; heads equal: {same}")
                assert bob.replication is not None
                print(bob.replication.statistics().databases[0].peers[0])


if __name__ == "__main__":
    trio.run(main)
