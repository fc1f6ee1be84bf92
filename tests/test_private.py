"""Private databases across nodes (in-memory network, trio's virtual clock): members and
named replicas are served after proving their identity in the session; others are
refused — no manifest, no heads, no entries — and the refusal is typed on both sides."""

from __future__ import annotations

import random

import pytest
import trio

from orbitstore.core import encryption as enc
from orbitstore.core.identity import Identity
from orbitstore.errors import AccessDeniedError, NotFoundError, UsageError, WriteNotAllowedError
from orbitstore.node import NodeConfig, open_node
from orbitstore.node.announcer import topic_for
from orbitstore.node.config import ReplicationConfig
from orbitstore.node.keyvalue import KeyValue
from orbitstore.node.node import Node
from orbitstore.sync.auth import prove
from orbitstore.sync.frames import Challenge, Error, FrameDecoder, Hello, Proof, encode_frame
from orbitstore.testing.network import MemoryNetwork
from orbitstore.testing.pairs import open_memory_nodes, open_replica, transport_of

CONFIG = NodeConfig(
    timestamps=False,
    replication=ReplicationConfig(
        manifest_timeout=5.0, idle_timeout=5.0, thread_verify_min_blocks=1_000_000
    ),
)
ALICE, BOB, MALLORY, PIN = (Identity(bytes([i]) * 32) for i in (21, 22, 23, 24))


def network() -> MemoryNetwork:
    return MemoryNetwork(rng=random.Random(5), latency=(0.001, 0.01))


async def test_private_database_serves_members_and_refuses_others(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = network()
    async with open_memory_nodes(
        net, {"alice": ALICE, "bob": BOB, "mallory": MALLORY}, config=CONFIG
    ) as (alice, bob, mallory):
        a = await alice.open("team", type="keyvalue", write=[ALICE.id, BOB.id], private=True)
        assert isinstance(a, KeyValue)
        await a.put("plan", "secret")
        b = await open_replica(bob, a.address, "alice", KeyValue)
        assert b.get("plan") == "secret" and b.heads == a.heads
        # Mallory knows the address but is no member: the manifest is refused.
        assert mallory.replication is not None
        await mallory.replication.connect("mem/alice")
        with pytest.raises(NotFoundError, match="1 refused"):
            await mallory.open(a.address, type="keyvalue")
        # Bob's writes reach Alice without gossip (a private db's heads are never announced).
        entry = await b.put("b", 1)
        with trio.fail_after(10):
            async with alice.replication.subscribe_progress() as events:  # type: ignore[union-attr]
                while not a.log.has(entry.cid):
                    await events.receive()
        assert a.get("b") == 1
        # Nothing was gossiped: no topic, no announcement, on any node.
        for node in (alice, bob):
            assert node.replication is not None
            assert node.replication.statistics().announcements_sent == 0
        for transport in map(transport_of, (alice, bob)):
            assert topic_for(a.cid) not in transport._topics  # never subscribed


async def test_a_hello_for_a_private_database_gets_no_heads(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = network()
    async with (
        net.open_transport("alice") as ta,
        net.open_transport("mallory") as tm,
        open_node(transport=ta, identity=ALICE, config=CONFIG) as alice,
    ):
        a = await alice.open("team", type="keyvalue", private=True)
        await a.put("k", "v")  # type: ignore[attr-defined]
        await tm.connect("mem/alice")
        for opening in ("hello", "challenge"):
            stream = await tm.open_stream("alice")
            decoder = FrameDecoder()
            if opening == "hello":
                await stream.send_all(encode_frame(Hello(db=a.cid)))
            else:
                await stream.send_all(encode_frame(Challenge(db=a.cid, nonce=b"\x01" * 32)))
            received = []
            with trio.fail_after(10):
                while not any(isinstance(m, Error) for m in received):
                    data = await stream.receive_some(65536)
                    assert data, received
                    received += decoder.feed(data)
                    for message in received:
                        if isinstance(message, Challenge):  # prove as Mallory: refused
                            proof = prove(
                                MALLORY,
                                db=a.cid,
                                prover_peer="mallory",
                                verifier_peer="alice",
                                challenge=message.nonce,
                                nonce=b"\x02" * 32,
                            )
                            await stream.send_all(encode_frame(proof))
            assert not any(isinstance(m, (Hello, Proof)) for m in received)  # no heads, no id
            error = next(m for m in received if isinstance(m, Error))
            assert error.code == AccessDeniedError.code
            await stream.close()


async def test_named_replica_serves_a_member_while_the_writer_is_offline(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = network()
    async with open_memory_nodes(net, {"pin": PIN, "bob": BOB}, config=CONFIG) as (pin, bob):
        async with open_memory_nodes(net, {"alice": ALICE}, config=CONFIG) as (alice,):
            a = await alice.open(
                "team",
                type="keyvalue",
                access="capabilities",
                private=True,
                replicas=[PIN.id],
            )
            assert isinstance(a, KeyValue)
            await a.grant(BOB.id)
            await a.put("k", "from alice")
            r = await open_replica(pin, a.address, "alice", KeyValue)
            assert r.heads == a.heads and r.get("k") == "from alice"
            with pytest.raises(WriteNotAllowedError):
                await r.put("x", "a replica does not write")
            address = a.address
        # Alice is gone: Bob gets manifest and data from the replica alone.
        b = await open_replica(bob, address, "pin", KeyValue)
        assert b.get("k") == "from alice" and b.heads == r.heads


async def refused_on_next_sync(node: Node, db: KeyValue, peer: str) -> None:
    """Ask ``node`` to sync ``db`` with ``peer`` and wait (on progress events, 10 s at
    most) for the session to fail with an access refusal."""
    assert node.replication is not None
    async with node.replication.subscribe_progress() as events:
        node.replication.request_sync(db, peer)
        with trio.fail_after(10):
            while True:
                event = await events.receive()
                if getattr(event, "kind", None) == "failed":
                    break
    failure = getattr(event, "failure", None)
    assert failure is not None and failure.code == AccessDeniedError.code


async def test_a_revoked_member_is_refused(autojump_clock: trio.abc.Clock) -> None:
    net = network()
    async with open_memory_nodes(net, {"alice": ALICE, "bob": BOB}, config=CONFIG) as (alice, bob):
        a = await alice.open("team", type="keyvalue", access="capabilities", private=True)
        assert isinstance(a, KeyValue)
        await a.grant(BOB.id)
        b = await open_replica(bob, a.address, "alice", KeyValue)
        await a.revoke(BOB.id)
        await a.put("after", "not for bob")
        await refused_on_next_sync(bob, b, "alice")
        assert b.get("after") is None


async def test_private_options_are_checked() -> None:
    async with open_node(identity=ALICE, config=CONFIG) as node:
        with pytest.raises(UsageError, match="anyone"):
            await node.open("open", type="keyvalue", write=["*"], private=True)
        with pytest.raises(UsageError, match="meta"):
            await node.open("m", type="keyvalue", meta={"read": {}})
        with pytest.raises(UsageError, match="replicas"):
            await node.open("r", type="keyvalue", replicas=[BOB.id])
        with pytest.raises(UsageError, match="did:key"):
            await node.open("r", type="keyvalue", private=True, replicas=["nope"])
        await node.open("pub", type="keyvalue")
        with pytest.raises(UsageError, match="not private"):
            await node.open("pub", type="keyvalue", private=True)


async def test_an_encrypted_private_database_on_a_blind_named_replica(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = network()
    async with open_memory_nodes(net, {"alice": ALICE, "pin": PIN, "bob": BOB}, config=CONFIG) as (
        alice,
        pin,
        bob,
    ):
        a = await alice.open(
            "vault",
            type="keyvalue",
            write=[ALICE.id, BOB.id],
            encrypted=True,
            private=True,
            replicas=[PIN.id],
        )
        assert isinstance(a, KeyValue)
        await a.announce_key(enc.announcement(BOB, a.cid))
        await a.set_readers([BOB.id])
        await a.put("k", "sealed secret")
        r = await open_replica(pin, a.address, "alice", KeyValue)
        assert r.heads == a.heads and list(r.items()) == [] and not r.is_reader
        assert not any(b"sealed secret" in block for _, block in r.log.iter_blocks())
        b = await open_replica(bob, a.address, "pin", KeyValue)  # Bob talks to the replica only
        assert "alice" not in transport_of(bob).connected_peers()
        assert b.get("k") == "sealed secret"


async def team_granted_to_a_user(alice: Node, laptop: Node, phone: Node) -> KeyValue:
    """The laptop's node makes a user (it is the user's first device) and links the
    phone; Alice's private capabilities database grants the user ``write``."""
    user = laptop.create_user()
    phone.accept_delegation(laptop.delegate_device(phone.id).to_text())
    a = await alice.open("team", type="keyvalue", access="capabilities", private=True)
    assert isinstance(a, KeyValue)
    await a.grant(user)
    return a


async def test_a_linked_device_of_a_member_is_served(autojump_clock: trio.abc.Clock) -> None:
    """Membership is the user's (docs/identity.md): each linked device of a granted user
    is a reader, whether or not its link op has reached the serving node yet."""
    net = network()
    laptop_id, phone_id = Identity(b"\x31" * 32), Identity(b"\x32" * 32)
    nodes = {"alice": ALICE, "laptop": laptop_id, "phone": phone_id}
    async with open_memory_nodes(net, nodes, config=CONFIG) as (alice, laptop, phone):
        a = await team_granted_to_a_user(alice, laptop, phone)
        await a.put("plan", "secret")
        # The phone never wrote: its link op is nowhere yet, its proof carries it.
        p = await open_replica(phone, a.address, "alice", KeyValue)
        assert p.get("plan") == "secret"
        await p.put("from", "phone")  # posts the link op, then the write
        # The laptop is served once the link ops are known too.
        lap = await open_replica(laptop, a.address, "alice", KeyValue)
        assert lap.get("plan") == "secret"
        assert alice.open_databases()[0].is_member(phone_id.id)


async def test_an_unlinked_device_is_refused_though_it_shows_its_delegation(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = network()
    laptop_id, phone_id = Identity(b"\x33" * 32), Identity(b"\x34" * 32)
    nodes = {"alice": ALICE, "laptop": laptop_id, "phone": phone_id}
    async with open_memory_nodes(net, nodes, config=CONFIG) as (alice, laptop, phone):
        a = await team_granted_to_a_user(alice, laptop, phone)
        # The user's root unlinks the phone (it was lost); anyone admitted posts it.
        await a.unlink_device(laptop.device.unlink_statement(phone_id.id))
        assert phone.replication is not None
        await phone.replication.connect("mem/alice")
        with pytest.raises(NotFoundError, match="1 refused"):
            await phone.open(a.address, type="keyvalue")


async def test_the_replica_right_admits_a_blind_replica_until_revoked(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = network()
    async with open_memory_nodes(net, {"alice": ALICE, "pin": PIN}, config=CONFIG) as (alice, pin):
        a = await alice.open(
            "team", type="keyvalue", access="capabilities", private=True, encrypted=True
        )
        assert isinstance(a, KeyValue)
        await a.grant(PIN.id, "replica")
        await a.put("k", "sealed")
        r = await open_replica(pin, a.address, "alice", KeyValue)
        assert r.heads == a.heads and len(r) == len(a)
        assert r.get("k") is None  # it holds ciphertext only: no key epoch for a replica
        with pytest.raises(WriteNotAllowedError):
            await r.put("x", "a replica does not write")
        with pytest.raises(UsageError, match="not scoped"):
            await a.grant(PIN.id, "replica", scope="k")
        await a.revoke(PIN.id, "replica")
        await a.put("after", "not for the replica")
        await refused_on_next_sync(pin, r, "alice")
        assert not any(r.log.has(h) for h in a.heads)
