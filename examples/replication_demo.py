"""Two nodes on the in-memory network: one writes, the other catches up.

python examples/replication_demo.py
"""

from __future__ import annotations

import random

import trio

from orbitstore.core.identity import Identity
from orbitstore.node import open_node
from orbitstore.testing.network import MemoryNetwork


async def main() -> None:
    net = MemoryNetwork(rng=random.Random(1), latency=(0.001, 0.005))
    async with (
        net.open_transport("alice") as ta,
        net.open_transport("bob") as tb,
        open_node(transport=ta, identity=Identity(b"\x01" * 32)) as alice,
        open_node(transport=tb, identity=Identity(b"\x02" * 32)) as bob,
    ):
        chat = await alice.open("chat", write=["*"])
        await chat.append_many(f"message {i}" for i in range(100))
        # Bob has never seen the database: opening its address asks the connected peers
        # for the manifest, verifies it, and starts replicating.
        assert bob.replication is not None
        await bob.replication.connect("mem/alice")
        replica = await bob.open(chat.address)
        await replica.wait_synced(timeout=10)
        print(f"bob holds {len(replica)} entries; heads equal: {replica.heads == chat.heads}")
        print(bob.replication.statistics().databases[0].peers[0])


if __name__ == "__main__":
    trio.run(main)
