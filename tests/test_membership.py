"""Capabilities access on real nodes: grants, revocation with retraction, invites,
rejections, persistence, and a partitioned network (the backdating attack)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.errors import (
    AccessDeniedError,
    BadSignatureError,
    InvalidDataError,
    InvalidValueError,
    UsageError,
    WriteNotAllowedError,
)
from orbitstore.node import NodeConfig, open_node
from orbitstore.node.config import ReplicationConfig
from orbitstore.node.keyvalue import KeyValue
from orbitstore.storage.memory import MemoryStore
from orbitstore.testing.entries import entry_after
from orbitstore.testing.network import MemoryNetwork
from orbitstore.testing.pairs import NodePair, open_memory_pair

OWNER = Identity(b"\x01" * 32)
ALICE = Identity(b"\x02" * 32)
MALLORY = Identity(b"\x03" * 32)


def put(db: KeyValue, who: Identity, key: str, value: Any, parents: list[Cid]) -> Entry:
    """An entry by ``who`` on ``parents`` (as if it came from another node)."""
    clocks = [e.clock for e in (db.get_entry(p) for p in parents) if e is not None]
    return Entry.create(
        who,
        db=db.cid,
        clock=max(clocks, default=0) + 1,
        next=sorted(parents, key=bytes),
        payload={"op": "put", "key": key, "value": value},
    )


def acl_op(op: str) -> dict[str, Any]:
    """The payload of the owner's ``op`` (grant, revoke) of Alice's write right."""
    return {"acl": {"op": op, "to": ALICE.id, "right": "write", "scope": None}}


async def owner_kv(node: Any) -> KeyValue:
    db = await node.open("team", type="keyvalue", access="capabilities")
    assert isinstance(db, KeyValue)
    return db


async def test_grant_write_and_revoke_retracts_concurrent_entries() -> None:
    async with open_node(store=MemoryStore(), identity=OWNER) as node:
        db = await owner_kv(node)
        await db.put("k", "owner")
        grant = await db.grant(ALICE.id, "write")
        first = put(db, ALICE, "k", "alice-1", [grant.cid])
        assert not (await db.receive_entries([first])).rejected
        assert db.get("k") == "alice-1"
        async with db.subscribe() as changes:
            revoke = await db.revoke(ALICE.id)
            # Alice, not knowing, appends on the old parents (backdating or offline).
            late = put(db, ALICE, "k", "alice-2", [first.cid])
            result = await db.receive_entries([late])
            assert not result.rejected  # stored (its past authorized it) ...
            assert db.get("k") == "alice-1"  # ... but retracted: concurrent with the revoke
            kinds = []
            while (c := changes.receive_nowait()) is not None:
                kinds.append(getattr(c, "kind", None))
            assert "access" in kinds
        assert ALICE.id not in db.members()
        assert revoke.cid in {Cid.parse(o["cid"]) for o in db.access_state()["ops"]}
        with pytest.raises(WriteNotAllowedError):
            await db.revoke(OWNER.id)


async def test_revocation_arriving_late_rebuilds_the_view() -> None:
    async with open_node(store=MemoryStore(), identity=OWNER) as node:
        db = await owner_kv(node)
        grant = await db.grant(ALICE.id)
        entries = [put(db, ALICE, f"k{i}", i, [grant.cid]) for i in range(5)]
        # The owner's revoke on the grant only: concurrent with all of Alice's entries.
        revoke = entry_after(OWNER, db.cid, acl_op("revoke"), [grant])
        await db.receive_entries(entries)
        assert [db.get(f"k{i}") for i in range(5)] == list(range(5))
        async with db.subscribe() as changes:
            await db.receive_entries([revoke])
            assert [db.get(f"k{i}") for i in range(5)] == [None] * 5
            kinds = {getattr(changes.receive_nowait(), "kind", None) for _ in range(2)}
            assert "rebuild" in kinds


async def test_outsider_is_rejected_with_who_and_why() -> None:
    async with open_node(store=MemoryStore(), identity=OWNER) as node:
        db = await owner_kv(node)
        head = await db.put("k", 1)
        result = await db.receive_entries([put(db, MALLORY, "k", 2, [head.cid])])
        assert len(result.rejected) == 1
        error = result.rejected[0].error
        assert isinstance(error, AccessDeniedError) and error.code == "access_denied"
        assert error.details["writer"] == MALLORY.id and MALLORY.id in str(error)
        assert db.get("k") == 1


async def test_forged_writer_is_rejected_by_the_signature() -> None:
    """OrbitDB-style forgery: signed by Mallory's key, naming Alice (who may write)."""
    async with open_node(store=MemoryStore(), identity=OWNER) as node:
        db = await owner_kv(node)
        grant = await db.grant(ALICE.id)
        real = put(db, MALLORY, "k", "forged", [grant.cid])
        fields = codec.decode(real.block)
        fields["writer"] = ALICE.id  # keep Mallory's signature
        block = codec.encode(fields)
        with pytest.raises(BadSignatureError):
            Entry.from_block(Cid.for_block(block), block)
        result = await db.receive([(Cid.for_block(block), block)])
        assert result.rejected and isinstance(result.rejected[0].error, InvalidDataError)
        assert db.get("k") is None


async def test_scoped_grant() -> None:
    async with open_node(store=MemoryStore(), identity=OWNER) as node:
        db = await owner_kv(node)
        grant = await db.grant(ALICE.id, "write", scope="alice/")
        ok = put(db, ALICE, "alice/x", 1, [grant.cid])
        out = put(db, ALICE, "bob/x", 1, [grant.cid])
        result = await db.receive_entries([ok, out])
        assert not result.rejected
        assert db.get("alice/x") == 1 and db.get("bob/x") is None


async def test_invite_redeemed_once_and_revoked_invite() -> None:
    async with open_node(store=MemoryStore(), identity=OWNER) as node:
        db = await owner_kv(node)
        link = await db.invite(scope="p/")
        await db.redeem(link, did=ALICE.id)
        assert any(r.right == "write" and r.scope == "p/" for r in db.members()[ALICE.id])
        with pytest.raises(UsageError):
            await db.redeem(link, did=MALLORY.id)
        assert MALLORY.id not in db.members()
        other = await db.invite()
        await db.revoke_invite(other)
        with pytest.raises(UsageError):
            await db.redeem(other, did=MALLORY.id)
        assert MALLORY.id not in db.members()


async def write_then_revoke(db: KeyValue) -> Entry:
    """Alice is granted write and writes ``k="early"``, is revoked, then writes
    ``k="late"`` after ``early`` (retracted): returns ``early``."""
    grant = await db.grant(ALICE.id)
    early = put(db, ALICE, "k", "early", [grant.cid])
    await db.receive_entries([early])
    await db.revoke(ALICE.id)
    await db.receive_entries([put(db, ALICE, "k", "late", [early.cid])])
    return early


async def test_access_survives_reopen(tmp_path: Path) -> None:
    async with open_node(tmp_path / "n", identity=OWNER) as node:
        db = await owner_kv(node)
        early = await write_then_revoke(db)
        assert db.get("k") == "early"
    async with open_node(tmp_path / "n", identity=OWNER) as node:
        db = await owner_kv(node)
        assert db.get("k") == "early"
        assert ALICE.id not in db.members()
        again = put(db, ALICE, "k", "again", [early.cid])
        await db.receive_entries([again])
        assert db.get("k") == "early"


# -- three nodes, a partition ---------------------------------------------------------

CONFIG = NodeConfig(
    timestamps=False,
    replication=ReplicationConfig(
        anti_entropy_interval=5.0,
        reconnect_interval=1.0,
        idle_timeout=5.0,
        thread_verify_min_blocks=1_000_000,
    ),
)


async def test_partitioned_revoked_writer_is_excluded_everywhere(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = MemoryNetwork(rng=random.Random(7), latency=(0.001, 0.01))
    carol = Identity(b"\x04" * 32)
    names = {"owner": OWNER, "alice": ALICE, "carol": carol}
    stores = {n: MemoryStore() for n in names}
    async with (
        net.open_transport("owner") as t_o,
        net.open_transport("alice") as t_a,
        net.open_transport("carol") as t_c,
        open_node(store=stores["owner"], identity=OWNER, transport=t_o, config=CONFIG) as n_o,
        open_node(store=stores["alice"], identity=ALICE, transport=t_a, config=CONFIG) as n_a,
        open_node(store=stores["carol"], identity=carol, transport=t_c, config=CONFIG) as n_c,
    ):
        db_o = await owner_kv(n_o)
        for n in (n_a, n_c):
            assert n.replication is not None
            await n.replication.connect("mem/owner")
        await n_a.replication.connect("mem/carol")  # type: ignore[union-attr]
        db_a = await n_a.open(db_o.address, type="keyvalue")
        db_c = await n_c.open(db_o.address, type="keyvalue")
        assert isinstance(db_a, KeyValue) and isinstance(db_c, KeyValue)
        await db_o.grant(ALICE.id)
        with trio.fail_after(30):
            while ALICE.id not in db_a.members():
                await trio.sleep(0.1)
        await db_a.put("doc", "alice, authorized")
        with trio.fail_after(30):
            while db_o.get("doc") != "alice, authorized" or db_c.get("doc") is None:
                await trio.sleep(0.1)

        net.partition({"owner", "carol"}, {"alice"})
        await db_o.revoke(ALICE.id)
        await db_a.put("doc", "alice, after revocation")  # she does not know yet
        assert db_a.get("doc") == "alice, after revocation"
        net.heal()
        for n in (n_a, n_c):
            await n.replication.connect("mem/owner")  # type: ignore[union-attr]

        def converged() -> bool:
            heads = {frozenset(d.heads) for d in (db_o, db_a, db_c)}
            return len(heads) == 1

        with trio.fail_after(60):
            while not converged():
                await trio.sleep(0.2)
        for d in (db_o, db_a, db_c):
            assert d.get("doc") == "alice, authorized", d
            assert ALICE.id not in d.members()
        with pytest.raises(WriteNotAllowedError):
            await db_a.put("doc", "again")


@asynccontextmanager
async def _owner_and_alice(seed: int) -> AsyncIterator[NodePair]:
    """The owner's and Alice's nodes on an in-memory network, not connected yet."""
    net = MemoryNetwork(rng=random.Random(seed), latency=(0.001, 0.01))
    async with open_memory_pair(
        network=net,
        names=("owner", "alice"),
        identities=(OWNER, ALICE),
        stores=(MemoryStore(), MemoryStore()),
        config=CONFIG,
    ) as pair:
        yield pair


async def test_node_redeem_over_the_network(autojump_clock: trio.abc.Clock) -> None:
    async with _owner_and_alice(3) as pair:
        n_o, n_a = pair.nodes
        db_o = await owner_kv(n_o)
        link = await db_o.invite()
        await pair.connect()
        db_a = await n_a.redeem(link)
        assert isinstance(db_a, KeyValue)
        await db_a.put("hello", "from alice")
        with trio.fail_after(30):
            while db_o.get("hello") != "from alice":
                await trio.sleep(0.1)
        assert ALICE.id in db_o.members()
        # Named here as its creator named it: `ls` and every command find it by name.
        assert n_a.databases() == {"team": db_a.address}
        assert await n_a.open("team", type="keyvalue") is db_a


async def test_redeem_names_the_database_unless_the_name_is_taken(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with _owner_and_alice(4) as pair:
        n_o, n_a = pair.nodes
        db_o = await owner_kv(n_o)
        mine = await n_a.open("mine", type="feed")
        await pair.connect()
        # A name that names another database here fails before anything is fetched.
        with pytest.raises(InvalidValueError, match="already names another database"):
            await n_a.redeem(await db_o.invite(), name="mine")
        with pytest.raises(InvalidValueError, match="database name"):
            await n_a.redeem(await db_o.invite(), name="a/b")
        assert n_a.open_databases() == [mine]
        # Its creator's name is taken here: it stays unnamed (the address works).
        other = await n_a.open("team", type="log")
        db_a = await n_a.redeem(await db_o.invite())
        assert n_a.databases() == {"mine": mine.address, "team": other.address}
        # Redeeming again with a name gives it that one.
        await n_a.redeem(await db_o.invite(), name="their team")
        assert n_a.databases()["their team"] == db_a.address
        assert len(n_a.databases()) == 3


async def test_check_accepts_a_view_with_retracted_entries(tmp_path: Path) -> None:
    async with open_node(tmp_path / "n", identity=OWNER) as node:
        db = await owner_kv(node)
        await write_then_revoke(db)
        report = node.check()
        assert not report.problems, report.problems


def test_version_3_file_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    from orbitstore.storage.sqlite import SCHEMA_VERSION, SqliteStore

    path = tmp_path / "node.sqlite"
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:  # the version-3 file it would have been
        conn.execute("DROP TABLE acl_frontiers")
        conn.execute("UPDATE meta SET value=3 WHERE key='schema'")
    conn.close()
    with SqliteStore(path) as store:
        version = store.connection.execute("SELECT value FROM meta WHERE key='schema'")
        assert version.fetchone()[0] == SCHEMA_VERSION == 4
        assert store.connection.execute("SELECT count(*) FROM acl_frontiers").fetchone() == (0,)


async def test_all_or_nothing_refusal_leaves_access_unchanged() -> None:
    async with open_node(store=MemoryStore(), identity=OWNER) as node:
        db = await owner_kv(node)
        head = await db.put("k", 0)
        grant = entry_after(OWNER, db.cid, acl_op("grant"), [head])
        outsider = put(db, MALLORY, "k", "x", [head.cid])
        result = db.log.receive_entries([grant, outsider], all_or_nothing=True)
        assert result.rejected and not result.added
        assert ALICE.id not in db.members() and not db.log.has(grant.cid)
        assert db.log.capabilities is not None and grant.cid not in db.log.capabilities.graph
        assert not (await db.receive_entries([grant])).rejected
        assert ALICE.id in db.members()


def test_payload_keys() -> None:
    from orbitstore.core.capability_log import payload_keys

    assert payload_keys({"op": "put", "key": "a", "value": 1}) == ("a",)
    assert payload_keys({"op": "del", "id": "d1"}) == ("d1",)
    assert payload_keys({"op": "put", "doc": {"_id": "d2", "x": 1}}) == ("d2",)
    assert payload_keys({"op": "put", "doc": {"id": "d3"}}, "id") == ("d3",)
    batch = {"op": "batch", "ops": [{"op": "put", "key": "a"}, {"op": "del", "key": "b"}]}
    assert payload_keys(batch) == ("a", "b")
    assert payload_keys({"op": "batch", "ops": [{"op": "put", "key": "a"}, 3]}) is None
    assert payload_keys("text") is None and payload_keys({"n": 1}) is None


async def test_counter_retraction() -> None:
    from orbitstore.node.counter import Counter

    async with open_node(store=MemoryStore(), identity=OWNER) as node:
        db = await node.open("hits", type="counter", access="capabilities")
        assert isinstance(db, Counter)
        await db.increment(1)
        grant = await db.grant(ALICE.id)
        alice = entry_after(ALICE, db.cid, {"op": "inc", "by": 5}, [grant])
        await db.receive_entries([alice])
        assert db.value == 6
        revoke = entry_after(OWNER, db.cid, acl_op("revoke"), [grant])
        await db.receive_entries([revoke])
        assert db.value == 1
        await db.increment(2)
        assert db.value == 3
