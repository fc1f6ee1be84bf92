"""Users with devices: what writing through linked device keys costs on ``receive``.

A fresh SQLite node receives ``n`` keyvalue writes, in frames of 1000, into a
capabilities database, interleaved over 300 writers either way:

- ``devices_receive``: 100 users granted ``write``, 3 devices each, every device linked
  by its own link op (delegation signed by its user's root key); the writes come from the
  300 device keys;
- ``single_key_receive``: 300 writers granted ``write`` directly, writing with their own
  keys (the baseline: the same number of keys, without devices);
- ``single_user_key_receive``: 100 writers granted ``write``, one key per user (fewer
  grants to search, the same number of members).

The ACL history (grants, and link ops) is received first, untimed. Both are reported as
entries/s of wall time and of process CPU time (``*_cpu``; steadier on a loaded machine),
and ``devices_ratio`` / ``devices_ratio_100`` are devices / single-key CPU throughput
against each baseline (target: at least 0.9).

Run: ``.venv/bin/python benchmarks/bench_devices.py [--quick]``
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import trio
from _common import emit, machine, parse_args

import orbitstore
from orbitstore.core.access import CapabilitiesAccess
from orbitstore.core.capabilities import AclOp
from orbitstore.core.devices import Delegation
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest

OWNER = Identity(b"\x01" * 32)
USERS = 100
DEVICES = 3
FRAME = 1000


def key(tag: int, i: int) -> Identity:
    return Identity(tag.to_bytes(1, "big") + i.to_bytes(4, "big") + b"\x05" * 27)


class Chain:
    """Entries built one on the other (each on the previous), as one replica's history."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.last: Entry | None = None
        self.entries: list[Entry] = []

    def add(self, who: Identity, payload: Any) -> None:
        last = self.last
        entry = Entry.create(
            who,
            db=self.db,
            clock=1 if last is None else last.clock + 1,
            next=[] if last is None else [last.cid],
            payload=payload,
        )
        self.entries.append(entry)
        self.last = entry


def workload(
    n: int, devices: bool, writers_count: int = USERS * DEVICES
) -> tuple[Manifest, list[Entry], list[Entry]]:
    manifest = Manifest(name="d", type="keyvalue", access=CapabilitiesAccess.of(OWNER.id), meta={})
    chain = Chain(manifest.cid)
    writers: list[Identity] = []
    if devices:
        users = [key(2, u) for u in range(USERS)]
        for user in users:
            chain.add(OWNER, AclOp(op="grant", to=user.id, right="write").to_payload())
        for u, user in enumerate(users):
            for d in range(DEVICES):
                device = key(3, u * DEVICES + d)
                delegation = Delegation.create(user, device.id, issued=1)
                chain.add(device, AclOp.link(delegation).to_payload())
                writers.append(device)
    else:
        for w in range(writers_count):
            writer = key(4, w)
            chain.add(OWNER, AclOp(op="grant", to=writer.id, right="write").to_payload())
            writers.append(writer)
    history = len(chain.entries)
    for i in range(n):
        chain.add(writers[i % len(writers)], {"op": "put", "key": f"k{i % 500}", "value": i})
    return manifest, chain.entries[:history], chain.entries[history:]


async def receive_timed(
    manifest: Manifest, untimed: list[Entry], timed: list[Entry]
) -> tuple[float, float]:
    cid, block = manifest.to_block()
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(home, identity=OWNER) as node:
            node.store.blocks.put(cid, block)
            db = await node.open(manifest.address, type="keyvalue")
            for lo in range(0, len(untimed), FRAME):
                await db.receive([(e.cid, e.block) for e in untimed[lo : lo + FRAME]])
            wall, cpu = time.perf_counter(), time.process_time()
            for lo in range(0, len(timed), FRAME):
                result = await db.receive([(e.cid, e.block) for e in timed[lo : lo + FRAME]])
                assert not result.rejected, result.rejected[0]
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert len(db) == len(untimed) + len(timed)
            return wall, cpu


async def main() -> None:
    args = parse_args(__doc__ or "")
    n, reps = (1000, 1) if args.quick else (10_000, 5)
    dev = workload(n, devices=True)
    single = workload(n, devices=False)
    single_100 = workload(n, devices=False, writers_count=USERS)
    runs: dict[str, list[float]] = {k: [] for k in ("d", "dc", "s", "sc", "u", "uc")}
    for _ in range(reps):  # interleaved: the machine's load drifts
        wall, cpu = await receive_timed(*single)
        runs["s"].append(n / wall)
        runs["sc"].append(n / cpu)
        wall, cpu = await receive_timed(*single_100)
        runs["u"].append(n / wall)
        runs["uc"].append(n / cpu)
        wall, cpu = await receive_timed(*dev)
        runs["d"].append(n / wall)
        runs["dc"].append(n / cpu)
    extra = {"users": USERS, "devices_per_user": DEVICES, **machine()}
    emit("single_key_receive", runs["s"], "entries/s", n, **extra)
    emit("single_user_key_receive", runs["u"], "entries/s", n, **extra)
    emit("devices_receive", runs["d"], "entries/s", n, **extra)
    emit("single_key_receive_cpu", runs["sc"], "entries/s", n, **extra)
    emit("single_user_key_receive_cpu", runs["uc"], "entries/s", n, **extra)
    emit("devices_receive_cpu", runs["dc"], "entries/s", n, **extra)
    ratios = [d / s for d, s in zip(runs["dc"], runs["sc"], strict=True)]
    emit("devices_ratio", ratios, "x", n, **extra)
    ratios = [d / s for d, s in zip(runs["dc"], runs["uc"], strict=True)]
    emit("devices_ratio_100", ratios, "x", n, **extra)


if __name__ == "__main__":
    trio.run(main)
