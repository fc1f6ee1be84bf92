"""Verify received entry blocks on worker processes.

Checking an entry is mostly Ed25519 verification (about 70% of receiving one).
:class:`Verifier` hands large batches to worker processes (node/verify_worker.py), which
run :meth:`Entry.from_block` on every block — hash, structure, limits, signature — on
other cores while the event loop goes on reading and applying; the loop then decodes the
blocks they passed (:meth:`Entry.from_trusted_block`, ~4 µs) and rebuilds the errors of
those they refused (same class, same message).

Threads were used before, and are the fallback when no process can be started
(``NodeConfig(verify_processes=False)``, or a platform without them): libsodium
releases the GIL while it verifies, but a thread must take it back after every
signature, and CPython hands it over only every 5 ms while the event loop's thread is
busy: measured here, a verifying thread managed 16,000 signatures/s beside an idle
event loop and 200/s beside a busy one, so verification and apply did not overlap.

``orbitstore.core`` cannot do this itself (it does no I/O and starts nothing); it offers
:meth:`Entry.from_block`, which the workers and the fallback threads run alike.
"""

from __future__ import annotations

import fcntl
import logging
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Generic, TypeVar

import trio

from orbitstore.core.cid import Cid
from orbitstore.core.codec import LinkCache
from orbitstore.core.entry import Entry
from orbitstore.core.limits import DEFAULT_LIMITS, EntryLimits
from orbitstore.core.oplog import ReceiveResult, Rejection
from orbitstore.errors import ClosedError, InvalidDataError, UsageError
from orbitstore.node.verify_pipe import (
    Verdict,
    Worker,
    WorkerGone,
    check_here,
    decode_verdicts,
    encode_request,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Below this many blocks, handing work to a thread costs more than it saves (a thread
# round trip is ~50-100 µs; one entry verifies in ~70 µs).
MIN_BLOCKS_FOR_THREADS = 64
# Blocks per pipelined receive chunk: large enough that a thread hand-off (~50-100 µs)
# is noise against verifying it (~17 ms), small enough that apply and verify overlap.
PIPELINE_CHUNK = 256


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


WORKER_SCRIPT = Path(__file__).with_name("verify_worker.py")
# Where this orbitstore was imported from: the worker puts it first on its sys.path, so
# it runs this very code whatever the caller's environment (``-I`` drops PYTHONPATH).
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
# A worker that does not say it is ready in this long is given up (and threads used).
_START_TIMEOUT = 20.0
# After this many workers failed to start or died, threads verify from then on.
_MAX_WORKER_FAILURES = 3
# Requests a worker may have in hand: one being checked, the rest waiting in its pipe.
# The event loop does nothing else while it commits a merged batch of frames (~100 ms
# for ~3,000 entries), so each worker needs that much work queued before the commit
# starts: with two, the workers sat idle through every commit (measured: busy 57% of the
# catch-up, the machine's two cores 20% idle).
_REQUESTS_PER_WORKER = 4
# The size asked for each worker's input pipe (Linux ``F_SETPIPE_SZ``; the default is
# 64 KiB, about 300 feed entries): the queued requests are in the pipe, not half of one
# in the pipe and the rest waiting for the event loop to write it. 1 MiB is Linux's
# default ``/proc/sys/fs/pipe-max-size``; where it cannot be had the default stays.
_PIPE_BYTES = 1024 * 1024


@dataclass(slots=True)
class VerifierStatistics:
    """What a :class:`Verifier` did (``Node.statistics()["verify"]``)."""

    mode: str
    """``processes`` (worker processes), or ``threads`` (the fallback, or asked for)."""
    workers: int
    """How many verify in parallel (``NodeConfig.verify_threads``)."""
    running: int
    """Worker processes alive now (started at the first large batch)."""
    signatures: int
    """Signatures checked on workers or threads (small batches are checked inline)."""
    started: int
    """Worker processes started."""
    failed: int
    """Worker processes that failed to start or died (their batches went to threads)."""


class Pending(Generic[T]):
    """The result of work started in the background (:meth:`Pending.run`)."""

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = trio.Event()
        self._value: T | None = None
        self._error: Exception | None = None

    @classmethod
    def run(cls, nursery: trio.Nursery, work: Callable[[], Awaitable[T]]) -> Pending[T]:
        pending = cls()

        async def task() -> None:
            try:
                pending._value = await work()
            except Exception as exc:  # handed to whoever waits for the result
                pending._error = exc
            finally:
                if pending._value is None and pending._error is None:
                    pending._error = ClosedError("the verification was cancelled")
                pending._done.set()

        nursery.start_soon(task)
        return pending

    async def result(self) -> T:
        """Wait for the work; its value, or what it raised."""
        await self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


class Verifier:
    """Checks received entry blocks for one node (:meth:`verify`).

    ``workers`` signature checks run in parallel: on worker processes (started at the
    first batch of :data:`MIN_BLOCKS_FOR_THREADS` or more blocks, alive until
    :meth:`aclose`), or on threads when ``processes`` is False or no process can be
    started. The result is the same either way, and the same as calling
    :meth:`Entry.from_block` on each block in turn."""

    def __init__(self, workers: int = 1, *, processes: bool = True) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise UsageError("a Verifier needs at least one worker")
        self.workers = workers
        self._processes = processes
        self._live: list[Worker] = []
        self._dead: list[Worker] = []
        self._starting = 0
        self._start_done = trio.Event()  # set (and replaced) when a start ends
        self._slots = trio.Semaphore(_REQUESTS_PER_WORKER * workers)
        self._signatures = 0
        self._started = 0
        self._failed = 0
        self._closed = False

    def statistics(self) -> VerifierStatistics:
        return VerifierStatistics(
            mode="processes" if self._use_processes else "threads",
            workers=self.workers,
            running=len(self._live),
            signatures=self._signatures,
            started=self._started,
            failed=self._failed,
        )

    @property
    def _use_processes(self) -> bool:
        return self._processes and not self._closed and self._failed < _MAX_WORKER_FAILURES

    async def verify(
        self,
        blocks: Sequence[tuple[Cid, bytes]],
        *,
        limits: EntryLimits = DEFAULT_LIMITS,
        stop_at_first: bool = False,
    ) -> tuple[list[Entry], list[Rejection]]:
        """Decode and verify ``blocks``: the valid entries and the rejected blocks, both
        in the order of ``blocks``. With ``stop_at_first``, each worker stops at its first
        bad block: there is at least one rejection if any block is bad, but not every one
        is listed."""
        if len(blocks) < MIN_BLOCKS_FOR_THREADS:
            return verify_chunk(blocks, limits, stop_at_first=stop_at_first)
        verdicts = await self._check(blocks, limits, stop_at_first)
        entries: list[Entry] = []
        rejected: list[Rejection] = []
        links = LinkCache()  # the batch's links, each one Cid (see from_trusted_block)
        for (cid, block), verdict in zip(blocks, verdicts, strict=True):
            if verdict is None:  # checked by Entry.from_block on a worker: decode it here
                entries.append(Entry.from_trusted_block(cid, block, links=links))
            elif isinstance(verdict, InvalidDataError):
                rejected.append(Rejection(cid, verdict))
        return entries, rejected

    async def _check(
        self, blocks: Sequence[tuple[Cid, bytes]], limits: EntryLimits, stop: bool
    ) -> list[Verdict]:
        self._signatures += len(blocks)
        size = -(-len(blocks) // self.workers)  # ceiling: one contiguous part per worker
        parts = [blocks[i : i + size] for i in range(0, len(blocks), size)]
        verdicts: list[list[Verdict]] = [[] for _ in parts]

        async def run(i: int) -> None:
            verdicts[i] = await self._check_part(parts[i], limits, stop)

        async with trio.open_nursery() as nursery:
            for i in range(len(parts)):
                nursery.start_soon(run, i)
        return [verdict for part in verdicts for verdict in part]

    async def _check_part(
        self, part: Sequence[tuple[Cid, bytes]], limits: EntryLimits, stop: bool
    ) -> list[Verdict]:
        async with self._slots:
            worker = await self._worker() if self._use_processes else None
            if worker is not None:
                worker.inflight += 1
                try:
                    return decode_verdicts(
                        await worker.check(encode_request(part, limits, stop)), len(part)
                    )
                except WorkerGone as exc:
                    self._lost(worker, exc)
                except BaseException:  # cancelled mid-exchange: its pipe is out of step
                    self._lost(worker, None)
                    raise
                finally:
                    worker.inflight -= 1
            return await trio.to_thread.run_sync(partial(check_here, part, limits, stop))

    async def _worker(self) -> Worker | None:
        """The least busy worker, or a new one while fewer than ``workers`` run and each
        has a request in hand; None: use a thread."""
        self._dead = [w for w in self._dead if w.process.poll() is None]  # reap
        while True:
            idlest = min(self._live, key=lambda w: w.inflight, default=None)
            full = len(self._live) + self._starting >= self.workers
            if idlest is not None and (idlest.inflight == 0 or full):
                return idlest
            if not full:
                break
            await self._start_done.wait()  # only starting ones: wait for them
            if not self._use_processes:
                return None
        self._starting += 1
        try:
            worker = await self._start()
        finally:
            self._starting -= 1
            self._start_done.set()
            self._start_done = trio.Event()
        if worker is not None:
            self._live.append(worker)
        return worker

    def start(
        self,
        nursery: trio.Nursery,
        blocks: Sequence[tuple[Cid, bytes]],
        *,
        limits: EntryLimits = DEFAULT_LIMITS,
        stop_at_first: bool = False,
    ) -> Pending[tuple[list[Entry], list[Rejection]]]:
        """:meth:`verify` in a task of ``nursery``: several batches in flight keep the
        workers busy while the caller reads and applies (the answers stay in order)."""
        return Pending.run(
            nursery, partial(self.verify, blocks, limits=limits, stop_at_first=stop_at_first)
        )

    async def _start(self) -> Worker | None:
        try:
            process = await trio.lowlevel.open_process(
                [sys.executable, "-I", str(WORKER_SCRIPT), _PACKAGE_ROOT],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError as exc:
            self._failed += 1
            logger.warning("cannot start a verification worker (%s): threads verify", exc)
            return None
        _widen_pipe(process.stdin)
        worker = Worker(process)
        try:
            with trio.fail_after(_START_TIMEOUT):
                await worker.ready()
        except (WorkerGone, trio.TooSlowError) as exc:
            self._lost(worker, exc)
            return None
        except BaseException:
            self._lost(worker, None)
            raise
        self._started += 1
        return worker

    def _lost(self, worker: Worker, error: Exception | None) -> None:
        worker.kill()
        if worker in self._live:
            self._live.remove(worker)
        if worker not in self._dead:
            self._dead.append(worker)
        if error is not None and not self._closed:  # closing ends them: not a failure
            self._failed += 1
            logger.warning("verification worker lost (%s); its batch goes to a thread", error)

    async def aclose(self) -> None:
        """End the worker processes: they exit when their input closes (or are killed
        after 2 s). Later batches are verified on threads."""
        self._closed = True
        workers, self._live, self._dead = self._live + self._dead, [], []
        with trio.CancelScope(shield=True):
            for worker in workers:
                assert worker.process.stdin is not None
                with suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    await worker.process.stdin.aclose()
            for worker in workers:
                with trio.move_on_after(2.0):
                    await worker.process.wait()
                worker.kill()
                await worker.process.wait()


def _widen_pipe(stream: object) -> None:
    """Ask for a pipe of :data:`_PIPE_BYTES` (see there); a hint, so any refusal (another
    platform, a lower limit, the user's pipe quota spent) keeps the default."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    fileno = getattr(stream, "fileno", None)
    if set_size is None or fileno is None:
        return
    with suppress(OSError):
        fcntl.fcntl(fileno(), set_size, _PIPE_BYTES)


async def verify_blocks(
    blocks: Sequence[tuple[Cid, bytes]],
    *,
    threads: int = 2,
    limits: EntryLimits = DEFAULT_LIMITS,
    stop_at_first: bool = False,
) -> tuple[list[Entry], list[Rejection]]:
    """Decode and verify ``blocks`` on ``threads`` worker threads (a :class:`Verifier`
    without processes, for one call).

    Returns the valid entries and the rejected blocks, both in the order of ``blocks``
    (the same result as calling :meth:`Entry.from_block` on each in turn). With
    ``stop_at_first``, each thread stops at its first rejected block: there is at least
    one rejection if any block is bad, but not every one is listed.
    """
    if threads < 1:
        raise UsageError("threads must be at least 1")
    verifier = Verifier(threads, processes=False)
    return await verifier.verify(blocks, limits=limits, stop_at_first=stop_at_first)


async def receive_pipelined(
    blocks: Sequence[tuple[Cid, bytes]],
    *,
    apply: Callable[[list[Entry]], Awaitable[ReceiveResult]],
    verifier: Verifier,
    limits: EntryLimits,
) -> ReceiveResult:
    """Verify chunk k+1 while chunk k is applied (``apply``: one committed write of
    verified entries, :meth:`Database.receive_entries`).

    Verification (worker processes) and applying (SQLite + view, on the caller's thread)
    overlap, so a bulk receive runs at the speed of the slower of the two rather than
    their sum. What was applied stays applied if a later chunk fails.
    """
    chunks = [blocks[i : i + PIPELINE_CHUNK] for i in range(0, len(blocks), PIPELINE_CHUNK)]
    added: list[Entry] = []
    rejected: list[Rejection] = []
    dropped: list[Cid] = []
    result = ReceiveResult()
    send, recv = trio.open_memory_channel[Pending[tuple[list[Entry], list[Rejection]]]](1)

    async def verifying() -> None:
        async with send, trio.open_nursery() as batches:
            for chunk in chunks:  # up to three chunks in flight: the workers never wait
                await send.send(verifier.start(batches, chunk, limits=limits))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(verifying)
        async with recv:
            async for pending in recv:
                entries, bad = await pending.result()
                rejected.extend(bad)
                result = await apply(entries)
                added.extend(result.added)
                rejected.extend(result.rejected)
                dropped.extend(result.dropped)
    return ReceiveResult(
        added=tuple(added), rejected=tuple(rejected), needed=result.needed, dropped=tuple(dropped)
    )
