"""An admin's revocation rotates the key of an encrypted capabilities database, as the
owner's does; an epoch made by an admin concurrently with its removal is retracted and
no longer current anywhere (in-memory network, trio's virtual clock)."""

from __future__ import annotations

import random

import trio

from orbitstore.core import encryption as enc
from orbitstore.core.identity import Identity
from orbitstore.node import NodeConfig, open_node
from orbitstore.node.config import ReplicationConfig
from orbitstore.node.keyvalue import KeyValue
from orbitstore.node.node import Node
from orbitstore.testing.network import MemoryNetwork
from orbitstore.testing.pairs import open_memory_nodes, open_replica, wait_for_entry

CONFIG = NodeConfig(
    timestamps=False,
    replication=ReplicationConfig(
        manifest_timeout=5.0, idle_timeout=5.0, thread_verify_min_blocks=1_000_000
    ),
)
ALICE, BOB, CAROL = (Identity(bytes([i]) * 32) for i in (51, 52, 53))


async def setup(alice: Node) -> KeyValue:
    a = await alice.open("notes", type="keyvalue", access="capabilities", encrypted=True)
    assert isinstance(a, KeyValue)
    await a.grant(BOB.id, "write")
    await a.grant(CAROL.id, "admin")
    await a.announce_key(enc.announcement(BOB, a.cid))
    await a.announce_key(enc.announcement(CAROL, a.cid))
    await a.set_readers([BOB.id, CAROL.id])
    await a.put("before", 1)
    return a


async def test_an_admins_revocation_rotates_the_key(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(rng=random.Random(3), latency=(0.001, 0.01))
    async with open_memory_nodes(
        net, {"alice": ALICE, "bob": BOB, "carol": CAROL}, config=CONFIG
    ) as (alice, bob, carol):
        a = await setup(alice)
        c = await open_replica(carol, a.address, "alice", KeyValue)
        b = await open_replica(bob, a.address, "alice", KeyValue)
        assert b.is_reader and c.is_reader and b.get("before") == 1
        await c.revoke(BOB.id, "write")  # Carol is an admin, not the owner
        assert c.readers == {ALICE.id, CAROL.id}
        epoch = c.log.get(next(iter(c.heads)))
        assert epoch is not None and enc.classify(epoch.payload) == enc.EPOCH
        await wait_for_entry(alice, a, epoch, timeout=30)
        assert a.readers == {ALICE.id, CAROL.id}  # Carol's epoch is current for Alice too
        after = await a.put("after", 2)  # sealed under Carol's key
        await wait_for_entry(bob, b, after, timeout=30)
        assert a.get("after") == 2
        await wait_for_entry(carol, c, a.log.get(next(iter(a.heads))), timeout=30)
        assert c.get("after") == 2
        assert not b.is_reader and b.get("after") is None and b.get("before") == 1


async def test_a_removed_admins_concurrent_epoch_is_not_current(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = MemoryNetwork(rng=random.Random(4), latency=(0.001, 0.01))
    async with open_memory_nodes(net, {"alice": ALICE, "carol": CAROL}, config=CONFIG) as (
        alice,
        carol,
    ):
        a = await setup(alice)
        c = await open_replica(carol, a.address, "alice", KeyValue)
        net.partition(["alice"], ["carol"])
        await a.revoke(CAROL.id, "admin")  # the owner removes Carol (and rotates her out)
        assert a.readers == {ALICE.id, BOB.id}
        for i in range(5):  # on old parents, Carol's clock runs ahead
            await c.put(f"c{i}", i)
        carols = await c.set_readers([CAROL.id])  # an epoch only Carol (and Alice) read
        assert c.readers == {ALICE.id, CAROL.id}
        net.heal()
        await wait_for_entry(alice, a, carols, timeout=30)
        # Carol's epoch sorts after Alice's, but it is retracted: Alice's stays current.
        assert carols.order_key > max(
            e.order_key
            for e in a.log.traverse()
            if enc.classify(e.payload) == enc.EPOCH and e.writer == ALICE.id
        )
        assert a.readers == {ALICE.id, BOB.id}
        await a.put("after", 1)
        entry = a.log.get(next(iter(a.heads)))
        assert entry is not None
        await wait_for_entry(carol, c, entry, timeout=30)
        assert c.get("after") is None  # sealed under a key Carol does not hold
        # On Carol's node too, once the removal arrived, her own epoch is retracted.
        assert c.readers == {ALICE.id, BOB.id} and not c.is_reader


async def test_an_admins_epoch_survives_a_restart(tmp_path: object) -> None:
    """On disk, the stored key state keeps an admin's epoch (re-checked against the log)."""
    net = MemoryNetwork(rng=random.Random(5), latency=(0.0, 0.0))
    home = str(tmp_path)
    async with open_memory_nodes(net, {"alice": ALICE}, config=CONFIG) as (alice,):
        a = await setup(alice)
        async with (
            net.open_transport("carol") as tc,
            open_node(home, transport=tc, identity=CAROL, config=CONFIG) as carol,
        ):
            c = await open_replica(carol, a.address, "alice", KeyValue)
            await c.revoke(BOB.id, "write")
            readers = set(c.readers)
            assert readers == {ALICE.id, CAROL.id}
            await c.put("mine", 1)
        async with (
            net.open_transport("carol") as tc,
            open_node(home, transport=tc, identity=CAROL, config=CONFIG) as carol,
        ):
            db = await carol.open(a.address, type="keyvalue")
            assert isinstance(db, KeyValue)
            assert set(db.readers) == readers and db.is_reader and db.get("mine") == 1
