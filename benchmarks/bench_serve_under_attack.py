"""Serving under attack: an honest replica's catch-up rate while a hostile peer floods
the node it catches up from.

Two nodes and a hostile peer on the in-memory network (real trio clock, no latency;
the replication service end to end, verification on worker threads as in production).
The source holds N entries. A fresh replica catches up from it twice: alone
(``baseline``), and while a hostile peer runs ``attackers`` concurrent loops against
the source, each opening sync streams that say hello and then ask for the whole log
again and again (endless wants), write garbage, or send frames of the largest allowed
size full of forged entries. One JSON line::

    {"name": "serve_under_attack", "value": <attack rate / baseline rate>, "unit": "ratio",
     "n": N, "baseline_entries_per_s": ..., "attack_entries_per_s": ...}

Target: ratio >= 0.7 (an attacker costs an honest peer at most 30 % of its catch-up).

    python benchmarks/bench_serve_under_attack.py [--quick]
"""

from __future__ import annotations

import contextlib
import random
import time

import trio
from _common import emit, machine, parse_args

from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.errors import NetworkError
from orbitstore.node import NodeConfig, open_node
from orbitstore.node.config import ReplicationConfig
from orbitstore.storage.memory import MemoryStore
from orbitstore.sync.frames import Entries, Hello, Want, encode_frame
from orbitstore.testing.network import MemoryNetwork, MemoryTransport

MANIFEST = Manifest(name="bench", type="log", access=StaticAccess.of(["*"]), meta={})
DB, BLOCK = MANIFEST.to_block()
CONFIG = NodeConfig(timestamps=False, replication=ReplicationConfig(idle_timeout=5.0))
EVIL = Identity(b"\x66" * 32)


def attack_payloads(cids: list[Cid]) -> list[bytes]:
    hello = encode_frame(Hello(db=DB))
    wants = encode_frame(Want(cids=tuple(cids[-4096:])))
    forged = bytearray(Entry.create(EVIL, db=DB, clock=1, next=[], payload="x" * 2000).block)
    forged[-3] ^= 1
    block = bytes(forged)
    big = encode_frame(
        Entries(
            blocks=tuple(
                (Cid.for_block(block + bytes([i % 256]) * (i // 256 + 1)), block)
                for i in range(700)
            )
        )
    )
    rng = random.Random(0)
    return [hello + wants * 20, rng.randbytes(60_000), hello + big]


async def attacker(te: MemoryTransport, payloads: list[bytes], stop: trio.Event) -> None:
    i = 0
    while not stop.is_set():
        payload = payloads[i % len(payloads)]
        i += 1
        with contextlib.suppress(NetworkError), trio.move_on_after(2):
            stream = await te.open_stream("source")
            await stream.send_all(payload)
            while await stream.receive_some():
                if stop.is_set():
                    break
        await trio.lowlevel.checkpoint()


async def catch_up(n: int, attackers: int) -> float:
    """Entries per second for a fresh replica, with ``attackers`` hostile loops running."""
    net = MemoryNetwork(rng=random.Random(1))
    stores = [MemoryStore(), MemoryStore()]
    for store in stores:
        store.blocks.put(DB, BLOCK)
    async with (
        net.open_transport("source") as ts,
        net.open_transport("replica") as tr,
        net.open_transport("evil") as te,
        open_node(
            store=stores[0], identity=Identity(b"\x01" * 32), transport=ts, config=CONFIG
        ) as source,
        open_node(
            store=stores[1], identity=Identity(b"\x02" * 32), transport=tr, config=CONFIG
        ) as replica,
        trio.open_nursery() as nursery,
    ):
        s = await source.open(f"/orbitstore/{DB}")
        for start in range(0, n, 1000):
            await s.append_many(
                {"i": i, "text": "x" * 100} for i in range(start, min(n, start + 1000))
            )
        payloads = attack_payloads(sorted(e.cid for e in s.entries()))
        stop = trio.Event()
        if attackers:
            await te.connect("mem/source")
            for _ in range(attackers):
                nursery.start_soon(attacker, te, payloads, stop)
            await trio.sleep(0.2)  # the flood is running before the honest replica asks
        r = await replica.open(f"/orbitstore/{DB}")
        assert replica.replication is not None
        began = time.perf_counter()
        await replica.replication.connect("mem/source")
        with trio.fail_after(600):
            async with replica.replication.subscribe_progress() as events:
                while len(r) < n:
                    await events.receive()
        elapsed = time.perf_counter() - began
        stop.set()
        nursery.cancel_scope.cancel()
    return n / elapsed


def main() -> None:
    args = parse_args(__doc__ or "")
    n = 500 if args.quick else 10_000
    reps = 1 if args.quick else 3
    attackers = 4
    baseline, attacked = [], []
    for _ in range(reps):
        baseline.append(trio.run(catch_up, n, 0))
        attacked.append(trio.run(catch_up, n, attackers))
    ratios = [a / b for a, b in zip(attacked, baseline, strict=True)]
    emit(
        "serve_under_attack",
        ratios,
        "ratio",
        n,
        baseline_entries_per_s=round(sorted(baseline)[len(baseline) // 2], 1),
        attack_entries_per_s=round(sorted(attacked)[len(attacked) // 2], 1),
        attackers=attackers,
        network="memory",
        target=0.7,
        **machine(),
    )


if __name__ == "__main__":
    main()
