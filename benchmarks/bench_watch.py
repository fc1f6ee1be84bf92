"""``watch_latency``: from a replicated entry's arrival to the live query's new result.

Node A writes keyvalue puts; node B (its own SQLite file) receives each entry's block
with ``db.receive`` (as the replication service does when a frame or an announcement
arrives) while a live query ``SELECT count(*) ...`` runs on B. Measured: time from the
``receive`` call to the ``watch`` iterator yielding the new count, with the default
debounce (50 ms, which groups bursts) and with no debounce (the floor of the mechanism).

Run: ``.venv/bin/python benchmarks/bench_watch.py [--quick]``
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, parse_args

import orbitstore
from orbitstore.node.keyvalue import KeyValue


async def measure(n: int, debounce_s: float) -> list[float]:
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as home:
        async with (
            orbitstore.open_node(Path(home) / "a") as a,
            orbitstore.open_node(Path(home) / "b") as b,
        ):
            src = await a.open("kv", type="keyvalue", write=["*"])
            assert isinstance(src, KeyValue)
            manifest = a.store.blocks.get(src.cid)
            assert manifest is not None
            b.store.blocks.put(src.cid, manifest)
            dst = await b.open(src.address, type="keyvalue")
            sql = "SELECT count(*) AS n FROM this"
            updates = dst.watch(sql, debounce_s=debounce_s)
            first = await updates.__anext__()
            assert first.rows == ((0,),)
            for i in range(n):
                await src.put(f"k{i}", i)
                entry = next(src.entries(reverse=True, limit=1))
                start = time.perf_counter()
                await dst.receive([(entry.cid, entry.block)])
                with trio.fail_after(10):
                    result = await updates.__anext__()
                latencies.append((time.perf_counter() - start) * 1000)
                assert result.rows == ((i + 1,),)
            await updates.aclose()  # type: ignore[attr-defined]
    return latencies


async def main() -> None:
    args = parse_args(__doc__ or "")
    n = 20 if args.quick else 200
    for debounce in (0.05, 0.0):
        lat = await measure(n, debounce)
        q = statistics.quantiles(lat, n=100)
        emit(
            "watch_latency",
            lat,
            "ms",
            n,
            debounce_ms=debounce * 1000,
            p99=round(q[98], 3),
        )


if __name__ == "__main__":
    trio.run(main)
