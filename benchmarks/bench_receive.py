"""Receive a whole log into a second database: decode, verify, store.

A writer log of ``n`` entries is built in memory; a fresh SQLite node then receives all
of its blocks through ``await db.receive(blocks)`` in frames of 1000 (parents first, as
a peer sends them). Reported:

- ``receive``: entries/s with ``NodeConfig(verify_threads=1)`` and ``=2``.
- ``verify``: ``Entry.from_block`` alone (no storage), on 1 and on 2 threads.
- ``gil_released``: whether libsodium's verify runs without the GIL (PyNaCl via cffi).
  Checked directly, since a speedup also needs an idle second core, which a shared
  machine does not always have: with a 1 s switch interval, a pure-Python counter thread
  only advances while the main thread is verifying if verification releases the GIL.

Run: ``.venv/bin/python benchmarks/bench_receive.py [--quick]``
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import nacl.bindings
import trio
from _common import emit, parse_args

import orbitstore
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.node.verify import verify_chunk

FRAME = 1000


async def make_blocks(n: int) -> tuple[str, list[tuple[Cid, bytes]]]:
    """A log of ``n`` entries written by a memory node: its address and its blocks."""
    async with orbitstore.open_node() as node:
        db = await node.open("bench", write=["*"])
        for lo in range(0, n, FRAME):
            await db.append_many(
                [{"n": i, "text": f"message number {i}"} for i in range(lo, min(n, lo + FRAME))]
            )
        blocks = [(e.cid, e.block) for e in db.entries()]
        manifest = node.store.blocks.get(db.cid)
        assert manifest is not None
        return db.address, [(db.cid, manifest), *blocks]


async def receive(address: str, blocks: list[tuple[Cid, bytes]], threads: int) -> float:
    manifest, entries = blocks[0], blocks[1:]
    config = orbitstore.NodeConfig(verify_threads=threads)
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(home, config=config) as node:
            node.store.blocks.put(*manifest)
            db = await node.open(address)
            start = time.perf_counter()
            for lo in range(0, len(entries), FRAME):
                result = await db.receive(entries[lo : lo + FRAME])
                assert not result.rejected and not result.needed
            elapsed = time.perf_counter() - start
            assert len(db) == len(entries)
    return len(entries) / elapsed


async def receive_cpu(address: str, blocks: list[tuple[Cid, bytes]]) -> tuple[float, float]:
    """CPU seconds per entry to verify, and to apply + store, on one thread. CPU time is
    what a core spends, so it holds up on a shared machine where wall time does not."""
    manifest, entries = blocks[0], blocks[1:]
    start = time.process_time()
    verified = [Entry.from_block(cid, block) for cid, block in entries]
    verify_s = (time.process_time() - start) / len(entries)
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(home) as node:
            node.store.blocks.put(*manifest)
            db = await node.open(address)
            start = time.process_time()
            for lo in range(0, len(verified), FRAME):
                await db.receive_entries(verified[lo : lo + FRAME])
            apply_s = (time.process_time() - start) / len(entries)
    return verify_s, apply_s


def verify_rate(blocks: list[tuple[Cid, bytes]], threads: int) -> float:
    start = time.perf_counter()
    if threads == 1:
        verify_chunk(blocks)
    else:
        size = -(-len(blocks) // threads)
        with ThreadPoolExecutor(threads) as pool:
            chunks = [blocks[i : i + size] for i in range(0, len(blocks), size)]
            list(pool.map(verify_chunk, chunks))
    return len(blocks) / (time.perf_counter() - start)


def gil_released() -> bool:
    """Whether another Python thread can run while this one is inside libsodium's verify.

    With a 0.2 s switch interval CPython takes the GIL from a busy thread only after
    0.2 s, so in a loop of ~0.05 s a waiting counter thread can only run if the loop hands
    the GIL over by itself: cffi releases it around each C call, and the waiter wins it
    whenever the OS wakes it during one. A pure-Python control loop of similar length
    must never let it run. (A speedup from two threads also needs an idle second core,
    which a shared machine does not always have; this check does not.)
    """
    identity = Identity(bytes(32))
    message = b"x" * 400
    signed = identity.sign(message) + message

    def verify() -> None:
        nacl.bindings.crypto_sign_open(signed, identity.public_key)

    def control() -> None:
        sum(range(200))

    def counter_ran(work: Callable[[], None]) -> bool:
        counter = [0]
        stop = threading.Event()

        def count() -> None:
            while not stop.is_set():
                counter[0] += 1

        thread = threading.Thread(target=count)
        thread.start()
        time.sleep(0.01)  # let it start; it waits for the GIL from here on
        try:
            work()  # take the GIL back
            before = counter[0]
            for _ in range(800):
                work()
                if counter[0] != before:
                    return True
            return False
        finally:
            stop.set()
            thread.join()

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.2)
    try:
        return counter_ran(verify) and not counter_ran(control)
    finally:
        sys.setswitchinterval(old)


async def main() -> None:
    args = parse_args(__doc__ or "")
    n, reps = (1_000, 1) if args.quick else (10_000, 3)
    address, blocks = await make_blocks(n)
    entry_blocks = blocks[1:]
    released = gil_released()
    one: list[float] = []
    two: list[float] = []
    for _ in range(reps):  # interleaved, so both see the same machine load
        one.append(await receive(address, blocks, 1))
        two.append(await receive(address, blocks, 2))
    emit("receive", one, "entries/s", n, threads=1, frame=FRAME)
    emit("receive", two, "entries/s", n, threads=2, frame=FRAME)
    emit("receive_2_threads_speedup", [b / a for a, b in zip(one, two, strict=True)], "x", n)
    cpu = [await receive_cpu(address, blocks) for _ in range(reps)]
    emit("receive_cpu_verify", [v * 1e6 for v, _ in cpu], "µs/entry", n)
    emit("receive_cpu_apply", [a * 1e6 for _, a in cpu], "µs/entry", n)
    emit("receive_one_core", [1 / (v + a) for v, a in cpu], "entries/s", n, basis="CPU time")
    v1: list[float] = []
    v2: list[float] = []
    for _ in range(reps):
        v1.append(verify_rate(entry_blocks, 1))
        v2.append(verify_rate(entry_blocks, 2))
    emit("verify", v1, "entries/s", n, threads=1)
    emit("verify", v2, "entries/s", n, threads=2)
    emit(
        "verify_2_threads_speedup",
        [b / a for a, b in zip(v1, v2, strict=True)],
        "x",
        n,
        gil_released=released,
    )


if __name__ == "__main__":
    trio.run(main)
