"""CPU time of the hot paths, for A/B runs of two checkouts on a loaded machine.

Run with each checkout's interpreter, alternating (old, new, old, new, ...)::

    ../base/.venv/bin/python benchmarks/cpu_ab.py    # the old code
    .venv/bin/python benchmarks/cpu_ab.py            # the new code
    .venv/bin/python benchmarks/cpu_ab.py single receive   # only these measures

It imports whichever ``orbitstore`` that interpreter has installed, so one copy of this
script measures both. CPU time (``time.process_time``) is what one core spends, so it
holds up where wall time does not (other jobs take the cores, not our instructions).

- ``append_batched_cpu``: entries per CPU second, ``db.append_many`` of 1000 payloads
  per call on a SQLite node, 100,000 entries (10,000 with ``--quick``).
- ``append_single_cpu``: entries per CPU second, ``await db.append(x)`` one commit each
  on a SQLite node, 3,000 appends (1,000 with ``--quick``) after 50 untimed ones.
- ``receive_apply_cpu``: µs of CPU per entry to apply and store verified entries
  (``db.receive_entries``, frames of 1000), 5,000 entries.
- ``asof_traverse_cpu`` / ``asof_fold_cpu``: ms of CPU to read the ancestors of heads
  one entry short of a 10,000-entry keyvalue log (``log.traverse(heads)``), and to fold
  them into a fresh view (``node.asof.fold_image``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import trio
from _common import emit

import orbitstore
from orbitstore.core.entry import Entry
from orbitstore.node.asof import fold_image
from orbitstore.node.keyvalue import KeyValue


def payload(i: int) -> dict[str, object]:
    return {"n": i, "text": f"message number {i}", "tags": ["bench", "append"]}


async def append_cpu(n: int) -> float:
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(home) as node:
            db = await node.open("bench")
            start = time.process_time()
            for lo in range(0, n, 1000):
                await db.append_many([payload(i) for i in range(lo, min(n, lo + 1000))])
            return n / (time.process_time() - start)


async def append_single_cpu(n: int) -> float:
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(home) as node:
            db = await node.open("bench")
            for i in range(50):
                await db.append(payload(i))
            start = time.process_time()
            for i in range(n):
                await db.append(payload(i))
            return n / (time.process_time() - start)


async def receive_apply_cpu(n: int) -> float:
    async with orbitstore.open_node() as writer:
        src = await writer.open("bench", write=["*"])
        for lo in range(0, n, 1000):
            await src.append_many([payload(i) for i in range(lo, lo + 1000)])
        blocks = [(e.cid, e.block) for e in src.entries()]
        manifest = writer.store.blocks.get(src.cid)
        assert manifest is not None
        verified = [Entry.from_block(c, b) for c, b in blocks]
        with tempfile.TemporaryDirectory() as home:
            async with orbitstore.open_node(home) as node:
                node.store.blocks.put(src.cid, manifest)
                db = await node.open(src.address)
                start = time.process_time()
                for lo in range(0, n, 1000):
                    await db.receive_entries(verified[lo : lo + 1000])
                return (time.process_time() - start) / n * 1e6


async def asof_cpu(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        async with orbitstore.open_node(Path(tmp)) as node:
            kv = await node.open("kv", type="keyvalue")
            assert isinstance(kv, KeyValue)
            heads = []
            async with kv.batch():
                for i in range(n):
                    await kv.put(f"key{i % (n // 5):06}", i)
                    heads.append(kv.heads)
            target = heads[-2]
            start = time.process_time()
            list(kv.log.traverse(target))
            mid = time.process_time()
            fold_image(kv, target)
            return (mid - start) * 1000, (time.process_time() - mid) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small workloads")
    parser.add_argument("only", nargs="*", help="run only these: single, receive")
    args = parser.parse_args()
    only = args.only
    n = 10_000 if args.quick else 100_000
    single_n = 1_000 if args.quick else 3_000
    if not only or "single" in only:
        emit("append_single_cpu", [await append_single_cpu(single_n)], "entries/s", single_n)
    if only:
        if "receive" in only:
            emit("receive_apply_cpu", [await receive_apply_cpu(5_000)], "µs/entry", 5_000)
        return
    emit("append_batched_cpu", [await append_cpu(n)], "entries/s", n, basis="CPU time")
    emit("receive_apply_cpu", [await receive_apply_cpu(5_000)], "µs/entry", 5_000)
    kv_n = 2_000 if args.quick else 10_000
    traverse_ms, fold_ms = await asof_cpu(kv_n)
    emit("asof_traverse_cpu", [traverse_ms], "ms", kv_n)
    emit("asof_fold_cpu", [fold_ms], "ms", kv_n)


if __name__ == "__main__":
    sys.exit(trio.run(main))
