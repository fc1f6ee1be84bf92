"""Reopen an existing log and read its heads.

Builds a log of ``n`` entries on disk, closes the node, then measures (a fresh
``open_node`` + ``node.open(address)`` + reading ``db.heads``, ``len(db)`` and the newest
entry) in milliseconds. Nothing is replayed: the heads are a table, the count a column.

Run: ``.venv/bin/python benchmarks/bench_reopen.py [--quick]``
"""

from __future__ import annotations

import tempfile
import time

import trio
from _common import emit, parse_args

import orbitstore

BATCH = 1000


async def build(home: str, n: int) -> str:
    async with orbitstore.open_node(home) as node:
        db = await node.open("bench")
        for lo in range(0, n, BATCH):
            await db.append_many(
                [{"n": i, "text": f"message number {i}"} for i in range(lo, min(n, lo + BATCH))]
            )
        return db.address


async def reopen(home: str, address: str, n: int) -> float:
    start = time.perf_counter()
    async with orbitstore.open_node(home) as node:
        db = await node.open(address)
        heads = db.heads
        count = len(db)
        newest = next(db.entries(reverse=True, limit=1))
        elapsed = time.perf_counter() - start
    assert len(heads) == 1 and count == n and newest.cid in heads
    return elapsed * 1000


async def main() -> None:
    args = parse_args(__doc__ or "")
    n, reps = (2_000, 3) if args.quick else (100_000, 5)
    with tempfile.TemporaryDirectory() as home:
        address = await build(home, n)
        runs = [await reopen(home, address, n) for _ in range(reps)]
    emit("reopen_and_read_heads", runs, "ms", n)


if __name__ == "__main__":
    trio.run(main)
