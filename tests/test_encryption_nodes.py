"""Encrypted databases across nodes: members read and write, a blind replica stores and
serves what it cannot read, a revoked member cannot read later entries (in-memory
network, trio's virtual clock)."""

from __future__ import annotations

import random
from contextlib import AbstractAsyncContextManager

import pytest
import trio

from orbitstore.core import encryption as enc
from orbitstore.core.identity import Identity
from orbitstore.errors import (
    DecryptionError,
    NotAMemberError,
    UsageError,
    WriteNotAllowedError,
)
from orbitstore.node import NodeConfig, open_node
from orbitstore.node.config import ReplicationConfig
from orbitstore.node.keyvalue import KeyValue
from orbitstore.testing.network import MemoryNetwork
from orbitstore.testing.pairs import (
    NodePair,
    open_memory_nodes,
    open_memory_pair,
    open_replica,
    transport_of,
    wait_for_entry,
)

CONFIG = NodeConfig(
    timestamps=False,
    replication=ReplicationConfig(
        manifest_timeout=5.0, idle_timeout=5.0, thread_verify_min_blocks=1_000_000
    ),
)
ALICE, BOB, CAROL, RELAY = (Identity(bytes([i]) * 32) for i in (1, 2, 3, 4))
WRITERS = [ALICE.id, BOB.id, CAROL.id]


def alice_and_bob(net: MemoryNetwork) -> AbstractAsyncContextManager[NodePair]:
    """Alice's and Bob's nodes on ``net``, not connected yet."""
    return open_memory_pair(
        network=net, names=("alice", "bob"), identities=(ALICE, BOB), config=CONFIG
    )


def network() -> MemoryNetwork:
    return MemoryNetwork(rng=random.Random(11), latency=(0.001, 0.01))


async def sync(db: KeyValue, peer: str) -> None:
    await db.wait_synced(peer=peer, timeout=10)


async def test_two_members_read_and_write_on_two_nodes(autojump_clock: trio.abc.Clock) -> None:
    net = network()
    async with alice_and_bob(net) as pair:
        alice, bob = pair.nodes
        a = await alice.open("notes", type="keyvalue", write=WRITERS, encrypted=True)
        assert isinstance(a, KeyValue) and a.encrypted and a.readers == {ALICE.id}
        await a.put("a1", "from alice")
        b = await open_replica(bob, a.address, "alice", KeyValue)
        assert b.encrypted and not b.is_reader
        assert b.get("a1") is None  # not a member yet: nothing to read
        with pytest.raises(NotAMemberError):
            await b.put("b0", "too early")
        await wait_for_entry(alice, a, await b.announce_key())
        await wait_for_entry(bob, b, await a.set_readers([ALICE.id, BOB.id]))
        assert b.is_reader and b.get("a1") == "from alice"  # history folded once keyed
        await wait_for_entry(alice, a, await b.put("b1", {"from": "bob"}))
        await wait_for_entry(bob, b, await a.put("a2", [1, 2]))
        for db in (a, b):
            assert dict(db.items()) == {"a1": "from alice", "a2": [1, 2], "b1": {"from": "bob"}}
        # What is stored and sent is sealed: no plaintext in any block.
        for _, block in a.log.iter_blocks():
            assert b"from alice" not in block and b'bob"' not in block
        entry = next(e for e in b.log.traverse() if enc.classify(e.payload) == enc.SEALED)
        assert "from alice" in str(b.open_entry(entry))
        assert any("from alice" in str(e.payload) for e in b.entries())  # opened for members


async def test_reopen_learns_the_keys_again(tmp_path: object) -> None:
    path = str(tmp_path)
    async with open_node(path, identity=ALICE, config=CONFIG) as node:
        db = await node.open("kv", type="keyvalue", encrypted=True)
        assert isinstance(db, KeyValue)
        await db.put("k", "v")
    async with open_node(path, identity=ALICE, config=CONFIG) as node:
        db = await node.open("kv", type="keyvalue")
        assert isinstance(db, KeyValue)
        assert db.get("k") == "v" and db.is_reader
        before = db.heads
        await db.put("k2", "v2")
        sql = "SELECT key, value FROM kv ORDER BY key"
        assert list(node.query(sql).rows) == [("k", "v"), ("k2", "v2")]
        past = node.query(sql, as_of={"kv": sorted(str(h) for h in before)})
        assert list(past.rows) == [("k", "v")]  # AS OF folds opened payloads too
        await db.aclose()
        assert node.check().problems == ()  # no false view mismatch on sealed payloads
    async with open_node(path, identity=ALICE, config=CONFIG) as node:
        assert node.check(repair=True).ok
        db = await node.open("kv", type="keyvalue")
        assert isinstance(db, KeyValue)
        assert dict(db.items()) == {"k": "v", "k2": "v2"}


async def test_blind_replica_stores_and_serves_but_cannot_read(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = network()
    async with open_memory_nodes(
        net, {"alice": ALICE, "relay": RELAY, "carol": CAROL}, config=CONFIG
    ) as (alice, relay, carol):
        a = await alice.open("notes", type="keyvalue", write=WRITERS, encrypted=True)
        assert isinstance(a, KeyValue)
        # Carol hands her self-signed announcement to Alice out of band; Alice posts it.
        await a.announce_key(enc.announcement(CAROL, a.cid))
        await a.set_readers([ALICE.id, CAROL.id])
        for i in range(5):
            await a.put(f"k{i}", f"secret {i}")
        r = await open_replica(relay, a.address, "alice", KeyValue)
        assert len(r) == len(a) and r.heads == a.heads  # stored everything, verified
        assert list(r.items()) == [] and not r.is_reader  # reads nothing
        assert not any("secret" in str(e.payload) for e in r.entries())
        stats = r.statistics().encryption
        assert stats.unreadable == 5 and stats.readers == (ALICE.id, CAROL.id)
        sealed = next(e for e in r.log.traverse() if enc.classify(e.payload) == enc.SEALED)
        with pytest.raises(NotAMemberError):
            r.open_entry(sealed)
        with pytest.raises(WriteNotAllowedError):  # a relay, not a writer
            await r.put("x", "y")
        # Carol never talks to Alice: she fetches from the blind replica only.
        c = await open_replica(carol, a.address, "relay", KeyValue)
        assert "alice" not in str(transport_of(carol).connected_peers())
        assert dict(c.items()) == {f"k{i}": f"secret {i}" for i in range(5)}


async def test_a_revoked_member_cannot_read_later_entries(autojump_clock: trio.abc.Clock) -> None:
    net = network()
    async with alice_and_bob(net) as pair:
        alice, bob = pair.nodes
        a = await alice.open("notes", type="keyvalue", write=WRITERS, encrypted=True)
        assert isinstance(a, KeyValue)
        await a.announce_key(enc.announcement(BOB, a.cid))
        await a.set_readers([ALICE.id, BOB.id])
        await a.put("before", 1)
        b = await open_replica(bob, a.address, "alice", KeyValue)
        assert b.get("before") == 1
        with pytest.raises(UsageError):  # only the owner rotates
            await b.set_readers([BOB.id])
        await a.set_readers([])  # revoke Bob: a new epoch without him (the owner stays)
        await a.put("after", 2)
        await wait_for_entry(bob, b, await a.put("before", 3))
        assert b.readers == {ALICE.id} and not b.is_reader
        assert b.get("after") is None and b.get("before") == 1  # old data, not new
        later = [e for e in b.log.traverse() if enc.classify(e.payload) == enc.SEALED][-2:]
        for entry in later:
            with pytest.raises(NotAMemberError):
                b.open_entry(entry)
        with pytest.raises(NotAMemberError):
            await b.put("after", "bob writes under an old key")
        assert a.get("after") == 2 and a.get("before") == 3


async def test_tampered_entries_never_reach_the_view() -> None:
    async with open_node(identity=ALICE, config=CONFIG) as node:
        db = await node.open("kv", type="keyvalue", encrypted=True)
        assert isinstance(db, KeyValue)
        entry = (await db.append_many([{"op": "put", "key": "k", "value": 1}]))[0]
        sealed = enc.parse_sealed(entry.payload[enc.SEALED])
        flipped = bytearray(sealed.ciphertext)
        flipped[0] ^= 1
        forged = entry.with_payload(
            {enc.SEALED: {"c": bytes(flipped), "e": sealed.epoch, "n": sealed.nonce}}
        )
        with pytest.raises(DecryptionError):
            db.open_entry(forged)
        keys = db._keys
        assert keys is not None
        assert keys.readable([forged]) == []
        assert db.statistics().encryption.invalid == 1


class Boom(Exception):
    pass


async def test_a_rolled_back_rotation_is_forgotten() -> None:
    async with open_node(identity=ALICE, config=CONFIG) as node:
        db = await node.open("kv", type="keyvalue", write=WRITERS, encrypted=True)
        assert isinstance(db, KeyValue)
        await db.announce_key(enc.announcement(BOB, db.cid))
        with pytest.raises(Boom):
            async with db.batch():
                await db.set_readers([ALICE.id, BOB.id])
                raise Boom
        assert db.statistics().encryption.epochs == 1 and db.readers == {ALICE.id}
        entry = await db.put("k", 1)  # sealed under the epoch that is in the log
        assert db.get("k") == 1
        sealed = enc.parse_sealed(entry.payload[enc.SEALED])
        assert db.log.has(sealed.epoch)


async def test_an_epoch_whose_key_does_not_open_is_not_made_current() -> None:
    async with open_node(identity=ALICE, config=CONFIG) as node:
        db = await node.open("kv", type="keyvalue", encrypted=True)
        assert isinstance(db, KeyValue)
        broken = enc.epoch_payload({ALICE.id: bytes(80)}, None)
        await db._writer.append([broken], None)  # as a buggy or forged owner device would
        assert db.statistics().encryption.invalid == 1
        assert db.is_reader
        await db.put("k", 1)  # still writable under the last epoch that opens
        assert db.get("k") == 1


async def test_encryption_is_chosen_at_creation_only() -> None:
    async with open_node(identity=ALICE, config=CONFIG) as node:
        await node.open("clear", type="keyvalue")
        with pytest.raises(UsageError):
            await node.open("clear", type="keyvalue", encrypted=True)
        with pytest.raises(UsageError):
            await node.open("x", type="keyvalue", meta={"encryption": {}})
        db = await node.open("sealed", type="keyvalue", encrypted=True)
        again = await node.open("sealed", type="keyvalue")  # read from the manifest
        assert again is db and db.encrypted
        clear = await node.open("clear", type="keyvalue")
        assert not clear.encrypted
        with pytest.raises(UsageError):
            await clear.set_readers([ALICE.id])


async def test_capabilities_revoke_rotates_the_key(autojump_clock: trio.abc.Clock) -> None:
    net = network()
    async with alice_and_bob(net) as pair:
        alice, bob = pair.nodes
        a = await alice.open("notes", type="keyvalue", access="capabilities", encrypted=True)
        assert isinstance(a, KeyValue) and a.encrypted
        grant = await a.grant(BOB.id, "write")
        assert enc.classify(grant.payload) is None  # the ACL op stays in the clear
        await a.announce_key(enc.announcement(BOB, a.cid))
        await a.set_readers([BOB.id])
        await a.put("before", 1)
        b = await open_replica(bob, a.address, "alice", KeyValue)
        assert b.get("before") == 1 and b.is_reader
        await wait_for_entry(alice, a, await b.put("from-bob", 2))
        assert a.get("from-bob") == 2
        await a.revoke(BOB.id, "write")  # the owner revokes: a new epoch without Bob
        assert a.readers == {ALICE.id}
        await wait_for_entry(bob, b, await a.put("after", 3))
        assert not b.is_reader and b.get("after") is None and b.get("before") == 1
        assert a.get("after") == 3


async def test_conflicts_of_an_encrypted_keyvalue_are_plaintext() -> None:
    async with (
        open_node(identity=ALICE, config=CONFIG) as alice,
        open_node(identity=BOB, config=CONFIG) as bob,
    ):
        a = await alice.open("kv", type="keyvalue", write=WRITERS, encrypted=True)
        assert isinstance(a, KeyValue)
        await a.announce_key(enc.announcement(BOB, a.cid))
        await a.set_readers([BOB.id])
        manifest = alice.store.blocks.get(a.cid)
        assert manifest is not None
        bob.store.blocks.put(a.cid, manifest)
        b = await bob.open(a.address, type="keyvalue")
        assert isinstance(b, KeyValue)
        await b.receive(a.log.iter_blocks())
        assert b.is_reader
        await a.put("k", "alice's")  # concurrent: neither has seen the other's
        await b.put("k", "bob's")
        await b.receive(a.log.iter_blocks())
        await a.receive(b.log.iter_blocks())
        for db in (a, b):
            values = {db.get("k"), *(c.value for c in db.conflicts("k"))}
            assert values == {"alice's", "bob's"}  # opened, never the sealed envelope
