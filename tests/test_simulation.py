"""Many peers on the in-memory network, under trio's virtual clock (deterministic)."""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from orbitstore.core.cid import Cid
from orbitstore.core.identity import Identity
from orbitstore.node import NodeConfig, open_node
from orbitstore.node.config import ReplicationConfig
from orbitstore.node.counter import Counter
from orbitstore.node.database import Database
from orbitstore.storage.memory import MemoryStore
from orbitstore.sync.frames import Entries, FrameLimits, Hello, encode_frame, encode_varint
from orbitstore.testing.network import MemoryNetwork, MemoryTransport

_NIGHTLY = os.environ.get("HYPOTHESIS_PROFILE") == "nightly"
SEEDS = int(os.environ.get("ORBITSTORE_SIM_SEEDS", "300" if _NIGHTLY else "24"))
CONFIG = NodeConfig(
    timestamps=False,
    replication=ReplicationConfig(
        anti_entropy_interval=10.0,
        reconnect_interval=1.0,
        idle_timeout=5.0,
        # Verify inline: the virtual clock would jump ahead while a worker thread runs.
        thread_verify_min_blocks=1_000_000,
    ),
)


@dataclass
class Peer:
    name: str
    identity: Identity
    store: MemoryStore = field(default_factory=MemoryStore)
    dbs: list[Database] = field(default_factory=list)
    scope: trio.CancelScope | None = None
    up: bool = False


async def run_peer(
    peer: Peer,
    net: MemoryNetwork,
    addresses: list[str],
    everyone: list[str],
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    with trio.CancelScope() as scope:
        peer.scope = scope
        async with (
            net.open_transport(peer.name) as transport,
            open_node(
                store=peer.store, identity=peer.identity, transport=transport, config=CONFIG
            ) as node,
        ):
            assert node.replication is not None
            peer.dbs = [
                await node.open(addresses[0]),
                await node.open(addresses[1], type="counter"),
            ]
            peer.up = True
            task_status.started()
            for other in everyone:
                if other != peer.name:
                    with contextlib.suppress(Exception):
                        await node.replication.connect("mem/" + other)
            await trio.sleep_forever()
    peer.up = False


def seed_stores(peers: list[Peer]) -> list[str]:
    """Create the two shared databases and put their manifests in every store: peers here
    open their databases before they connect, so there is nobody to fetch them from
    (tests/test_open_by_address.py covers fetching)."""
    from orbitstore.core.access import StaticAccess
    from orbitstore.core.manifest import Manifest, format_address

    out = []
    for name, type_ in (("chat", "log"), ("hits", "counter")):
        manifest = Manifest(name=name, type=type_, access=StaticAccess.of(["*"]), meta={})
        cid, block = manifest.to_block()
        for p in peers:
            p.store.blocks.put(cid, block)
        out.append(format_address(cid))
    return out


async def simulate(seed: int, n_peers: int = 10, steps: int = 25) -> None:
    rng = random.Random(seed)
    net = MemoryNetwork(rng=rng, latency=(0.001, 0.05), gossip_loss=0.2)
    peers = [Peer(f"p{i}", Identity(bytes([i + 1]) * 32)) for i in range(n_peers)]
    addresses = seed_stores(peers)
    names = [p.name for p in peers]
    expected_total = 0
    async with trio.open_nursery() as nursery:
        for p in peers:
            await nursery.start(run_peer, p, net, addresses, names)
        for _ in range(steps):
            action = rng.random()
            p = rng.choice(peers)
            if action < 0.6 and p.up:
                log, counter = p.dbs
                await log.append(rng.randrange(1000))
                assert isinstance(counter, Counter)
                by = rng.randrange(-5, 10)
                await counter.increment(by)
                expected_total += by
            elif action < 0.7:
                shuffled = names[:]
                rng.shuffle(shuffled)
                cut = rng.randrange(1, n_peers)
                net.partition(shuffled[:cut], shuffled[cut:])
            elif action < 0.8:
                net.heal()
            elif action < 0.9 and p.up:
                assert p.scope is not None
                net.crash(p.name)
                p.scope.cancel()
                p.up = False
            elif not p.up:
                await nursery.start(run_peer, p, net, addresses, names)
            await trio.sleep(rng.uniform(0, 2))
        net.heal()
        for p in peers:
            if not p.up:
                await nursery.start(run_peer, p, net, addresses, names)
        # Convergence: anti-entropy and reconnects must bring everyone together.
        with trio.fail_after(120):
            while True:
                heads = {frozenset(p.dbs[0].heads) for p in peers} | {
                    frozenset(p.dbs[1].heads) for p in peers
                }
                if (
                    len({frozenset(p.dbs[0].heads) for p in peers}) == 1
                    and len({frozenset(p.dbs[1].heads) for p in peers}) == 1
                ):
                    break
                assert heads
                await trio.sleep(1)
        for p in peers:
            await p.dbs[0].wait_synced(timeout=60)
        values = {p.dbs[1].value for p in peers if isinstance(p.dbs[1], Counter)}
        assert values == {expected_total}
        entries = {tuple(e.cid for e in p.dbs[0].entries()) for p in peers}
        assert len(entries) == 1
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("seed", range(SEEDS))
async def test_ten_peers_converge(seed: int, autojump_clock: trio.abc.Clock) -> None:
    await simulate(seed)


# --- hostile peers --------------------------------------------------------------------

GUARDED = NodeConfig(
    timestamps=False,
    replication=ReplicationConfig(
        idle_timeout=5.0,
        session_timeout=30.0,
        thread_verify_min_blocks=1_000_000,  # see CONFIG
        frame_limits=FrameLimits(max_total_bytes=256 * 1024, max_frame_bytes=64 * 1024),
    ),
)


async def _hostile_stream(transport: MemoryTransport, victim: str, payload: bytes) -> None:
    stream = await transport.open_stream(victim)
    try:
        await stream.send_all(payload)
        with trio.move_on_after(10):
            while await stream.receive_some():
                pass
    except Exception:
        pass


async def test_hostile_peer_is_cut_off(autojump_clock: trio.abc.Clock) -> None:
    from orbitstore.core.access import StaticAccess
    from orbitstore.core.entry import Entry
    from orbitstore.core.manifest import Manifest

    net = MemoryNetwork(rng=random.Random(3), latency=(0.001, 0.01))
    honest, victim = Identity(b"\x01" * 32), Identity(b"\x02" * 32)
    evil = Identity(b"\x03" * 32)
    manifest = Manifest(name="m", type="log", access=StaticAccess.of(["*"]), meta={})
    db, block = manifest.to_block()
    other_db, _ = Manifest(name="o", type="log", access=StaticAccess.of(["*"]), meta={}).to_block()
    stores = [MemoryStore(), MemoryStore()]
    for s in stores:
        s.blocks.put(db, block)
    good = Entry.create(evil, db=db, clock=1, next=[], payload="fine")
    forged_block = bytearray(Entry.create(evil, db=db, clock=1, next=[], payload="x").block)
    forged_block[-5] ^= 1  # breaks the signature
    forged_cid = Cid.for_block(bytes(forged_block))
    foreign = Entry.create(evil, db=other_db, clock=1, next=[], payload="elsewhere")

    def frames(*blocks: tuple[Cid, bytes]) -> bytes:
        return encode_frame(Hello(db=db)) + encode_frame(Entries(blocks=blocks))

    async with (
        net.open_transport("honest") as th,
        net.open_transport("victim") as tv,
        net.open_transport("evil") as te,
        open_node(store=stores[0], identity=honest, transport=th, config=CONFIG) as nh,
        open_node(store=stores[1], identity=victim, transport=tv, config=GUARDED) as nv,
    ):
        h = await nh.open(f"/orbitstore/{db}")
        v = await nv.open(f"/orbitstore/{db}")
        await te.connect("mem/victim")
        te.set_stream_handler(lambda s: trio.lowlevel.checkpoint())
        for payload in (
            b"\xff" * 64,  # garbage
            encode_varint(100 * 1024 * 1024),  # a huge frame
            frames((forged_cid, bytes(forged_block))),  # forged signature
            frames((foreign.cid, foreign.block)),  # another database
            frames((good.cid, good.block), (forged_cid, bytes(forged_block))),  # mixed frame
            encode_frame(Hello(db=other_db)),  # a database the victim does not have
        ):
            await _hostile_stream(te, "victim", payload)
        assert len(v) == 0
        assert not v.log.has(good.cid)  # the mixed frame was refused whole
        # Endless stream: entries frames forever until the budget or the timeout cuts it.
        stream = await te.open_stream("victim")
        try:
            await stream.send_all(encode_frame(Hello(db=db)))
            with trio.move_on_after(60):
                while True:
                    await stream.send_all(encode_frame(Entries(blocks=((good.cid, good.block),))))
        except Exception:
            pass
        assert len(v) <= 1  # at most the one valid entry of the evil writer
        assert not v.log.has(forged_cid) and not v.log.has(foreign.cid)
        status = nv.replication.statistics() if nv.replication else None
        assert status is not None
        evil_status = [p for d in status.databases for p in d.peers if p.peer == "evil"]
        assert evil_status and evil_status[0].failures >= 4
        assert evil_status[0].last_error is not None
        # Honest peers keep syncing.
        await h.append_many(range(100))
        assert nh.replication is not None
        await nh.replication.connect("mem/victim")
        with trio.fail_after(60):
            while len(v) < 100:
                await trio.sleep(0.5)
        assert v.heads == h.heads
