"""The verification worker: a process of its own that checks received entry blocks.

Why a process and not a thread: libsodium releases the GIL while it verifies, but a
verifying thread must take the GIL back after every signature, and CPython hands it
over only every ``sys.getswitchinterval()`` (5 ms) while the event loop's thread is busy
applying entries. Measured here: a thread verifies 16,000 signatures/s beside an idle
event loop and 200/s beside a busy one. A worker process shares no GIL, so it checks
blocks at full speed on another core while the node applies and commits.

This file runs as a script (``python -I verify_worker.py <dir>``, started by
:class:`orbitstore.node.verify.Verifier`): ``<dir>`` is the directory the node imported
the ``orbitstore`` package from, put first on ``sys.path``, so the worker runs exactly the
node's code; ``-I`` keeps everything else of the caller's environment out. It never
re-executes the application's ``__main__`` (the trap of ``multiprocessing``'s spawn and
forkserver start methods).

Each block gets :meth:`orbitstore.core.entry.Entry.check_block` — hash, structure,
limits and signature: every check of ``Entry.from_block``, the one check every node
applies, the one a thread would run (without building the entry the node then decodes).

The protocol, on the worker's stdin and stdout (integers big-endian):

- the worker writes ``R`` once it is ready;
- request: ``u32 size``, then ``size`` bytes: ``u8 flags`` (bit 0: stop at the first bad
  block), the four :class:`EntryLimits` as ``u32`` each (``max_entry_bytes``,
  ``max_next``, ``max_refs``, ``max_writer_chars``), ``u32 count``, then ``count`` items of
  ``u8 n ‖ CID (n bytes) ‖ u32 m ‖ block (m bytes)``;
- answer: ``u32 size``, then ``size`` bytes: one item per block, ``u8`` 1 (valid), 2 (not
  checked: after the first bad one, when asked to stop there) or 0 (bad) followed by
  ``u8 k ‖ error code (k bytes, ASCII) ‖ u16 j ‖ message (j bytes, UTF-8)``.

The worker ends at the end of its input (the node closed the pipe) or on a malformed
request.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:  # the worker imports orbitstore only once its sys.path is set
    from orbitstore.core.codec import LinkCache

_STOP_AT_FIRST = 1
_HEAD = struct.Struct(">BIIIII")  # flags, the four limits, count
_MAX_MESSAGE = 1000
_MAX_LINKS = 8192  # the link cache starts again past this many CIDs (its memory bound)


def answer(body: bytes, check: Callable[..., object]) -> bytes:
    """The answer to one request body (the bytes after its size). ``check(cid_bytes,
    block, limits_tuple)`` raises an error with ``code`` for a bad block."""
    flags, *limits, count = _HEAD.unpack_from(body, 0)
    out = bytearray()
    at = _HEAD.size
    stop = False
    for _ in range(count):
        n = body[at]
        cid = body[at + 1 : at + 1 + n]
        (m,) = struct.unpack_from(">I", body, at + 1 + n)
        start = at + 5 + n
        block = body[start : start + m]
        if len(block) != m:
            raise ValueError("truncated request")
        at = start + m
        if stop:
            out.append(2)
            continue
        try:
            check(cid, block, tuple(limits))
        except Exception as exc:  # the block's error, sent back by code and message
            code = str(getattr(exc, "code", "invalid_data")).encode("ascii", "replace")[:255]
            message = str(exc).encode("utf-8", "replace")[:_MAX_MESSAGE]
            out += bytes((0, len(code))) + code + struct.pack(">H", len(message)) + message
            stop = bool(flags & _STOP_AT_FIRST)
        else:
            out.append(1)
    if at != len(body):
        raise ValueError("trailing bytes in request")
    return struct.pack(">I", len(out)) + bytes(out)


def serve(read: BinaryIO, write: BinaryIO, check: Callable[..., object]) -> None:
    write.write(b"R")
    write.flush()
    while True:
        head = read.read(4)
        if len(head) < 4:
            return
        (size,) = struct.unpack(">I", head)
        body = read.read(size)
        if len(body) < size:
            return
        write.write(answer(body, check))
        write.flush()


def entry_check(links: LinkCache | None = None) -> Callable[..., object]:
    """``Entry.check_block`` over the wire's parts (imported once, at start-up): every
    check of ``Entry.from_block``, with each distinct link built once (a block's parent
    is most often the block before it, and they all name one database)."""
    from orbitstore.core.codec import LinkCache
    from orbitstore.core.entry import Entry
    from orbitstore.core.limits import EntryLimits

    cache: dict[tuple[int, ...], EntryLimits] = {}
    if links is None:
        links = LinkCache()

    def check(cid: bytes, block: bytes, limits: tuple[int, ...]) -> None:
        got = cache.get(limits)
        if got is None:
            entry_bytes, parents, refs, writer_chars = limits
            got = cache[limits] = EntryLimits(
                max_entry_bytes=entry_bytes,
                max_next=parents,
                max_refs=refs,
                max_writer_chars=writer_chars,
            )
        if len(links) > _MAX_LINKS:
            links.clear()
        # links[cid]: Cid(cid) (InvalidCidError for malformed bytes, as without the cache)
        Entry.check_block(links[cid], block, limits=got, links=links)

    return check


if __name__ == "__main__":
    try:
        sys.path.insert(0, sys.argv[1])
        serve(sys.stdin.buffer, sys.stdout.buffer, entry_check())
    except (ValueError, IndexError, ImportError, struct.error, BrokenPipeError, KeyboardInterrupt):
        sys.exit(1)
