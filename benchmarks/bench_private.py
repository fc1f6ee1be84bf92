"""Private databases: what the reader proof costs.

- ``reader_proof``: CPU microseconds for one complete proof between two peers (sans-IO:
  two challenges, two Ed25519 signatures, two verifications, two reader decisions),
  through the frame codec.
- ``sync_public`` / ``sync_private``: seconds for a fresh in-memory node to open a
  database by address and catch up ``n`` entries from its writer (manifest fetch + one
  sync session; in-memory network, no latency), for a public and a private database.
  The difference is the two proofs (manifest and session) and their round trips.

Run: ``.venv/bin/python benchmarks/bench_private.py [--quick]``
"""

from __future__ import annotations

import random
import time

import trio
from _common import emit, machine, parse_args

from orbitstore.core.access import StaticAccess
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.privacy import ReadSpec, reader_role
from orbitstore.node import NodeConfig, open_node
from orbitstore.sync.auth import PeerAuth
from orbitstore.sync.frames import FrameDecoder, Message, encode_frame
from orbitstore.testing.network import MemoryNetwork

ALICE = Identity(b"\x01" * 32)
BOB = Identity(b"\x02" * 32)
SPEC = ReadSpec.of()
DB = Manifest(
    name="p", type="feed", access=StaticAccess.of([ALICE.id, BOB.id]), meta={"read": SPEC.to_meta()}
).cid


def _decide(did: str, delegation: object = None) -> str | None:
    return reader_role(SPEC, did, writers={ALICE.id, BOB.id})


def one_proof() -> None:
    sides = [
        PeerAuth(
            db=DB,
            signer=who,
            local_peer=me,
            remote_peer=other,
            nonce=bytes([n]) * 32,
            initiator=n == 1,
            decide=_decide,  # type: ignore[arg-type]
        )
        for who, me, other, n in ((ALICE, "a", "b", 1), (BOB, "b", "a", 2))
    ]
    outboxes: list[list[Message]] = [sides[0].start(), sides[1].start()]
    while outboxes[0] or outboxes[1]:
        nxt: list[list[Message]] = [[], []]
        for src in (0, 1):
            for message in outboxes[src]:
                (decoded,) = FrameDecoder().feed(encode_frame(message))
                nxt[1 - src] += sides[1 - src].receive(decoded)
        outboxes = nxt
    assert sides[0].done and sides[1].done


def reader_proof(reps: int) -> None:
    runs = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(reps):
            one_proof()
        runs.append((time.process_time() - start) / reps * 1e6)
    emit("reader_proof", runs, "us", reps, **machine())


async def catch_up(n: int, private: bool) -> float:
    net = MemoryNetwork(rng=random.Random(1), latency=(0.0, 0.0))
    config = NodeConfig(timestamps=False)
    async with (
        net.open_transport("alice") as ta,
        net.open_transport("bob") as tb,
        open_node(transport=ta, identity=ALICE, config=config) as alice,
        open_node(transport=tb, identity=BOB, config=config) as bob,
    ):
        feed = await alice.open("f", type="feed", write=[ALICE.id, BOB.id], private=private)
        async with alice.writes.batch():
            for i in range(n):
                await feed.append({"i": i})
        assert bob.replication is not None
        await bob.replication.connect("mem/alice")
        start = time.perf_counter()
        replica = await bob.open(feed.address, type="feed")
        await replica.wait_synced(peer="alice", timeout=120)
        took = time.perf_counter() - start
        assert replica.heads == feed.heads
        return took


async def sync_cost(n: int, reps: int) -> None:
    public, private = [], []
    for _ in range(reps):  # interleaved: the machine's load drifts
        public.append(await catch_up(n, False))
        private.append(await catch_up(n, True))
    emit("sync_public", public, "s", n, **machine())
    emit("sync_private", private, "s", n, **machine())


async def main() -> None:
    args = parse_args(__doc__ or "")
    if args.quick:
        reader_proof(20)
        await sync_cost(100, 1)
    else:
        reader_proof(500)
        await sync_cost(2000, 5)


if __name__ == "__main__":
    trio.run(main)
