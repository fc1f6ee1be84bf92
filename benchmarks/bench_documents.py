"""Documents put throughput with two declared indexes, on a SQLite node.

    python benchmarks/bench_documents.py [--quick]

Prints one JSON object per line: {"name", "value", "unit", "n", ...}.

- ``doc_put`` / mode ``put_many``: documents per second written with ``put_many`` in
  batches (one signed entry per batch).
- ``doc_put`` / mode ``batch``: documents per second written with one ``put`` (one entry)
  each, grouped ``async with docs.batch()`` (one commit per group).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

import orbitstore


def _doc(i: int) -> dict[str, Any]:
    return {
        "_id": f"user-{i:08}",
        "name": f"User {i}",
        "age": 18 + i % 70,
        "address": {"city": f"city-{i % 500}", "zip": f"{i % 99999:05}"},
        "tags": ["a", "b"] if i % 2 else ["c"],
    }


def _emit(mode: str, n: int, seconds: float, **extra: Any) -> None:
    print(
        json.dumps(
            {
                "name": "doc_put",
                "mode": mode,
                "value": round(n / seconds, 1),
                "unit": "docs/s",
                "n": n,
                "seconds": round(seconds, 3),
                "indexes": 2,
                **extra,
            }
        ),
        flush=True,
    )


async def _run(n: int, batch: int) -> None:
    meta = {"indexes": ["age", "address.city"]}
    with tempfile.TemporaryDirectory() as tmp:
        async with orbitstore.open_node(Path(tmp)) as node:
            docs = await node.open("bench-many", type="documents", meta=meta)
            assert isinstance(docs, orbitstore.Documents)
            start = time.perf_counter()
            for lo in range(0, n, batch):
                await docs.put_many(_doc(i) for i in range(lo, min(n, lo + batch)))
            _emit("put_many", n, time.perf_counter() - start, batch=batch)
            assert docs.count() == n

            docs = await node.open("bench-batch", type="documents", meta=meta)
            assert isinstance(docs, orbitstore.Documents)
            start = time.perf_counter()
            for lo in range(0, n, batch):
                async with docs.batch():
                    for i in range(lo, min(n, lo + batch)):
                        await docs.put(_doc(i))
            _emit("batch", n, time.perf_counter() - start, batch=batch)
            assert docs.count() == n

            start = time.perf_counter()
            for i in range(0, min(n, 2000)):
                await docs.put(_doc(i))
            _emit("single", min(n, 2000), time.perf_counter() - start, batch=1)

            start = time.perf_counter()
            q = 200
            for i in range(q):
                docs.where("address.city", "=", f"city-{i}")
            elapsed = time.perf_counter() - start
            print(
                json.dumps(
                    {
                        "name": "doc_where_indexed",
                        "value": round(q / elapsed, 1),
                        "unit": "queries/s",
                        "n": q,
                        "docs": n,
                    }
                ),
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run (seconds)")
    parser.add_argument("-n", type=int, default=None, help="documents per mode")
    parser.add_argument("--batch", type=int, default=500, help="documents per batch")
    args = parser.parse_args()
    n = args.n or (5_000 if args.quick else 100_000)
    trio.run(_run, n, args.batch)


if __name__ == "__main__":
    main()
