"""Verify received entry blocks on worker threads.

Checking an entry is mostly Ed25519 verification (about 70% of receiving one), and
libsodium runs it with the GIL released (PyNaCl calls it through cffi, which releases
the GIL around every C call). Spreading a large batch over two threads therefore lets
a bulk receive use both cores of a small machine, and — even with one thread — keeps
the trio event loop free while a batch is being verified.

``orbitstore.core`` cannot do this itself (it does no I/O and starts no threads); it
offers :meth:`Entry.from_block`, and this module runs it on ``trio.to_thread``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import trio

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.limits import DEFAULT_LIMITS, EntryLimits
from orbitstore.core.oplog import ReceiveResult, Rejection
from orbitstore.errors import InvalidDataError, UsageError

# Below this many blocks, handing work to a thread costs more than it saves (a thread
# round trip is ~50-100 µs; one entry verifies in ~70 µs).
MIN_BLOCKS_FOR_THREADS = 64
# Blocks per pipelined receive chunk: large enough that a thread hand-off (~50-100 µs)
# is noise against verifying it (~17 ms), small enough that apply and verify overlap.
PIPELINE_CHUNK = 256


def verify_chunk(
    blocks: Sequence[tuple[Cid, bytes]], limits: EntryLimits = DEFAULT_LIMITS
) -> tuple[list[Entry], list[Rejection]]:
    """Decode and verify ``blocks`` in the calling thread, keeping their order."""
    entries: list[Entry] = []
    rejected: list[Rejection] = []
    for cid, block in blocks:
        try:
            entries.append(Entry.from_block(cid, block, limits=limits))
        except InvalidDataError as exc:
            rejected.append(Rejection(cid, exc))
    return entries, rejected


async def verify_blocks(
    blocks: Sequence[tuple[Cid, bytes]],
    *,
    threads: int = 2,
    limits: EntryLimits = DEFAULT_LIMITS,
) -> tuple[list[Entry], list[Rejection]]:
    """Decode and verify ``blocks`` on ``threads`` worker threads.

    Returns the valid entries and the rejected blocks, both in the order of ``blocks``
    (the same result as calling :meth:`Entry.from_block` on each in turn).
    """
    if threads < 1:
        raise UsageError("threads must be at least 1")
    if not blocks:
        return [], []
    size = -(-len(blocks) // threads)  # ceiling: one contiguous chunk per thread
    chunks = [blocks[i : i + size] for i in range(0, len(blocks), size)]
    results: list[tuple[list[Entry], list[Rejection]]] = [([], [])] * len(chunks)

    async def run(i: int) -> None:
        results[i] = await trio.to_thread.run_sync(verify_chunk, chunks[i], limits)

    async with trio.open_nursery() as nursery:
        for i in range(len(chunks)):
            nursery.start_soon(run, i)
    entries = [e for got, _ in results for e in got]
    rejected = [r for _, bad in results for r in bad]
    return entries, rejected


async def receive_pipelined(
    blocks: Sequence[tuple[Cid, bytes]],
    *,
    apply: Callable[[list[Entry]], Awaitable[ReceiveResult]],
    threads: int,
    limits: EntryLimits,
) -> ReceiveResult:
    """Verify chunk k+1 on worker threads while chunk k is applied (``apply``: one
    committed write of verified entries, :meth:`Database.receive_entries`).

    Verification (libsodium, GIL released) and applying (SQLite + view, on the caller's
    thread) overlap, so a bulk receive runs at the speed of the slower of the two rather
    than their sum. What was applied stays applied if a later chunk fails.
    """
    chunks = [blocks[i : i + PIPELINE_CHUNK] for i in range(0, len(blocks), PIPELINE_CHUNK)]
    added: list[Entry] = []
    rejected: list[Rejection] = []
    dropped: list[Cid] = []
    result = ReceiveResult()
    send, recv = trio.open_memory_channel[tuple[list[Entry], list[Rejection]]](1)

    async def verifier() -> None:
        async with send:
            for chunk in chunks:
                await send.send(await verify_blocks(chunk, threads=threads, limits=limits))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(verifier)
        async with recv:
            async for entries, bad in recv:
                rejected.extend(bad)
                result = await apply(entries)
                added.extend(result.added)
                rejected.extend(result.rejected)
                dropped.extend(result.dropped)
    return ReceiveResult(
        added=tuple(added), rejected=tuple(rejected), needed=result.needed, dropped=tuple(dropped)
    )
