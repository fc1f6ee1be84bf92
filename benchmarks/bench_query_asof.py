"""Time travel: SQL ``AS OF`` past heads on a keyvalue database, first and cached.

Run: ``.venv/bin/python benchmarks/bench_query_asof.py [--quick]``

Writes N entries (10,000; 2,000 with ``--quick``), one put each over N/5 keys (so most
puts overwrite), on a real SQLite node, remembering the heads after every entry. Then:

- ``asof_query_first``: ``db.query(sql, as_of=heads)`` for heads never queried before
  (heads of the whole log but its last entry: ~N entries folded). The cost is the fold
  (read and decode the ancestors, apply them to a fresh view on an in-memory SQLite),
  serializing it, attaching it to the read connection, and the query.
- ``asof_query_first_half``: the same for heads halfway through the history (~N/2).
- ``asof_query_cached``: the same query and heads again (snapshot cache hit).
- ``asof_point_cached``: ``WHERE key = ?`` on a cached snapshot (primary key search).
- ``live_query``: the same aggregate on the live view, for comparison.
- ``asof_query_first_cpu``: ``asof_query_first`` in CPU time of this process
  (``time.process_time``), steadier than wall time on a shared machine.
- ``asof_documents_first``: ``asof_query_first`` on a documents database (one put per
  entry over N/5 ids), in wall and CPU time (``..._cpu``).

The aggregate is ``SELECT count(*), sum(value) FROM this``. Values are medians in
milliseconds; one JSON object per line (see ``_common.py``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from _common import emit, machine, parse_args

import orbitstore
from orbitstore.core.cid import Cid
from orbitstore.node.documents import Documents
from orbitstore.node.keyvalue import KeyValue

AGGREGATE = "SELECT count(*) AS n, sum(value) AS total FROM this"
POINT = "SELECT value FROM this WHERE key = ?"


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def cpu_timed(fn: Any) -> float:
    start = time.process_time()
    fn()
    return (time.process_time() - start) * 1000


async def run(n: int, reps: int) -> None:
    extra = machine()
    with tempfile.TemporaryDirectory() as tmp:
        async with orbitstore.open_node(Path(tmp)) as node:
            kv = await node.open("kv", type="keyvalue")
            assert isinstance(kv, KeyValue)
            heads: list[frozenset[Cid]] = []
            keys = max(1, n // 5)
            async with kv.batch():
                for i in range(n):
                    await kv.put(f"key{i % keys:06}", i)
                    heads.append(kv.heads)

            # distinct heads per repetition so every "first" run misses the cache
            late = [heads[-2 - r] for r in range(reps)]
            half = [heads[n // 2 - r] for r in range(reps)]
            emit(
                "asof_query_first",
                [timed(lambda h=h: kv.query(AGGREGATE, as_of=h)) for h in late],
                "ms",
                n,
                entries_folded=n - 1,
                **extra,
            )
            emit(
                "asof_query_first_half",
                [timed(lambda h=h: kv.query(AGGREGATE, as_of=h)) for h in half],
                "ms",
                n,
                entries_folded=n // 2,
                **extra,
            )
            more = [heads[-2 - reps - r] for r in range(reps)]
            emit(
                "asof_query_first_cpu",
                [cpu_timed(lambda h=h: kv.query(AGGREGATE, as_of=h)) for h in more],
                "ms",
                n,
                entries_folded=n - 1,
                **extra,
            )
            target = late[0]
            kv.query(AGGREGATE, as_of=target)
            cached_reps = reps * 20
            emit(
                "asof_query_cached",
                [timed(lambda: kv.query(AGGREGATE, as_of=target)) for _ in range(cached_reps)],
                "ms",
                n,
                **extra,
            )
            emit(
                "asof_point_cached",
                [
                    timed(lambda i=i: kv.query(POINT, [f"key{i % keys:06}"], as_of=target))
                    for i in range(cached_reps)
                ],
                "ms",
                n,
                **extra,
            )
            emit(
                "live_query",
                [timed(lambda: kv.query(AGGREGATE)) for _ in range(cached_reps)],
                "ms",
                n,
                **extra,
            )


async def run_documents(n: int, reps: int) -> None:
    extra = machine()
    with tempfile.TemporaryDirectory() as tmp:
        async with orbitstore.open_node(Path(tmp)) as node:
            docs = await node.open("docs", type="documents")
            assert isinstance(docs, Documents)
            heads: list[frozenset[Cid]] = []
            ids = max(1, n // 5)
            async with docs.batch():
                for i in range(n):
                    await docs.put({"_id": f"d{i % ids:06}", "n": i, "tag": "x"})
                    heads.append(docs.heads)
            sql = "SELECT count(*) AS n, sum(doc->>'n') AS total FROM this"
            late = [heads[-2 - r] for r in range(reps)]
            more = [heads[-2 - reps - r] for r in range(reps)]
            emit(
                "asof_documents_first",
                [timed(lambda h=h: docs.query(sql, as_of=h)) for h in late],
                "ms",
                n,
                **extra,
            )
            emit(
                "asof_documents_first_cpu",
                [cpu_timed(lambda h=h: docs.query(sql, as_of=h)) for h in more],
                "ms",
                n,
                **extra,
            )


def main() -> None:
    args = parse_args(__doc__ or "")
    n, reps = (2_000, 3) if args.quick else (10_000, 5)
    trio.run(run, n, reps)
    trio.run(run_documents, n, reps)


if __name__ == "__main__":
    main()
