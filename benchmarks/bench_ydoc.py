"""ydoc_apply: remote Yjs updates through the log, end to end.

A writer replica makes N small edits (one entry each: typing, with a delete now and then);
a second database on SQLite receives the entry blocks in batches of 1,000 with
``await db.receive(blocks)``: decode + verify signature + store + apply to the pycrdt
document + snapshot every 1,000 updates. Prints one JSON object per line.

    python benchmarks/bench_ydoc.py            # 100,000 updates
    python benchmarks/bench_ydoc.py --quick    # 5,000 updates
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import pycrdt
import trio

import orbitstore
from orbitstore.node.ydoc import YDocument

BATCH = 1000


Blocks = list[tuple[orbitstore.Cid, bytes]]


async def produce(node: orbitstore.Node, n: int) -> tuple[YDocument, Blocks]:
    y = await node.open("bench", type="ydoc", write=["*"])
    assert isinstance(y, YDocument)
    text = y.doc.get("t", type=pycrdt.Text)
    rnd = random.Random(1)
    length = 0
    for i in range(n):
        if length > 10 and rnd.random() < 0.2:
            del text[length - 1]  # backspace
            length -= 1
        else:
            text.insert(length, "abcdefghij"[i % 10])  # typing at the end
            length += 1
        await y.commit()
    return y, [(e.cid, e.block) for e in y.entries()]


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with orbitstore.open_node() as writer:
            started = time.perf_counter()
            source, blocks = await produce(writer, n)
            produce_s = time.perf_counter() - started
            expected = str(source.doc.get("t", type=pycrdt.Text))
            address, manifest = source.address, source.manifest.to_block()[1]
            assert len(blocks) == n
        async with orbitstore.open_node(Path(tmp) / "reader") as reader:
            reader.store.blocks.put(source.cid, manifest)  # as if fetched from a peer
            y = await reader.open(address, type="ydoc")
            assert isinstance(y, YDocument)
            started = time.perf_counter()
            for k in range(0, len(blocks), BATCH):
                result = await y.receive(blocks[k : k + BATCH])
                assert not result.rejected and not result.needed
            elapsed = time.perf_counter() - started
            assert str(y.doc.get("t", type=pycrdt.Text)) == expected, "replicas diverged"
            stats = y.statistics().document
        print(
            json.dumps(
                {
                    "name": "ydoc_apply",
                    "value": round(n / elapsed, 1),
                    "unit": "updates/s",
                    "n": n,
                    "seconds": round(elapsed, 3),
                    "batch": BATCH,
                    "storage": "sqlite",
                    "snapshot_seq": stats.snapshot_seq,
                    "writer_seconds": round(produce_s, 3),
                }
            )
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 updates instead of 100,000")
    args = parser.parse_args()
    trio.run(main, 5_000 if args.quick else 100_000)
