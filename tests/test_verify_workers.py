"""Signature checks on worker processes (orbitstore/node/verify.py, verify_worker.py).

The rule they apply must be the rule every node applies: the same entries accepted, the
same blocks rejected with the same errors, as :meth:`Entry.from_block` one by one. The
pure parts are held to that by Hypothesis; the process pool by real worker processes
(started, killed, cancelled, closed)."""

from __future__ import annotations

import fcntl
import os
import random
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orbitstore import NodeConfig, open_node
from orbitstore.core.cid import Cid
from orbitstore.core.codec import LinkCache
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.limits import DEFAULT_LIMITS, EntryLimits
from orbitstore.errors import BadSignatureError, UsageError
from orbitstore.node import verify as verify_module
from orbitstore.node import verify_worker
from orbitstore.node.verify import Verifier, verify_chunk
from orbitstore.node.verify_pipe import SKIPPED, check_here, decode_verdicts, encode_request
from orbitstore.testing import fuzz

WRITER = Identity(bytes(range(32)))
OTHER = Identity(bytes(range(1, 33)))
DB = Cid.for_block(b"verify workers")
SEEDS = fuzz.signed_chain(WRITER, DB, 3)


def forge(entry: Entry, at: int = -3) -> tuple[Cid, bytes]:
    """``entry`` with one bit of its signature flipped: it hashes right, only Ed25519
    finds it."""
    block = bytearray(entry.block)
    block[at] ^= 1
    return Cid.for_block(bytes(block)), bytes(block)


def mixed_batch(n: int, seed: int) -> list[tuple[Cid, bytes]]:
    """``n`` blocks: valid entries, forged signatures and undecodable blocks."""
    rng = random.Random(seed)
    chain = fuzz.signed_chain(WRITER, DB, n)
    out: list[tuple[Cid, bytes]] = []
    for entry in chain:
        roll = rng.random()
        if roll < 0.1:
            out.append(forge(entry))
        elif roll < 0.13:
            out.append((Cid.for_block(b"\xa1junk"), b"\xa1junk"))
        else:
            out.append((entry.cid, entry.block))
    return out


def outcome(result: tuple[list[Entry], list[object]]) -> tuple[list[Cid], list[tuple[Cid, str]]]:
    entries, rejected = result
    return [e.cid for e in entries], [
        (r.cid, type(r.error).__name__)  # type: ignore[attr-defined]
        for r in rejected
    ]


# --- the pure parts ---------------------------------------------------------------------


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[Cid, bytes]]:
    """Valid entries, forged signatures and mutated blocks, in any order."""
    chain = fuzz.signed_chain(WRITER, DB, 4)
    pool = [(e.cid, e.block) for e in chain] + [forge(chain[1]), forge(chain[2], -10)]
    return draw(
        st.lists(
            st.one_of(st.sampled_from(pool), fuzz.mutated_entry_blocks(SEEDS, WRITER)),
            min_size=1,
            max_size=8,
        )
    )


def verdict_text(verdicts: list[object]) -> list[object]:
    return [v if v is None or v is SKIPPED else (type(v).__name__, str(v)) for v in verdicts]


LIMITS = EntryLimits(max_entry_bytes=4096, max_next=3, max_refs=2, max_writer_chars=60)


# One check for every example, as a worker has one for its whole life: its link cache
# then holds the CIDs of earlier requests too, good and bad ones alike.
WORKER_CHECK = verify_worker.entry_check()


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.booleans(), st.sampled_from([DEFAULT_LIMITS, LIMITS]))
def test_the_worker_decides_what_from_block_decides(
    blocks: list[tuple[Cid, bytes]], stop_at_first: bool, limits: EntryLimits
) -> None:
    """The worker's answer to a request, decoded, is the verdict of Entry.from_block in
    this process for every block: valid, or the same error with the same message, and
    nothing checked after the first bad one when asked to stop there."""
    request = encode_request(blocks, limits, stop_at_first)
    assert int.from_bytes(request[:4], "big") == len(request) - 4
    answer = verify_worker.answer(request[4:], WORKER_CHECK)
    got = decode_verdicts(answer[4:], len(blocks))
    assert int.from_bytes(answer[:4], "big") == len(answer) - 4
    assert verdict_text(got) == verdict_text(check_here(blocks, limits, stop_at_first))


def test_the_workers_link_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_worker, "_MAX_LINKS", 5)
    links = LinkCache()
    check = verify_worker.entry_check(links)
    chain = fuzz.signed_chain(WRITER, DB, 40)
    request = encode_request([(e.cid, e.block) for e in chain], LIMITS, False)[4:]
    for _ in range(2):  # the second time round, every link was seen and dropped again
        assert decode_verdicts(verify_worker.answer(request, check)[4:], 40) == [None] * 40
        assert 0 < len(links) <= 5 + 3  # past the bound: one block's own CID and its links


@pytest.mark.parametrize(
    "body",
    [
        bytes(21)[:20] + b"\x02" + b"\x00" * 8,  # two blocks announced, a piece of one
        bytes(21) + b"extra",  # no blocks, trailing bytes
        b"\x00\x00",  # no header
    ],
)
def test_the_worker_refuses_a_malformed_request(body: bytes) -> None:
    with pytest.raises((ValueError, IndexError, struct.error)):
        verify_worker.answer(body, verify_worker.entry_check())


def test_a_verifier_needs_a_worker() -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(UsageError):
            Verifier(bad)  # type: ignore[arg-type]


# --- the worker processes ---------------------------------------------------------------


@asynccontextmanager
async def running(workers: int) -> AsyncIterator[Verifier]:
    """A verifier with ``workers`` worker processes, closed at the end."""
    verifier = Verifier(workers)
    try:
        yield verifier
    finally:
        await verifier.aclose()


@pytest.mark.parametrize("workers", [1, 2])
async def test_workers_decide_what_from_block_decides(workers: int) -> None:
    async with running(workers) as verifier:
        for seed in range(3):
            blocks = mixed_batch(300, seed)
            expected = outcome(verify_chunk(blocks))
            assert expected[1], "the batch has bad blocks"
            assert outcome(await verifier.verify(blocks)) == expected
        stats = verifier.statistics()
        assert (stats.mode, stats.running, stats.started, stats.failed) == (
            "processes",
            workers,
            workers,
            0,
        )
        assert stats.signatures >= 800
    assert verifier.statistics().running == 0


async def test_stop_at_first_reports_the_first_bad_block() -> None:
    chain = fuzz.signed_chain(WRITER, DB, 200)
    blocks = [(e.cid, e.block) for e in chain]
    blocks[70] = forge(chain[70])
    async with running(1) as verifier:
        entries, rejected = await verifier.verify(blocks, stop_at_first=True)
        assert [r.cid for r in rejected] == [blocks[70][0]]
        assert isinstance(rejected[0].error, BadSignatureError)
        assert [e.cid for e in entries] == [cid for cid, _ in blocks[:70]]


async def test_batches_in_flight_on_one_worker_get_their_own_answers() -> None:
    """Requests are pipelined on a worker; each caller reads its own answer."""
    batches = [mixed_batch(100 + 10 * i, 10 + i) for i in range(6)]
    got: dict[int, object] = {}
    async with running(1) as verifier:
        async with trio.open_nursery() as nursery:
            for i, batch in enumerate(batches):
                pending = verifier.start(nursery, batch)

                async def collect(i: int = i, pending: verify_module.Pending = pending) -> None:  # type: ignore[type-arg]
                    got[i] = outcome(await pending.result())

                nursery.start_soon(collect)
        for i, batch in enumerate(batches):
            assert got[i] == outcome(verify_chunk(batch))
        assert verifier.statistics().started == 1


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="pipe sizes are Linux's")
async def test_a_workers_pipe_holds_the_requests_it_has_in_hand() -> None:
    """While the event loop commits it writes nothing: the requests a worker has in hand
    must be in its pipe by then, not 64 KiB of them with the rest waiting for the loop."""
    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    async with running(1) as verifier:
        await verifier.verify(mixed_batch(100, 1))
        (worker,) = verifier._live
        assert worker.process.stdin is not None
        size = fcntl.fcntl(worker.process.stdin.fileno(), fcntl.F_GETPIPE_SZ)  # type: ignore[attr-defined]
        assert size >= min(verify_module._PIPE_BYTES, limit)
        # Four requests of a default 256 KiB frame's half fit, with room to spare.
        assert verify_module._PIPE_BYTES >= verify_module._REQUESTS_PER_WORKER * 128 * 1024


def test_a_pipe_that_cannot_grow_is_no_error() -> None:
    """The size is a hint: no ``fileno``, or an fcntl that fails, leaves the pipe be."""
    read, write = os.pipe()
    os.close(read)
    os.close(write)

    class Closed:
        def fileno(self) -> int:
            return write

    verify_module._widen_pipe(object())
    verify_module._widen_pipe(Closed())  # EBADF: suppressed
    with pytest.raises(OSError):
        fcntl.fcntl(write, fcntl.F_GETFL)  # the fd really is closed


async def test_a_killed_worker_costs_a_thread_not_a_wrong_answer() -> None:
    blocks = mixed_batch(200, 3)
    expected = outcome(verify_chunk(blocks))
    async with running(1) as verifier:
        assert outcome(await verifier.verify(blocks)) == expected
        (worker,) = verifier._live
        worker.kill()
        await worker.process.wait()
        assert outcome(await verifier.verify(blocks)) == expected  # on a thread
        assert verifier.statistics().failed == 1
        assert outcome(await verifier.verify(blocks)) == expected  # a new worker
        assert verifier.statistics().started == 2


async def test_a_cancelled_verification_leaves_the_pool_usable() -> None:
    blocks = mixed_batch(400, 4)
    expected = outcome(verify_chunk(blocks))
    async with running(1) as verifier:
        await verifier.verify(blocks[:100])  # a worker is running
        with trio.move_on_after(0.002) as scope:
            await verifier.verify(blocks)
        assert scope.cancelled_caught
        assert outcome(await verifier.verify(blocks)) == expected
        assert verifier.statistics().failed == 0  # cancelling is not a failure


async def test_workers_that_cannot_start_leave_it_to_threads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(verify_module, "WORKER_SCRIPT", tmp_path / "missing.py")
    blocks = mixed_batch(200, 5)
    expected = outcome(verify_chunk(blocks))
    async with running(2) as verifier:
        for _ in range(3):
            assert outcome(await verifier.verify(blocks)) == expected
        stats = verifier.statistics()
        assert stats.mode == "threads" and stats.running == 0 and stats.failed >= 3
        assert "verification worker" in caplog.text


async def test_a_node_ends_its_workers_when_it_closes(tmp_path: Path) -> None:
    chain_home, home = tmp_path / "writer", tmp_path / "replica"
    async with open_node(chain_home) as writer:
        db = await writer.open("log", write=["*"])
        await db.append_many(range(300))
        blocks = [(e.cid, e.block) for e in db.entries()]
        manifest = writer.store.blocks.get(db.cid)
        assert manifest is not None
        address, cid = db.address, db.cid
    async with open_node(home, config=NodeConfig(verify_threads=2)) as node:
        node.store.blocks.put(cid, manifest)
        replica = await node.open(address)
        result = await replica.receive(blocks)
        assert len(result.added) == 300 and not result.rejected
        verifier = replica.verifier
        processes = [w.process for w in verifier._live]
        assert processes and verifier.statistics().mode == "processes"
    assert all(p.returncode is not None for p in processes)
    assert verifier.statistics().running == 0


async def test_verify_processes_false_starts_no_process(tmp_path: Path) -> None:
    config = NodeConfig(verify_threads=2, verify_processes=False)
    async with open_node(tmp_path, config=config) as node:
        db = await node.open("log", write=["*"])
        other = fuzz.signed_chain(WRITER, db.cid, 100)
        result = await db.receive((e.cid, e.block) for e in other)
        assert len(result.added) == 100
        stats = db.verifier.statistics()
        assert stats.mode == "threads" and stats.started == 0


async def test_closing_mid_batch_still_answers_right_and_is_no_failure() -> None:
    """A node closing while a session verifies: the batch the closed workers held is
    checked on a thread, and closing does not count as a worker failure."""
    verifier = Verifier(1)
    blocks = mixed_batch(600, 6)
    expected = outcome(verify_chunk(blocks))
    await verifier.verify(blocks[:100])  # a worker is running
    got: list[object] = []
    async with trio.open_nursery() as nursery:
        pending = verifier.start(nursery, blocks)
        with trio.fail_after(10):
            while not any(w.inflight for w in verifier._live):
                await trio.lowlevel.checkpoint()  # until the request is with the worker
        await verifier.aclose()
        got.append(outcome(await pending.result()))
    assert got == [expected]
    stats = verifier.statistics()
    assert stats.failed == 0 and stats.running == 0 and stats.mode == "threads"
