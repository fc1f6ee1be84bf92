"""Replication in one process, on the in-memory network: the CPU a catch-up costs.

A writer and a fresh replica, both on SQLite files, connected through
:class:`orbitstore.testing.network.MemoryNetwork` (no libp2p, no sockets): what is left
is exactly our part of ``replicate`` — the writer serving (reading, framing), the
replica decoding, verifying, applying and committing, the session bookkeeping. Both run
in this process, so its CPU time per entry (``time.process_time``, all threads) is the
cost of one entry end to end, and holds up on a busy machine where the wall time of
``bench_replicate.py`` does not; under ``valgrind --tool=callgrind`` it gives repeatable
instruction counts of the catch-up alone::

    python benchmarks/bench_replicate_inproc.py [--quick] [--n 20000] [--threads 1]
    CALLGRIND=1 valgrind --tool=callgrind --instr-atstart=no \
        python benchmarks/bench_replicate_inproc.py --n 3000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from orbitstore.node import Node, NodeConfig
from orbitstore.node.config import ReplicationConfig
from orbitstore.node.feed import Feed
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.testing.network import MemoryNetwork
from orbitstore.testing.pairs import open_memory_pair
from orbitstore.views.feed import add_op


def _collect(state: str) -> None:
    """Under ``valgrind --tool=callgrind --instr-atstart=no``, with ``CALLGRIND=1``:
    count instructions of the catch-up only (not of start-up and writing the log)."""
    if os.environ.get("CALLGRIND") == "1":
        subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True)


async def _echoed(writer: Node) -> int:
    """Entries the replica sent back to the writer (which had them all) once the
    sessions ended: pure waste."""
    assert writer.replication is not None
    with trio.move_on_after(10):
        while any(p.syncing for d in writer.replication.statistics().databases for p in d.peers):
            await trio.sleep(0.01)
    stats = writer.replication.statistics()
    return sum(p.entries_received for d in stats.databases for p in d.peers)


async def run(n: int, threads: int) -> None:
    config = NodeConfig(
        timestamps=False,
        verify_threads=threads,
        replication=ReplicationConfig(idle_timeout=60.0),
    )
    with tempfile.TemporaryDirectory() as tmp:
        stores = [SqliteStore(Path(tmp) / "w.db"), SqliteStore(Path(tmp) / "r.db")]
        net = MemoryNetwork(rng=random.Random(1), latency=(0.0, 0.0))
        async with open_memory_pair(
            network=net, names=("writer", "replica"), stores=stores, config=config
        ) as pair:
            writer, replica = pair.nodes
            feed = await writer.open("bench", type="feed", write=["*"])
            for start in range(0, n, 1000):
                await feed.append_many(add_op(i) for i in range(start, min(n, start + 1000)))
            await pair.connect()
            _collect("on")
            cpu, wall = time.process_time(), time.perf_counter()
            copy = await replica.open(feed.address, type="feed")
            assert isinstance(copy, Feed)
            with trio.fail_after(600):
                async with copy.subscribe() as changes:
                    while len(copy) < n:
                        await changes.__anext__()
                        while changes.receive_nowait() is not None:
                            pass
                await copy.wait_synced(timeout=600)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            _collect("off")
            echoed = await _echoed(writer)
        for store in stores:
            store.close()
    extra = {"threads": threads, "echoed": echoed}
    print(
        json.dumps(
            {
                "name": "replicate_inproc_cpu",
                "value": round(cpu / n * 1e6, 2),
                "unit": "us/entry",
                "n": n,
                **extra,
            }
        )
    )
    print(
        json.dumps(
            {
                "name": "replicate_inproc",
                "value": round(n / wall, 1),
                "unit": "entries/s",
                "n": n,
                **extra,
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (1,000 entries)")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=1, help="the replica's verify threads")
    args = parser.parse_args()
    trio.run(run, 1000 if args.quick else args.n, args.threads)
