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

from collections.abc import Sequence
from functools import partial

import trio

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.limits import DEFAULT_LIMITS, EntryLimits
from orbitstore.core.oplog import Rejection
from orbitstore.errors import InvalidDataError, UsageError

# Below this many blocks, handing work to a thread costs more than it saves (a thread
# round trip is ~50-100 µs; one entry verifies in ~70 µs).
MIN_BLOCKS_FOR_THREADS = 64


def verify_chunk(
    blocks: Sequence[tuple[Cid, bytes]],
    limits: EntryLimits = DEFAULT_LIMITS,
    *,
    stop_at_first: bool = False,
) -> tuple[list[Entry], list[Rejection]]:
    """Decode and verify ``blocks`` in the calling thread, keeping their order. With
    ``stop_at_first``, stop at the first rejected block (for a caller that refuses the
    whole batch then: the rest is not worth its signature checks)."""
    entries: list[Entry] = []
    rejected: list[Rejection] = []
    for cid, block in blocks:
        try:
            entries.append(Entry.from_block(cid, block, limits=limits))
        except InvalidDataError as exc:
            rejected.append(Rejection(cid, exc))
            if stop_at_first:
                break
    return entries, rejected


async def verify_blocks(
    blocks: Sequence[tuple[Cid, bytes]],
    *,
    threads: int = 2,
    limits: EntryLimits = DEFAULT_LIMITS,
    stop_at_first: bool = False,
) -> tuple[list[Entry], list[Rejection]]:
    """Decode and verify ``blocks`` on ``threads`` worker threads.

    Returns the valid entries and the rejected blocks, both in the order of ``blocks``
    (the same result as calling :meth:`Entry.from_block` on each in turn). With
    ``stop_at_first``, each thread stops at its first rejected block: there is at least
    one rejection if any block is bad, but not every one is listed.
    """
    if threads < 1:
        raise UsageError("threads must be at least 1")
    if not blocks:
        return [], []
    size = -(-len(blocks) // threads)  # ceiling: one contiguous chunk per thread
    chunks = [blocks[i : i + size] for i in range(0, len(blocks), size)]
    results: list[tuple[list[Entry], list[Rejection]]] = [([], [])] * len(chunks)

    async def run(i: int) -> None:
        results[i] = await trio.to_thread.run_sync(
            partial(verify_chunk, chunks[i], limits, stop_at_first=stop_at_first)
        )

    async with trio.open_nursery() as nursery:
        for i in range(len(chunks)):
            nursery.start_soon(run, i)
    entries = [e for got, _ in results for e in got]
    rejected = [r for _, bad in results for r in bad]
    return entries, rejected
