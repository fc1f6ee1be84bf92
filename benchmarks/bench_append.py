"""Append signed entries to a SQLite-backed log through the public API.

Modes:

- ``append_batched``: ``await db.append_many(...)`` with 1000 payloads per call, each call
  one committed transaction.
  ``append_batched_cpu`` is the same runs per CPU second (``time.process_time``: what
  the machine's other jobs do not change as much as wall time).
- ``append_single``: ``await db.append(x)`` per entry, each its own committed transaction.

Run: ``.venv/bin/python benchmarks/bench_append.py [--quick] [--only batched|single]
[--sizes 100000]`` (``--sizes``: the batched log sizes, one run each).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import trio
from _common import emit

import orbitstore

BATCH = 1000


def payload(i: int) -> dict[str, object]:
    return {"n": i, "text": f"message number {i}", "tags": ["bench", "append"]}


async def batched(n: int) -> tuple[float, float]:
    """Entries per wall second and per CPU second appending ``n`` entries to a fresh log
    in batches of 1000."""
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(home) as node:
            db = await node.open("bench")
            start, cpu = time.perf_counter(), time.process_time()
            for lo in range(0, n, BATCH):
                await db.append_many([payload(i) for i in range(lo, min(n, lo + BATCH))])
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            assert len(db) == n
    return n / elapsed, n / cpu


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
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny workloads (a smoke run)")
    parser.add_argument("--only", choices=("batched", "single"), help="one of the two modes")
    parser.add_argument("--sizes", type=int, nargs="+", help="batched log sizes, one run each")
    args = parser.parse_args()
    if args.quick:
        plan = [(1_000, 1), (2_000, 1)]
        single_plan = [(200, 0, 1)]
    else:
        plan = [(10_000, 3), (100_000, 1)]
        # 100,000 single commits would take most of a minute by themselves: measure
        # 10,000 of them on a fresh log, and 10,000 more on top of a 90,000-entry log.
        single_plan = [(10_000, 0, 3), (10_000, 90_000, 1)]
    if args.sizes:
        plan = [(n, 1) for n in args.sizes]
    if args.only == "single":
        plan = []
    if args.only == "batched":
        single_plan = []
    for n, reps in plan:
        both = [await batched(n) for _ in range(reps)]
        emit("append_batched", [w for w, _ in both], "entries/s", n, batch=BATCH)
        emit("append_batched_cpu", [c for _, c in both], "entries/s", n, batch=BATCH)
    for n, prefill, reps in single_plan:
        runs = [await single(n, prefill) for _ in range(reps)]
        emit("append_single", runs, "entries/s", n, log_size=prefill + n)


if __name__ == "__main__":
    trio.run(main)
