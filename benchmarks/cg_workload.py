"""A fixed workload to count instructions with callgrind (load-independent A/B).

    valgrind --tool=callgrind .venv/bin/python benchmarks/cg_workload.py append 1000
    valgrind --tool=callgrind .venv/bin/python benchmarks/cg_workload.py append 3000

Per-entry instructions = (count at 3000 - count at 1000) / 2000: start-up cancels. Run
it with each checkout's interpreter (it imports whichever ``orbitstore`` is installed).
Modes: ``append`` (``db.append_many``, batches of 1000, SQLite node), ``single`` (N
``db.append`` calls, one commit each, SQLite node), ``asof`` (N keyvalue
puts, then ``fold_image`` of the heads before the last put) and ``asofnofold`` (the
same without the fold: the difference is the fold). Prints nothing.
"""

from __future__ import annotations

import sys
import tempfile

import trio

import orbitstore
from orbitstore.node.asof import fold_image
from orbitstore.node.keyvalue import KeyValue


def payload(i: int) -> dict[str, object]:
    return {"n": i, "text": f"message number {i}", "tags": ["bench", "append"]}


async def main(mode: str, n: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(home) as node:
            if mode == "append":
                db = await node.open("bench")
                for lo in range(0, n, 1000):
                    await db.append_many([payload(i) for i in range(lo, lo + 1000)])
                return
            if mode == "single":
                db = await node.open("bench")
                for i in range(n):
                    await db.append(payload(i))
                return
            kv = await node.open("kv", type="keyvalue")
            assert isinstance(kv, KeyValue)
            async with kv.batch():
                for i in range(n):
                    await kv.put(f"key{i % (n // 5):06}", i)
                heads = kv.heads
                await kv.put("last", 1)
            if mode == "asof":
                fold_image(kv, heads)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]))
