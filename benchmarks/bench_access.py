"""Capabilities access: what deciding rights in each entry's causal past costs.

- ``access_check``: entries/s received by a fresh SQLite node into a keyvalue database
  whose log holds ``acl`` grants and revocations (capabilities access), and the same
  writes into a static-access database (``access_static``). The ACL history is received
  first (untimed); then ``n`` writes by one granted writer, in frames of 1000.
- ``revoke_retract``: seconds to receive one revocation that retracts ``n`` entries
  concurrent with it (the view is rebuilt from the visible entries).

Run: ``.venv/bin/python benchmarks/bench_access.py [--quick]``
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import trio
from _common import emit, machine, parse_args

import orbitstore
from orbitstore.core.access import StaticAccess
from orbitstore.core.capabilities import AclOp
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest

OWNER = Identity(b"\x01" * 32)
WRITER = Identity(b"\x02" * 32)
FRAME = 1000


def chain(who: Identity, db: Cid, payloads: list[Any], parent: Entry | None) -> list[Entry]:
    out: list[Entry] = []
    for payload in payloads:
        entry = Entry.create(
            who,
            db=db,
            clock=1 if parent is None else parent.clock + 1,
            next=[] if parent is None else [parent.cid],
            payload=payload,
        )
        out.append(entry)
        parent = entry
    return out


def acl_history(db: Cid, count: int) -> list[Entry]:
    """``count`` ACL ops by the owner: members granted and some revoked; WRITER granted."""
    ops: list[Any] = []
    for i in range(count - 1):
        member = Identity(i.to_bytes(4, "big") + b"\x07" * 28).id
        kind = "revoke" if i % 3 == 2 else "grant"
        ops.append(AclOp(op=kind, to=member, right="write", scope=None).to_payload())
    ops.append(AclOp(op="grant", to=WRITER.id, right="write", scope=None).to_payload())
    return chain(OWNER, db, ops, None)


def writes(db: Cid, n: int, parent: Entry | None) -> list[Entry]:
    return chain(
        WRITER, db, [{"op": "put", "key": f"k{i % 500}", "value": i} for i in range(n)], parent
    )


async def receive_timed(manifest: Manifest, untimed: list[Entry], timed: list[Entry]) -> float:
    cid, block = manifest.to_block()
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(home, identity=OWNER) as node:
            node.store.blocks.put(cid, block)
            db = await node.open(manifest.address, type="keyvalue")
            for lo in range(0, len(untimed), FRAME):
                await db.receive([(e.cid, e.block) for e in untimed[lo : lo + FRAME]])
            start = time.perf_counter()
            for lo in range(0, len(timed), FRAME):
                result = await db.receive([(e.cid, e.block) for e in timed[lo : lo + FRAME]])
                assert not result.rejected, result.rejected[0]
            return time.perf_counter() - start


async def access_check(n: int, acl: int, reps: int) -> None:
    caps = Manifest(name="b", type="keyvalue", access=_caps_access(), meta={})
    static = Manifest(name="b", type="keyvalue", access=StaticAccess.of(["*"]), meta={})
    history = acl_history(caps.cid, acl)
    caps_writes = writes(caps.cid, n, history[-1])
    static_writes = writes(static.cid, n, None)
    runs_caps, runs_static = [], []
    for _ in range(reps):  # interleaved: the machine's load drifts
        runs_static.append(n / await receive_timed(static, [], static_writes))
        runs_caps.append(n / await receive_timed(caps, history, caps_writes))
    emit("access_static", runs_static, "entries/s", n, **machine())
    emit("access_check", runs_caps, "entries/s", n, acl_ops=acl, **machine())


async def revoke_retract(n: int, reps: int) -> None:
    manifest = Manifest(name="r", type="keyvalue", access=_caps_access(), meta={})
    grant = chain(
        OWNER, manifest.cid, [AclOp(op="grant", to=WRITER.id, right="write").to_payload()], None
    )
    entries = writes(manifest.cid, n, grant[0])
    revoke = chain(
        OWNER,
        manifest.cid,
        [AclOp(op="revoke", to=WRITER.id, right="write").to_payload()],
        grant[0],
    )
    runs = []
    for _ in range(reps):
        runs.append(await receive_timed(manifest, grant + entries, revoke))
    emit("revoke_retract", runs, "s", n, **machine())


def _caps_access() -> Any:
    from orbitstore.core.access import CapabilitiesAccess

    return CapabilitiesAccess.of(OWNER.id)


async def main() -> None:
    args = parse_args(__doc__ or "")
    if args.quick:
        await access_check(500, 100, 1)
        await revoke_retract(500, 1)
    else:
        await access_check(5000, 1000, 2)
        await revoke_retract(10_000, 2)


if __name__ == "__main__":
    trio.run(main)
