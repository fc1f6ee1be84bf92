"""Opening an address on a node that has never seen it: the manifest fetch.

Over the in-memory network (real trio clock, no injected latency), so the numbers are
the cost of the protocol and the node, not of a wire:

- ``manifest_fetch_open``: ``node.open(address)`` on a fresh node connected to ``peers``
  peers, of which one holds the database (the others answer not_found): fetch, verify,
  store, open. Milliseconds, median over reps.
- ``manifest_fetch_not_found``: the same with no peer holding it, until NotFoundError.

Run: ``.venv/bin/python benchmarks/bench_manifest_fetch.py [--quick]``
"""

from __future__ import annotations

import random
import time
from contextlib import AsyncExitStack

import trio
from _common import emit, parse_args

from orbitstore.core.access import StaticAccess
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.errors import NotFoundError
from orbitstore.node import NodeConfig, open_node
from orbitstore.testing.network import MemoryNetwork

CONFIG = NodeConfig(timestamps=False)
ANYONE = StaticAccess.of(["*"])


async def measure(peers: int, reps: int) -> tuple[list[float], list[float]]:
    net = MemoryNetwork(rng=random.Random(0))
    opened: list[float] = []
    missing: list[float] = []
    async with AsyncExitStack() as stack:
        nodes = []
        for i in range(peers):
            transport = await stack.enter_async_context(net.open_transport(f"p{i}"))
            identity = Identity(bytes([i + 1]) * 32)
            nodes.append(
                await stack.enter_async_context(
                    open_node(transport=transport, identity=identity, config=CONFIG)
                )
            )
        holder = nodes[-1]
        for rep in range(reps):
            db = await holder.open(f"bench-{rep}", write=["*"])
            absent = Manifest(name=f"absent-{rep}", type="log", access=ANYONE).address
            async with (
                net.open_transport(f"fresh{rep}") as transport,
                open_node(transport=transport, identity=Identity(b"\xff" * 32)) as fresh,
            ):
                assert fresh.replication is not None
                for i in range(peers):
                    await fresh.replication.connect(f"mem/p{i}")
                start = time.perf_counter()
                await fresh.open(db.address)
                opened.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                try:
                    await fresh.open(absent)
                except NotFoundError:
                    missing.append((time.perf_counter() - start) * 1000)
    return opened, missing


def main() -> None:
    args = parse_args(__doc__ or "")
    reps = 3 if args.quick else 20
    for peers in (1, 10) if args.quick else (1, 10, 50):
        opened, missing = trio.run(measure, peers, reps)
        emit("manifest_fetch_open", opened, "ms", reps, peers=peers)
        emit("manifest_fetch_not_found", missing, "ms", reps, peers=peers)


if __name__ == "__main__":
    main()
