"""Catch-up throughput: a fresh replica pulls N entries from one peer.

Two measurements, one JSON object per line:

- ``sync_session_catchup``: the sans-IO sessions wired back to back (no I/O): the cost
  of the protocol itself (walk, framing, decode, verify, apply).
- ``sync_memory_network_catchup``: two nodes over the in-memory network (real trio
  clock, no latency): the replication service end to end.

    python benchmarks/bench_sync_catchup.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import time

import trio

from orbitstore.core.access import StaticAccess
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.node import NodeConfig, open_node
from orbitstore.storage.memory import MemoryStore
from orbitstore.sync.frames import FrameDecoder, encode_frame
from orbitstore.sync.session import ApplyEntries, SyncSession
from orbitstore.testing.network import MemoryNetwork

MANIFEST = Manifest(name="bench", type="log", access=StaticAccess.of(["*"]), meta={})
DB, BLOCK = MANIFEST.to_block()


def session_catchup(n: int) -> dict[str, object]:
    ident = Identity(b"\x01" * 32)
    a = OpLog(db=DB, access=MANIFEST.access, store=MemoryStore().log_store(DB), identity=ident)
    b = OpLog(db=DB, access=MANIFEST.access, store=MemoryStore().log_store(DB))
    a.append_many({"i": i, "text": "x" * 100} for i in range(n))
    start = time.perf_counter()
    sa, sb = SyncSession(reader=a, db=DB), SyncSession(reader=b, db=DB)
    sa.start()
    sb.start()
    decoders = {id(sa): FrameDecoder(), id(sb): FrameDecoder()}
    flights = 0
    while not (sa.complete and sb.complete):
        flights += 1
        for src, dst, log in ((sa, sb, b), (sb, sa, a)):
            data = b""
            while (m := src.next_message()) is not None:
                data += encode_frame(m)
            for msg in decoders[id(dst)].feed(data):
                for ev in dst.receive(msg):
                    if isinstance(ev, ApplyEntries):
                        dst.entries_applied(log.receive(ev.blocks).needed)
    elapsed = time.perf_counter() - start
    assert b.heads == a.heads
    return {
        "name": "sync_session_catchup",
        "value": round(n / elapsed),
        "unit": "entries/s",
        "n": n,
        "seconds": round(elapsed, 3),
        "flights": flights,
        "bytes": sa.statistics().bytes_sent,
    }


async def network_catchup(n: int) -> dict[str, object]:
    net = MemoryNetwork(rng=random.Random(0))
    config = NodeConfig(timestamps=False)
    async with (
        net.open_transport("a") as ta,
        net.open_transport("b") as tb,
        open_node(transport=ta, identity=Identity(b"\x01" * 32), config=config) as na,
        open_node(transport=tb, identity=Identity(b"\x02" * 32), config=config) as nb,
    ):
        la = await na.open("bench", write=["*"])
        await la.append_many({"i": i, "text": "x" * 100} for i in range(n))
        start = time.perf_counter()
        assert nb.replication is not None
        await nb.replication.connect("mem/a")
        lb = await nb.open(la.address)  # fetches the manifest from a, then syncs
        with trio.fail_after(600):
            while len(lb) < n:
                await lb.wait_synced(timeout=600)
                await trio.sleep(0.001)
        elapsed = time.perf_counter() - start
    return {
        "name": "sync_memory_network_catchup",
        "value": round(n / elapsed),
        "unit": "entries/s",
        "n": n,
        "seconds": round(elapsed, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N, for CI smoke runs")
    args = parser.parse_args()
    sizes = [1000] if args.quick else [1000, 10_000, 50_000]
    for n in sizes:
        print(json.dumps(session_catchup(n)), flush=True)
        print(json.dumps(trio.run(network_catchup, n)), flush=True)


if __name__ == "__main__":
    main()
