"""SQL query latency over the documents view table, end to end.

Run: ``.venv/bin/python benchmarks/bench_query.py [--quick]``

Fills ``view_documents`` with N documents (100,000; 5,000 with ``--quick``)
``{"_id", "n": i, "m": i, "name", "city"}``, declares an index on ``n`` only, and times
``QueryService.query`` — catalog lookup (with index discovery), compile (cached after the
first call), parameter binding, SQLite, row decoding — the path ``db.query`` takes:

- ``query_indexed_eq``: ``WHERE doc.n = ?`` (1 row), served by the declared index
- ``query_indexed_range``: ``WHERE doc.n BETWEEN ? AND ?`` (10 rows), same index
- ``query_scan_eq`` / ``query_scan_range``: the same on ``m``, which has no index
- ``query_compile_uncached``: parse + check + compile of a new query text (cache miss)

Values are medians in milliseconds; one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from orbitstore.node.query import QueryService
from orbitstore.query.compiler import compile_select
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.testing.view_tables import Tables


def emit(name: str, runs: list[float], unit: str, n: int, **extra: Any) -> None:
    value = statistics.median(runs)
    print(
        json.dumps(
            {"name": name, "value": round(value, 4), "unit": unit, "n": n, **extra,
             "python": platform.python_version()}
        ),
        flush=True,
    )  # fmt: skip


def timed(fn: Any, reps: int) -> list[float]:
    runs = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1000)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5,000 documents, few repetitions")
    args = parser.parse_args()
    n = 5_000 if args.quick else 100_000
    reps_fast, reps_scan = (50, 5) if args.quick else (500, 15)
    rnd = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.sqlite")
        t = Tables(store)
        t.source("users", "documents")
        cities = ["Oslo", "Rome", "Lima", "Pune", "Kyiv"]
        t.put_docs(
            "users",
            (
                {"_id": f"u{i:06}", "n": i, "m": i, "name": f"user {i}", "city": cities[i % 5]}
                for i in range(n)
            ),
        )
        t.index("users", "n")
        service = QueryService(store)

        def run(sql: str, params: list[Any]) -> int:
            return len(service.query(sql, params, t.catalog(service)))

        cases = [
            ("query_indexed_eq", "SELECT id, doc FROM users WHERE doc.n = ?", 1, reps_fast),
            ("query_indexed_range",
             "SELECT id, doc FROM users WHERE doc.n BETWEEN ? AND ?", 10, reps_fast),
            ("query_scan_eq", "SELECT id, doc FROM users WHERE doc.m = ?", 1, reps_scan),
            ("query_scan_range",
             "SELECT id, doc FROM users WHERE doc.m BETWEEN ? AND ?", 10, reps_scan),
        ]  # fmt: skip
        for name, sql, rows, reps in cases:

            def once(sql: str = sql, rows: int = rows) -> None:
                lo = rnd.randrange(n - rows)
                params = [lo] if rows == 1 else [lo, lo + rows - 1]
                got = run(sql, params)
                assert got == rows, (sql, got)

            once()  # warm: compile cache, page cache
            once()
            emit(name, timed(once, reps), "ms", n, rows=rows, reps=reps)

        catalog = t.catalog(service)
        counter = iter(range(10**9))

        def compile_new() -> None:
            compile_select(
                f"SELECT id, doc.name FROM users WHERE doc.n = ? AND doc.city = 'c{next(counter)}'"
                " ORDER BY doc.n LIMIT 10",
                catalog,
            )

        emit("query_compile_uncached", timed(compile_new, reps_fast), "ms", 1, reps=reps_fast)
        service.close()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
