"""Cost of sealing payloads: appends to an encrypted database vs one in the clear.

Both write the same payloads to a fresh SQLite-backed ``feed`` database
through the public API, interleaved (clear, encrypted, clear, ...) so machine noise hits
both alike. ``append_encrypted`` seals each payload (XChaCha20-Poly1305 under the epoch
key, a random 24-byte nonce) and opens it again to hand the view its plaintext;
``append`` does neither. ``encrypted_overhead`` is the ratio of the per-entry costs
(target: within 1.2).

Modes: batches of 1000 (``append_many``, one commit per batch), and single appends.

Run: ``.venv/bin/python benchmarks/bench_append_encrypted.py [--quick]``
"""

from __future__ import annotations

import tempfile
import time

import trio
from _common import emit, parse_args

import orbitstore

BATCH = 1000


def payload(i: int) -> dict[str, object]:
    return {"n": i, "text": f"message number {i}", "tags": ["bench", "append"]}


async def run(n: int, *, encrypted: bool, batch: int) -> float:
    """Seconds per entry appending ``n`` entries in calls of ``batch`` payloads."""
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(home) as node:
            db = await node.open("bench", type="feed", encrypted=encrypted)
            base = len(db)
            start = time.perf_counter()
            for lo in range(0, n, batch):
                if batch == 1:
                    await db.append(payload(lo))
                else:
                    await db.append_many([payload(i) for i in range(lo, min(n, lo + batch))])
            elapsed = time.perf_counter() - start
            assert len(db) == base + n
    return elapsed / n


async def main() -> None:
    args = parse_args(__doc__ or "")
    plan = [(2_000, BATCH, 2), (200, 1, 2)] if args.quick else [(20_000, BATCH, 5), (2_000, 1, 5)]
    for n, batch, reps in plan:
        clear: list[float] = []
        sealed: list[float] = []
        for _ in range(reps):
            clear.append(await run(n, encrypted=False, batch=batch))
            sealed.append(await run(n, encrypted=True, batch=batch))
        mode = "batched" if batch > 1 else "single"
        emit(f"append_{mode}", [1e6 * t for t in clear], "us/entry", n, batch=batch)
        emit(f"append_encrypted_{mode}", [1e6 * t for t in sealed], "us/entry", n, batch=batch)
        ratios = [s / c for s, c in zip(sealed, clear, strict=True)]
        emit(f"encrypted_overhead_{mode}", ratios, "ratio", n, batch=batch, target=1.2)


if __name__ == "__main__":
    trio.run(main)
