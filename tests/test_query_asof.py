"""Time travel: ``query(..., as_of=heads)`` equals the query run when those were the heads."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import orbitstore
from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.oplog import OpLog
from orbitstore.errors import InvalidValueError, NotFoundError, QueryError, UsageError
from orbitstore.node.counter import Counter
from orbitstore.node.database import Database
from orbitstore.node.documents import Documents
from orbitstore.node.feed import Feed
from orbitstore.node.keyvalue import KeyValue
from orbitstore.query.limits import QueryLimits
from orbitstore.storage.memory import MemoryStore
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.views.keyvalue import delete_op, put_op

KV_SQL = "SELECT key, value, writer, clock, cid FROM this ORDER BY key"
FEED_SQL = "SELECT id, value, writer, clock FROM this ORDER BY clock, writer, cid, id"


def _snapshot_of_tables(path: Path) -> list[tuple[str, list[Any]]]:
    """Every view table and the heads table of the store file, read independently."""
    conn = sqlite3.connect(path / "orbitstore.sqlite")
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'"
                " AND (name LIKE 'view_%' OR name IN ('heads', 'entries', 'blocks'))"
                " ORDER BY name"
            )
        ]
        return [(n, sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall())) for n in names]
    finally:
        conn.close()


async def test_kv_history_as_of_every_step(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        kv = await node.open("kv", type="keyvalue")
        assert isinstance(kv, KeyValue)
        history: list[tuple[frozenset[Cid], Any, Any]] = [
            (kv.heads, kv.query(KV_SQL), kv.query("SELECT count(*) AS n FROM kv"))
        ]
        steps: list[Any] = [
            ("put", "a", 1),
            ("put", "b", {"x": [1, 2]}),
            ("put", "a", "two"),
            ("del", "b"),
            ("put", "c", None),
            ("del", "a"),
            ("put", "b", True),
            ("batch", [kv.Put(key="d", value=4), kv.Delete(key="c")]),
        ]
        for step in steps:
            if step[0] == "put":
                await kv.put(step[1], step[2])
            elif step[0] == "del":
                await kv.delete(step[1])
            else:
                await kv.apply_batch(step[1])
            history.append((kv.heads, kv.query(KV_SQL), kv.query("SELECT count(*) AS n FROM kv")))
        for heads, rows, count in history:
            assert kv.query(KV_SQL, as_of=heads) == rows
            # CID text works as well as Cid objects, and the aggregate agrees
            assert kv.query("SELECT count(*) AS n FROM kv", as_of=[str(h) for h in heads]) == count
        # the first remembered heads are the empty log: the empty state
        assert history[0][0] == frozenset()
        assert kv.query(KV_SQL, as_of=()).rows == ()
        # a repeat is served from the cache
        before = node.queries.statistics().snapshots
        assert kv.query(KV_SQL, as_of=history[-2][0]) == history[-2][1]
        after = node.queries.statistics().snapshots
        assert after.hits == before.hits + 1 and after.misses == before.misses


async def test_feed_history_as_of_every_step(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        feed = await node.open("chat", type="feed")
        assert isinstance(feed, Feed)
        history = []
        for i in range(6):
            if i % 3 == 2:
                await feed.add_many([{"n": i, "part": 0}, {"n": i, "part": 1}])
            else:
                await feed.add({"n": i, "text": f"message {i}"})
            history.append((feed.heads, feed.query(FEED_SQL)))
        for heads, rows in history:
            got = feed.query(FEED_SQL, as_of=heads)
            assert got == rows
            assert len(got) == len(rows.rows)
        first = history[0][0]
        assert feed.query("SELECT value.text FROM chat", as_of=first).rows == (("message 0",),)


async def test_documents_and_counter_as_of(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        docs = await node.open("people", type="documents")
        counter = await node.open("hits", type="counter")
        assert isinstance(docs, Documents) and isinstance(counter, Counter)
        await docs.put({"_id": "ada", "age": 36})
        await counter.increment(5)
        doc_heads, counter_heads = docs.heads, counter.heads
        await docs.put({"_id": "ada", "age": 37})
        await docs.put({"_id": "bob", "age": 20})
        await counter.increment(-2)
        sql = "SELECT id, doc.age FROM this ORDER BY id"
        assert docs.query(sql).rows == (("ada", 37), ("bob", 20))
        assert docs.query(sql, as_of=doc_heads).rows == (("ada", 36),)
        assert counter.query("SELECT value FROM this").rows == ((3,),)
        assert counter.query("SELECT value FROM this", as_of=counter_heads).rows == ((5,),)
        assert counter.query("SELECT value FROM this", as_of=[]).rows == ((0,),)


async def test_two_writers_as_of_one_branch_sees_only_that_branch(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        kv = await node.open("kv", type="keyvalue", write=["*"])
        assert isinstance(kv, KeyValue)
        await kv.put("shared", 0)
        base = list(kv.log.traverse())
        # a second writer on its own replica, branching from the shared entry
        other = OpLog(
            db=kv.cid,
            access=StaticAccess.of(["*"]),
            store=MemoryStore().log_store(kv.cid),
            identity=Identity(bytes([7]) * 32),
        )
        assert not other.receive_entries(base).rejected
        theirs = [
            other.append(put_op("theirs", 1)),
            other.append(put_op("shared", "theirs")),
        ]
        await kv.put("mine", 1)
        await kv.put("shared", "mine")
        mine_heads = kv.heads
        mine_rows = kv.query(KV_SQL)
        result = await kv.receive_entries(theirs)
        assert len(result.added) == 2
        merged = kv.heads
        assert len(merged) == 2
        theirs_heads = frozenset([theirs[-1].cid])

        keys = "SELECT key, value FROM this ORDER BY key"
        assert kv.query(KV_SQL, as_of=mine_heads) == mine_rows
        assert kv.query(keys, as_of=theirs_heads).rows == (("shared", "theirs"), ("theirs", 1))
        assert kv.query(keys, as_of=merged) == kv.query(keys)
        assert {r[0] for r in kv.query(keys).rows} == {"mine", "shared", "theirs"}
        # the union of both branch heads is the merge
        assert kv.query(keys, as_of=mine_heads | theirs_heads) == kv.query(keys)


async def test_node_query_as_of_joins_a_past_and_a_live_database(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        users = await node.open("users", type="keyvalue")
        events = await node.open("events", type="feed")
        assert isinstance(users, KeyValue) and isinstance(events, Feed)
        await users.put("u1", {"name": "Ada"})
        then = users.heads
        await users.put("u1", {"name": "Ada Lovelace"})
        await users.put("u2", {"name": "Bob"})
        await events.add({"user": "u1"})
        await events.add({"user": "u2"})
        sql = (
            "SELECT e.value.user AS user, u.value.name AS name FROM events AS e"
            " LEFT JOIN users AS u ON u.key = e.value.user ORDER BY e.clock"
        )
        assert node.query(sql).rows == (("u1", "Ada Lovelace"), ("u2", "Bob"))
        assert node.query(sql, as_of={"users": then}).rows == (("u1", "Ada"), ("u2", None))
        assert node.query(sql, as_of={"USERS": then, "events": []}).rows == ()
        plan = node.explain(sql, as_of={"users": then})
        assert "asof_" in plan.sql
        with pytest.raises(NotFoundError):
            node.query(sql, as_of={"nobody": then})
        with pytest.raises(UsageError):
            node.query(sql, as_of=[("users", then)])  # type: ignore[arg-type]


async def test_explain_as_of_reports_the_snapshot(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        kv = await node.open("kv", type="keyvalue")
        await kv.put("a", 1)
        then = kv.heads
        await kv.put("b", 2)
        plan = kv.explain("SELECT value FROM this WHERE key = 'a'", as_of=then)
        assert [s.table for s in plan.steps] == ["kv"]
        assert plan.steps[0].access == "key"
        assert '"asof_' in plan.sql
        # the current heads are the live view: no snapshot at all
        assert "asof_" not in kv.explain("SELECT * FROM this", as_of=kv.heads).sql


async def test_abuse_foreign_unknown_and_malformed_heads(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        kv = await node.open("kv", type="keyvalue")
        other = await node.open("other", type="keyvalue")
        assert isinstance(kv, KeyValue) and isinstance(other, KeyValue)
        await kv.put("a", 1)
        await other.put("a", 2)
        with pytest.raises(NotFoundError):
            kv.query(KV_SQL, as_of=other.heads)
        with pytest.raises(NotFoundError):
            kv.query(KV_SQL, as_of=[*kv.heads, *other.heads])
        # a CID that is no entry anywhere (the manifest's own CID is a block, not an entry)
        with pytest.raises(NotFoundError):
            kv.query(KV_SQL, as_of=[kv.cid])
        for bad in (["not a cid"], [42], b"bytes", 42):
            with pytest.raises(InvalidValueError):
                kv.query(KV_SQL, as_of=bad)  # type: ignore[arg-type]
        # a single CID (or its text) is a set of one
        assert kv.query(KV_SQL, as_of=str(next(iter(kv.heads)))) == kv.query(KV_SQL)
        # the query itself is still checked
        with pytest.raises(QueryError):
            kv.query("DELETE FROM this", as_of=kv.heads)


async def test_store_is_unchanged_by_as_of_queries(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        kv = await node.open("kv", type="keyvalue")
        feed = await node.open("f", type="feed")
        assert isinstance(kv, KeyValue) and isinstance(feed, Feed)
        remembered = []
        for i in range(5):
            await kv.put(f"k{i % 2}", i)
            await feed.add(i)
            remembered.append((kv.heads, feed.heads))
        before = _snapshot_of_tables(tmp_path)
        count, heads = len(kv), kv.heads
        for kv_heads, feed_heads in remembered * 3:  # more snapshots than the cache holds
            kv.query(KV_SQL, as_of=kv_heads)
            feed.query(FEED_SQL, as_of=feed_heads)
            node.query("SELECT count(*) FROM kv JOIN f ON 1", as_of={"kv": kv_heads, "f": []})
        stats = node.queries.statistics().snapshots
        assert stats.size <= QueryLimits().snapshot_cache_size
        assert stats.evictions > 0
        assert len(kv) == count and kv.heads == heads
        assert _snapshot_of_tables(tmp_path) == before
        # still writable and the live view still right
        await kv.put("k9", 9)
        assert kv.get("k9") == 9
        assert ("k9", 9) in {(r["key"], r["value"]) for r in kv.query(KV_SQL)}


async def test_users_cannot_write_through_the_snapshot_connection(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        kv = await node.open("kv", type="keyvalue")
        await kv.put("a", 1)
        then = kv.heads
        await kv.put("a", 2)
        kv.query(KV_SQL, as_of=then)  # attaches a snapshot
        executor = node.queries._exec()
        (schema,) = executor.attached
        # Below the compiler: raw SQL on the executor still cannot write, attach or detach.
        for raw in (
            f'INSERT INTO "{schema}".view_kv SELECT * FROM "{schema}".view_kv',
            f'DELETE FROM "{schema}".view_kv',
            "DELETE FROM view_kv",
            f'DETACH DATABASE "{schema}"',
            "ATTACH DATABASE ':memory:' AS x",
            f'SELECT * FROM "{schema}".blocks',
        ):
            with pytest.raises(QueryError):
                executor.execute(raw, (), max_rows=10, timeout_s=1.0)
        assert kv.query("SELECT value FROM this", as_of=then).rows == ((1,),)
        assert kv.get("a") == 2


async def test_closed_node_detaches_and_memory_nodes_refuse(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        kv = await node.open("kv", type="keyvalue")
        await kv.put("a", 1)
        then = kv.heads
        await kv.put("a", 2)
        kv.query(KV_SQL, as_of=then)
        executor = node.queries._exec()
    assert executor.attached == frozenset()
    async with orbitstore.open_node() as node:
        mem = await node.open("kv", type="keyvalue")
        await mem.put("a", 1)
        with pytest.raises(UsageError):
            mem.query(KV_SQL, as_of=mem.heads)


def test_snapshot_cache_size_is_bounded() -> None:
    with pytest.raises(InvalidValueError):
        QueryLimits(snapshot_cache_size=11)
    with pytest.raises(InvalidValueError):
        QueryLimits(snapshot_cache_size=0)


def test_sqlite_store_in_memory_round_trips_through_serialize() -> None:
    with SqliteStore.in_memory() as store:
        assert store.log_store(Cid.for_block(b"\xa0")).log_id == 1
        image = store.serialize()
    assert image[:16] == b"SQLite format 3\x00"


# -- Hypothesis: random histories, random past heads, against a reference model -----------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SqliteStore, Identity]]:
    with SqliteStore(tmp_path_factory.mktemp("asof") / "s.sqlite") as store:
        yield store, Identity(bytes([1]) * 32)


_names = itertools.count()
KEYS = ["a", "b", "c"]
ops = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS), st.integers(0, 3)),
    st.tuples(st.just("del"), st.sampled_from(KEYS), st.none()),
)
plans = st.lists(
    st.one_of(
        st.tuples(st.just("mine"), ops),
        st.tuples(st.just("theirs"), ops),
        st.tuples(st.just("sync"), st.none()),
    ),
    max_size=14,
)


def _ancestors(entries: dict[Cid, Entry], heads: frozenset[Cid]) -> list[Entry]:
    seen: set[Cid] = set()
    stack = list(heads)
    while stack:
        cid = stack.pop()
        if cid not in seen:
            seen.add(cid)
            stack.extend(entries[cid].next)
    return [entries[c] for c in seen]


def _model(entries: list[Entry]) -> list[tuple[str, Any]]:
    out: dict[str, Any] = {}
    for e in sorted(entries, key=lambda e: e.order_key):
        if e.payload["op"] == "put":
            out[e.payload["key"]] = e.payload["value"]
        else:
            out.pop(e.payload["key"], None)
    return sorted(out.items())


@given(plan=plans, data=st.data())
def test_as_of_random_heads_equals_reference_model(
    shared: tuple[SqliteStore, Identity], plan: list[Any], data: st.DataObject
) -> None:
    store, identity = shared

    async def main() -> None:
        async with orbitstore.open_node(store=store, identity=identity) as node:
            db: Database = await node.open(f"kv{next(_names)}", type="keyvalue", write=["*"])
            other = OpLog(
                db=db.cid,
                access=StaticAccess.of(["*"]),
                store=MemoryStore().log_store(db.cid),
                identity=Identity(bytes([2]) * 32),
            )
            assert isinstance(db, KeyValue)
            known: dict[Cid, Entry] = {}
            remembered: list[frozenset[Cid]] = [db.heads]
            for who, op in plan:
                payload = None
                if op is not None:
                    payload = put_op(op[1], op[2]) if op[0] == "put" else delete_op(op[1])
                if who == "mine":
                    assert payload is not None
                    entry = await db.append(payload)
                    known[entry.cid] = entry
                elif who == "theirs":
                    entry = other.append(payload)
                    known[entry.cid] = entry
                else:  # exchange everything both ways
                    await db.receive_entries(list(other.traverse()))
                    other.receive_entries(list(db.log.traverse()))
                remembered.append(db.heads)
                remembered.append(other.heads)
            await db.receive_entries(list(other.traverse()))
            # any set of entries names a state, not only heads the database had
            if known:
                extra = data.draw(st.sets(st.sampled_from(sorted(known, key=str)), max_size=3))
                remembered.append(frozenset(extra))
            picks = data.draw(
                st.lists(st.sampled_from(remembered), min_size=1, max_size=4), label="heads"
            )
            for heads in picks:
                got = db.query("SELECT key, value FROM this ORDER BY key", as_of=heads)
                assert [(r[0], r[1]) for r in got.rows] == _model(_ancestors(known, heads))

    trio.run(main)
