"""Reopening an encrypted database: the learned keys are stored sealed next to the view's
checkpoint, so opening does not read the log again.

- ``reopen_encrypted`` / ``reopen_clear``: CPU milliseconds for ``node.open(name)`` of an
  existing SQLite feed of ``n`` entries, encrypted and in the clear (interleaved).

Run: ``.venv/bin/python benchmarks/bench_reopen_encrypted.py [--quick]``
"""

from __future__ import annotations

import tempfile
import time

import trio
from _common import emit, machine, parse_args

import orbitstore


async def reopen(n: int, encrypted: bool) -> float:
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(home) as node:
            db = await node.open("b", type="feed", encrypted=encrypted)
            async with node.writes.batch():
                for i in range(n):
                    await db.append({"i": i})
        async with orbitstore.open_node(home) as node:
            start = time.process_time()
            await node.open("b", type="feed")
            return (time.process_time() - start) * 1e3


async def main() -> None:
    args = parse_args(__doc__ or "")
    n, reps = (500, 1) if args.quick else (20_000, 3)
    clear, sealed = [], []
    for _ in range(reps):
        clear.append(await reopen(n, False))
        sealed.append(await reopen(n, True))
    emit("reopen_clear", clear, "ms", n, **machine())
    emit("reopen_encrypted", sealed, "ms", n, **machine())


if __name__ == "__main__":
    trio.run(main)
