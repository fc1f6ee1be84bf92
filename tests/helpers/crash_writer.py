"""Appends to a database forever, printing each CID once its append has returned.

Run by tests/test_crash_safety.py as ``python crash_writer.py <node dir> <seed>``; the
test kills it with SIGKILL at random moments. A line on stdout is a promise: that entry
was committed.
"""

from __future__ import annotations

import random
import sys

import trio

import orbitstore


async def main(path: str, seed: int) -> None:
    rng = random.Random(seed)
    async with orbitstore.open_node(path) as node:
        db = await node.open("crash")
        n = 0
        while True:
            if rng.random() < 0.5:
                entries = [await db.append({"n": n, "pad": "x" * rng.randint(0, 2000)})]
            else:
                size = rng.randint(2, 5)
                entries = await db.append_many([{"n": n + k} for k in range(size)])
            n += len(entries)
            sys.stdout.write("".join(f"{e.cid}\n" for e in entries))
            sys.stdout.flush()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]))
