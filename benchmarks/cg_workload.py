"""A fixed workload to count instructions with callgrind (load-independent A/B).

    valgrind --tool=callgrind .venv/bin/python benchmarks/cg_workload.py append 1000
    valgrind --tool=callgrind .venv/bin/python benchmarks/cg_workload.py append 3000

Per-entry instructions = (count at 3000 - count at 1000) / 2000: start-up cancels. Run
it with each checkout's interpreter (it imports whichever ``orbitstore`` is installed).
Modes: ``append`` (``db.append_many``, batches of 1000, SQLite node), ``single`` (N
``db.append`` calls, one commit each, SQLite node), ``asof`` (N keyvalue
puts, then ``fold_image`` of the heads before the last put) and ``asofnofold`` (the
same without the fold: the difference is the fold). Prints nothing.

``receive`` measures the apply side of a receive: ``db.receive_entries`` of N entries
(frames of 1000, SQLite node) decoded by ``Entry.from_trusted_block`` from a file of
blocks written once by ``blocks N FILE`` (so signing them is not counted)::

    .venv/bin/python benchmarks/cg_workload.py blocks 3000 blocks.bin
    valgrind --tool=callgrind .venv/bin/python benchmarks/cg_workload.py receive 1000 blocks.bin
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import trio

import orbitstore
from orbitstore.core import codec
from orbitstore.core.entry import Entry
from orbitstore.node.asof import fold_image
from orbitstore.node.keyvalue import KeyValue


def payload(i: int) -> dict[str, object]:
    return {"n": i, "text": f"message number {i}", "tags": ["bench", "append"]}


async def blocks(n: int, path: str) -> None:
    async with orbitstore.open_node() as writer:
        src = await writer.open("bench", write=["*"])
        for lo in range(0, n, 1000):
            await src.append_many([payload(i) for i in range(lo, min(n, lo + 1000))])
        manifest = writer.store.blocks.get(src.cid)
        assert manifest is not None
        out = [[src.cid, manifest], *([e.cid, e.block] for e in src.entries())]
        Path(path).write_bytes(codec.encode(out))


async def receive(n: int, path: str) -> None:
    (db_cid, manifest), *rows = codec.decode(Path(path).read_bytes(), check_nesting=False)
    entries = [Entry.from_trusted_block(c, b) for c, b in rows[:n]]
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(home) as node:
            node.store.blocks.put(db_cid, manifest)
            db = await node.open(f"/orbitstore/{db_cid}")
            for lo in range(0, n, 1000):
                await db.receive_entries(entries[lo : lo + 1000])
            assert len(db) == n


async def main(mode: str, n: int, path: str = "") -> None:
    if mode == "blocks":
        return await blocks(n, path)
    if mode == "receive":
        return await receive(n, path)
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
    trio.run(main, sys.argv[1], int(sys.argv[2]), *sys.argv[3:])
