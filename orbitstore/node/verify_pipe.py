"""The node's side of the verification worker's pipe (protocol: node/verify_worker.py).

:class:`Worker` is one worker process and its pipes, with pipelined requests;
:func:`encode_request` encodes a batch, :func:`decode_verdicts` decodes the answer into one verdict
per block (errors rebuilt with their class and message), :func:`check_here` computes
the same verdicts in this process (the thread fallback). Used by
:class:`orbitstore.node.verify.Verifier`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import trio

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.limits import EntryLimits
from orbitstore.errors import InvalidDataError, error_classes

_STOP_AT_FIRST = 1


class WorkerGone(Exception):
    """The worker process ended or answered nonsense."""


class Worker:
    """One verification worker process and its pipes (protocol: node/verify_worker.py).

    Requests are pipelined: a second one is written while the first is being checked,
    so the worker never waits for the event loop between batches. Answers come back in
    the order the requests were written, and each caller reads its own in turn."""

    __slots__ = ("_buffer", "_last", "_send_lock", "inflight", "process")

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self._buffer = bytearray()
        self._send_lock = trio.Lock()
        self._last = trio.Event()  # set when the previous request's answer was read
        self._last.set()
        self.inflight = 0

    async def _read(self, size: int) -> bytes:
        stdout = self.process.stdout
        assert stdout is not None
        while len(self._buffer) < size:
            data = await stdout.receive_some(max(65536, size - len(self._buffer)))
            if not data:
                raise WorkerGone("the verification worker exited")
            self._buffer += data
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    async def ready(self) -> None:
        if await self._read(1) != b"R":
            raise WorkerGone("the verification worker did not start")

    async def check(self, request: bytes) -> bytes:
        stdin = self.process.stdin
        assert stdin is not None
        mine = trio.Event()
        try:
            async with self._send_lock:  # one whole request at a time, in turn order
                previous, self._last = self._last, mine
                await stdin.send_all(request)
            await previous.wait()
            size = int.from_bytes(await self._read(4), "big")
            return await self._read(size)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise WorkerGone(f"the verification worker's pipe broke: {exc}") from exc
        finally:
            mine.set()

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


SKIPPED = object()  # not checked: after the first bad block, when asked to stop there
Verdict = InvalidDataError | None | object
"""Per block: None (valid), its error, or ``SKIPPED``."""


def _error_of(code: str, message: str) -> InvalidDataError:
    """The worker's refusal of a block as the error from_block raised (same class and
    message); a code that is not a data error's becomes a plain InvalidDataError."""
    cls = _ERRORS.get(code)
    if cls is None or not issubclass(cls, InvalidDataError):
        return InvalidDataError(message)
    return cls(message)


_ERRORS = error_classes()


def encode_request(part: Sequence[tuple[Cid, bytes]], limits: EntryLimits, stop: bool) -> bytes:
    chunks = [
        struct.pack(
            ">BIIIII",
            _STOP_AT_FIRST if stop else 0,
            limits.max_entry_bytes,
            limits.max_next,
            limits.max_refs,
            limits.max_writer_chars,
            len(part),
        )
    ]
    for cid, block in part:
        raw = cid._bytes
        chunks += (bytes((len(raw),)), raw, len(block).to_bytes(4, "big"), block)
    body = b"".join(chunks)
    return len(body).to_bytes(4, "big") + body


def decode_verdicts(answer: bytes, count: int) -> list[Verdict]:
    """The worker's answer, one verdict per block (WorkerGone if it is malformed)."""
    out: list[Verdict] = []
    at = 0
    try:
        while at < len(answer):
            status = answer[at]
            if status == 1:
                out.append(None)
                at += 1
            elif status == 2:
                out.append(SKIPPED)
                at += 1
            else:
                k = answer[at + 1]
                code = answer[at + 2 : at + 2 + k].decode("ascii")
                (j,) = struct.unpack_from(">H", answer, at + 2 + k)
                message = answer[at + 4 + k : at + 4 + k + j].decode("utf-8", "replace")
                out.append(_error_of(code, message))
                at += 4 + k + j
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise WorkerGone(f"the verification worker's answer is malformed: {exc}") from exc
    if len(out) != count:
        raise WorkerGone("the verification worker answered another request")
    return out


def check_here(part: Sequence[tuple[Cid, bytes]], limits: EntryLimits, stop: bool) -> list[Verdict]:
    """The worker's verdicts, computed in this process (on a thread)."""
    out: list[Verdict] = []
    failed = False
    for cid, block in part:
        if failed and stop:
            out.append(SKIPPED)
            continue
        try:
            Entry.from_block(cid, block, limits=limits)
        except InvalidDataError as exc:
            out.append(exc)
            failed = True
        else:
            out.append(None)
    return out
