"""Append signed entries to a SQLite-backed log through the public API.

Modes:

- ``append_batched``: ``await db.append_many(...)`` with 1000 payloads per call, each call
  one committed transaction.
- ``append_single``: ``await db.append(x)`` per entry, each its own committed transaction.

Run: ``.venv/bin/python benchmarks/bench_append.py [--quick]``
"""

from __future__ import annotations

import tempfile
import time

import trio
from _common import emit, parse_args

import orbitstore

BATCH = 1000


def payload(i: int) -> dict[str, object]:
    return {"n": i, "text": f"message number {i}", "tags": ["bench", "append"]}


async def batched(n: int) -> float:
    """Entries/s appending ``n`` entries to a fresh log in batches of 1000."""
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(home) as node:
            db = await node.open("bench")
            start = time.perf_counter()
            for lo in range(0, n, BATCH):
                await db.append_many([payload(i) for i in range(lo, min(n, lo + BATCH))])
            elapsed = time.perf_counter() - start
            assert len(db) == n
    return n / elapsed


async def single(n: int, prefill: int) -> float:
    """Entries/s of ``n`` single appends (one commit each) onto a log of ``prefill``."""
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(home) as node:
            db = await node.open("bench")
            for lo in range(0, prefill, BATCH):
                await db.append_many([payload(i) for i in range(lo, min(prefill, lo + BATCH))])
            start = time.perf_counter()
            for i in range(n):
                await db.append(payload(i))
            elapsed = time.perf_counter() - start
            assert len(db) == prefill + n
    return n / elapsed


async def main() -> None:
    args = parse_args(__doc__ or "")
    if args.quick:
        plan = [(1_000, 1), (2_000, 1)]
        single_plan = [(200, 0, 1)]
    else:
        plan = [(10_000, 3), (100_000, 1)]
        # 100,000 single commits would take most of a minute by themselves: measure
        # 10,000 of them on a fresh log, and 10,000 more on top of a 90,000-entry log.
        single_plan = [(10_000, 0, 3), (10_000, 90_000, 1)]
    for n, reps in plan:
        runs = [await batched(n) for _ in range(reps)]
        emit("append_batched", runs, "entries/s", n, batch=BATCH)
    for n, prefill, reps in single_plan:
        runs = [await single(n, prefill) for _ in range(reps)]
        emit("append_single", runs, "entries/s", n, log_size=prefill + n)


if __name__ == "__main__":
    trio.run(main)
