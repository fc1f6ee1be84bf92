"""Feed benchmarks: reading the newest items of a large feed, and opening it.

    python benchmarks/bench_views_feed.py [--quick] [--n N] [--open-n N] [--dir DIR]

Prints one JSON object per line: {"name", "value", "unit", "n", ...}.

- ``feed_range``: median time of ``list(feed.items(reverse=True, limit=100))`` (the 100
  newest items) on a feed of ``--n`` items (1,000,000; ``--quick``: 10,000), built with
  ``add_many`` of 1000 items per entry. Also ``feed_range_mid``: 100 items after an item
  in the middle (a bound given by id). Target < 5 ms.
- ``feed_open_large``: ``open_node`` + ``node.open`` + reading the first item, on a fresh
  node, for a feed of ``--open-n`` items (100,000) written one entry per item.
  Target < 200 ms.
- ``feed_open_view``: the same without ``open_node`` (node.open + first item only).
- ``feed_build``: items per second while building, for context.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

import orbitstore
from orbitstore.node.feed import Feed


def emit(name: str, value: float, unit: str, n: int, **extra: Any) -> None:
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, "n": n, **extra}))
    sys.stdout.flush()


def message(i: int) -> dict[str, Any]:
    return {"from": f"user{i % 50}", "text": f"message number {i}", "n": i}


async def open_feed(node: orbitstore.Node, name: str) -> Feed:
    feed = await node.open(name, type="feed")
    assert isinstance(feed, Feed)
    return feed


async def bench_range(path: Path, n: int, repeats: int) -> None:
    async with orbitstore.open_node(path) as node:
        feed = await open_feed(node, "bench-feed-range")
        started = time.perf_counter()
        middle_id = ""
        for chunk in range(0, n, 10_000):
            async with feed.batch():  # 10 entries of 1000 items per transaction
                for base in range(chunk, min(n, chunk + 10_000), 1000):
                    values = [message(i) for i in range(base, min(n, base + 1000))]
                    items = await feed.add_many(values)
                    if base <= n // 2 < base + 1000:
                        middle_id = items[n // 2 - base].id
        emit("feed_build", n / (time.perf_counter() - started), "items/s", n, per_entry=1000)
    async with orbitstore.open_node(path) as node:
        feed = await open_feed(node, "bench-feed-range")
        for name, kwargs in (
            ("feed_range", {"reverse": True, "limit": 100}),
            ("feed_range_mid", {"gt": middle_id, "limit": 100}),
        ):
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter_ns()
                got = list(feed.items(**kwargs))
                times.append(time.perf_counter_ns() - t0)
            assert len(got) == 100
            emit(name, statistics.median(times) / 1e6, "ms", n, items=len(got), target="< 5")
        newest = next(feed.items(reverse=True, limit=1))
        assert newest.value["n"] == n - 1


async def bench_open(path: Path, n: int) -> None:
    async with orbitstore.open_node(path) as node:
        feed = await open_feed(node, "bench-feed-open")
        for base in range(0, n, 1000):
            async with feed.batch():
                for i in range(base, min(n, base + 1000)):
                    await feed.add(message(i))
    started = time.perf_counter()
    async with orbitstore.open_node(path) as node:
        node_opened = time.perf_counter()
        feed = await open_feed(node, "bench-feed-open")
        first = next(feed.items(limit=1))
        done = time.perf_counter()
        assert first.value["n"] == 0
        assert feed.statistics().reapplied_on_open == 0
    emit("feed_open_large", (done - started) * 1000, "ms", n, target="< 200")
    emit("feed_open_view", (done - node_opened) * 1000, "ms", n)


async def main(args: argparse.Namespace) -> None:
    n = 10_000 if args.quick else args.n
    open_n = 10_000 if args.quick else args.open_n
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        await bench_range(Path(tmp) / "range", n, 50 if args.quick else 200)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        await bench_open(Path(tmp) / "open", open_n)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 items instead of --n")
    parser.add_argument("--n", type=int, default=1_000_000, help="items for feed_range")
    parser.add_argument("--open-n", type=int, default=100_000, help="items for feed_open_large")
    parser.add_argument("--dir", default=None, help="where to put the temporary databases")
    trio.run(main, parser.parse_args())
