"""Cost of sealing payloads: appends to an encrypted database vs one in the clear.

Both write the same payloads to a fresh SQLite-backed ``feed`` database
through the public API, interleaved (clear, encrypted, clear, ...) so machine noise hits
both alike. ``append_encrypted`` seals each payload (XChaCha20-Poly1305 under the epoch
key, a random 24-byte nonce) and hands the view the plaintext it sealed; ``append`` does
neither. ``encrypted_overhead`` is the ratio of the per-entry costs (target: within 1.2).

Each run is timed twice around the same loop: wall time (``time.perf_counter``) and the
CPU time of this process (``time.process_time``). The ``*_cpu`` lines are the ones to
trust on a shared machine: other jobs take the cores, not our instructions.

Modes: batches of 1000 (``append_many``, one commit per batch), and single appends.

Run: ``.venv/bin/python benchmarks/bench_append_encrypted.py [--quick]``

For instruction counts (repeatable under any load), ``--workload`` runs one fixed
workload and prints nothing; per-entry instructions are the difference of two sizes
divided by the difference of their entry counts (start-up cancels)::

    valgrind --tool=callgrind --callgrind-out-file=cg.out \\
        .venv/bin/python benchmarks/bench_append_encrypted.py --workload encrypted batched 3000

(``clear`` or ``encrypted``, ``batched`` or ``single``, N entries.) It imports whichever
``orbitstore`` the interpreter finds, so one copy of this script measures two checkouts.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import trio
from _common import emit

import orbitstore

BATCH = 1000


def payload(i: int) -> dict[str, object]:
    return {"n": i, "text": f"message number {i}", "tags": ["bench", "append"]}


async def run(n: int, *, encrypted: bool, batch: int) -> tuple[float, float]:
    """``(wall, cpu)`` seconds per entry appending ``n`` entries in calls of ``batch``
    payloads."""
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(home) as node:
            db = await node.open("bench", type="feed", encrypted=encrypted)
            base = len(db)
            start, cpu = time.perf_counter(), time.process_time()
            for lo in range(0, n, batch):
                if batch == 1:
                    await db.append(payload(lo))
                else:
                    await db.append_many([payload(i) for i in range(lo, min(n, lo + batch))])
            cpu = time.process_time() - cpu
            elapsed = time.perf_counter() - start
            assert len(db) == base + n
    return elapsed / n, cpu / n


async def bench(quick: bool) -> None:
    plan = [(2_000, BATCH, 3), (300, 1, 3)] if quick else [(20_000, BATCH, 5), (2_000, 1, 7)]
    for n, batch, reps in plan:
        clear: list[tuple[float, float]] = []
        sealed: list[tuple[float, float]] = []
        await run(min(n, 200), encrypted=True, batch=batch)  # warm imports and caches
        for _ in range(reps):
            clear.append(await run(n, encrypted=False, batch=batch))
            sealed.append(await run(n, encrypted=True, batch=batch))
        mode = "batched" if batch > 1 else "single"
        for col, suffix in ((0, ""), (1, "_cpu")):
            c = [1e6 * t[col] for t in clear]
            s = [1e6 * t[col] for t in sealed]
            emit(f"append_{mode}{suffix}", c, "us/entry", n, batch=batch)
            emit(f"append_encrypted_{mode}{suffix}", s, "us/entry", n, batch=batch)
            ratios = [a / b for a, b in zip(s, c, strict=True)]
            emit(f"encrypted_overhead_{mode}{suffix}", ratios, "ratio", n, batch=batch, target=1.2)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="tiny workloads: a smoke run of a few seconds"
    )
    parser.add_argument(
        "--workload",
        nargs=3,
        metavar=("KIND", "MODE", "N"),
        help="run one workload (clear|encrypted, batched|single, N entries), print nothing",
    )
    args = parser.parse_args()
    if args.workload is None:
        return await bench(args.quick)
    kind, mode, n = args.workload
    if kind not in ("clear", "encrypted") or mode not in ("batched", "single"):
        parser.error("--workload takes clear|encrypted, batched|single and a count")
    await run(int(n), encrypted=kind == "encrypted", batch=BATCH if mode == "batched" else 1)


if __name__ == "__main__":
    trio.run(main)
