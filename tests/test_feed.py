from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import orbitstore
from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.errors import InvalidValueError, NotFoundError, PayloadTooLargeError
from orbitstore.node.feed import Feed
from orbitstore.storage.memory import MemoryStore
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.storage.views import open_view_state
from orbitstore.storage.views.feed import MemoryFeedState
from orbitstore.views.base import Change
from orbitstore.views.feed import FeedItem, FeedView, add_many_op, add_op, item_id, parse_item_id


async def _feed(node: orbitstore.Node, name: str = "feed") -> Feed:
    feed = await node.open(name, type="feed")
    assert isinstance(feed, Feed)
    return feed


# --- the handle ------------------------------------------------------------------------


async def test_add_read_and_range() -> None:
    async with orbitstore.open_node() as node:
        feed = await _feed(node)
        first = await feed.add({"text": "hello"})
        batch = await feed.add_many(["a", "b", "c"])
        last = await feed.add(b"\x00")
        assert first.id == str(first.cid) and first.index == 0
        assert [i.id for i in batch] == [str(batch[0].cid)] + [
            f"{batch[0].cid}/{n}" for n in (1, 2)
        ]
        assert feed.count() == 5 and len(feed) == 3
        values = [i.value for i in feed.items()]
        assert values == [{"text": "hello"}, "a", "b", "c", b"\x00"]
        assert list(feed.items()) == [first, *batch, last]
        assert feed.get(batch[2].id) == batch[2]
        assert feed.get(f"{batch[0].cid}/7") is None
        assert [i.value for i in feed.items(reverse=True, limit=2)] == [b"\x00", "c"]
        assert [i.value for i in feed.items(gt=first, lt=last)] == ["a", "b", "c"]
        assert [i.value for i in feed.items(gte=batch[1].id, lte=batch[2])] == ["b", "c"]
        assert [i.value for i in feed.items(gt=batch[0], reverse=True)] == [b"\x00", "c", "b"]
        assert list(feed.items(gt=last)) == [] and list(feed.items(limit=0)) == []
        assert first.ts is not None and first.writer == node.id and first.clock == 1
        assert await feed.add_many([]) == []


async def test_ranges_cross_pages(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        feed = await _feed(node)
        items = []
        for chunk in range(3):
            items += await feed.add_many([chunk * 1000 + i for i in range(300)])
        assert list(feed.items()) == items
        assert list(feed.items(reverse=True)) == items[::-1]
        assert list(feed.items(gt=items[10], lte=items[700].id, limit=500)) == items[11:511]
        assert list(feed.items(gte=items[10], lt=items[700], reverse=True)) == items[699:9:-1]
        assert feed.count() == 900


async def test_bad_input_writes_nothing() -> None:
    async with orbitstore.open_node() as node:
        feed = await _feed(node)
        for value in [object(), float("inf"), {1: 1}, (1, 2), {"/": "x"}]:
            with pytest.raises(InvalidValueError):
                await feed.add(value)
        with pytest.raises(InvalidValueError):
            await feed.add_many([1, object()])
        with pytest.raises(PayloadTooLargeError):
            await feed.add_many([b"x" * 100_000] * 6)
        assert len(feed) == 0 and feed.count() == 0 and not feed.heads
        item = await feed.add("ok")
        for bad in ["", "nope", f"{item.cid}/", f"{item.cid}/01", f"{item.cid}/-1", 5]:
            with pytest.raises(InvalidValueError):
                feed.get(bad)  # type: ignore[arg-type]
        with pytest.raises(NotFoundError):
            list(feed.items(gt=f"{item.cid}/3"))
        with pytest.raises(InvalidValueError):
            feed.items(gt=item, gte=item)
        with pytest.raises(InvalidValueError):
            feed.items(lt=item, lte=item)
        with pytest.raises(InvalidValueError):
            feed.items(limit=-1)
        with pytest.raises(InvalidValueError):
            FeedItem(id="x", cid=item.cid, index=0, writer="w", clock=1, ts=None, value=1)


def test_item_ids_round_trip() -> None:
    cid = Cid.for_block(b"x")
    for index in (0, 1, 12, 1000):
        assert parse_item_id(item_id(cid, index)) == (cid, index)
    assert item_id(cid, 0) == str(cid) and item_id(cid, 3) == f"{cid}/3"


async def test_change_notifications() -> None:
    async with orbitstore.open_node() as node:
        feed = await _feed(node)
        async with feed.subscribe() as changes:
            one = await feed.add("x")
            more = await feed.add_many(["y", "z"])
            got = []
            while (change := changes.receive_nowait()) is not None:
                assert isinstance(change, Change)
                got.append((change.kind, change.key, change.value))
        assert got == [("add", one.id, "x"), ("add", more[0].id, "y"), ("add", more[1].id, "z")]


async def test_reopen_without_replay(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        feed = await _feed(node)
        await feed.add_many(list(range(100)))
        for i in range(5):
            await feed.add({"i": i})
        before = list(feed.items())
        address = feed.address
    async with orbitstore.open_node(tmp_path) as node:
        feed = await node.open(address, type="feed")
        assert isinstance(feed, Feed)
        assert feed.statistics().reapplied_on_open == 0
        assert list(feed.items()) == before
        assert feed.count() == 105
        assert feed.get(before[50].id) == before[50]


# --- the view: convergence under any delivery order ----------------------------------


def _replica(seed: int, name: str = "feed") -> OpLog:
    access = StaticAccess.of(["*"])
    db, _ = Manifest(name=name, type="feed", access=access).to_block()
    store = MemoryStore()
    return OpLog(
        db=db, access=access, store=store.log_store(db), identity=Identity(bytes([seed]) * 32)
    )


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteStore]:
    # One file for every Hypothesis example (each gets its own database in it): creating
    # and closing a SQLite file per example would cost more than the example itself.
    with SqliteStore(tmp_path_factory.mktemp("feed") / "s.sqlite") as store:
        yield store


_databases = itertools.count()


def _sqlite_replica(store: SqliteStore, seed: int, name: str) -> tuple[OpLog, FeedView]:
    access = StaticAccess.of(["*"])
    db, _ = Manifest(name=name, type="feed", access=access).to_block()
    log = OpLog(
        db=db, access=access, store=store.log_store(db), identity=Identity(bytes([seed]) * 32)
    )
    return log, FeedView(open_view_state(store, "feed", db))


adds = st.one_of(
    st.integers(0, 99).map(add_op),
    st.lists(st.integers(0, 99), min_size=1, max_size=4).map(add_many_op),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 3), adds),
        st.tuples(st.just("sync"), st.integers(0, 3), st.integers(0, 3)),
    ),
    max_size=25,
)


def _model(entries: list[Entry]) -> list[tuple[str, Any]]:
    """The reference: every item sorted by (clock, writer, cid, index)."""
    items = []
    for e in entries:
        values = [e.payload["value"]] if "value" in e.payload else e.payload["values"]
        for i, v in enumerate(values):
            items.append(((e.clock, e.writer, bytes(e.cid), i), item_id(e.cid, i), v))
    return [(ident, v) for _, ident, v in sorted(items, key=lambda t: t[0])]


def _listing(view: FeedView, **bounds: Any) -> list[tuple[str, Any]]:
    return [(i.id, i.value) for i in view.items(**bounds)]


@given(steps, st.integers(2, 4), st.randoms(use_true_random=False), st.data())
def test_replicas_converge_to_the_reference_model(
    shared_store: SqliteStore,
    plan: list[tuple[Any, ...]],
    n: int,
    rnd: random.Random,
    data: st.DataObject,
) -> None:
    sql_store = shared_store
    name = f"feed{next(_databases)}"  # a new database for each example
    sql_log, sql_view = _sqlite_replica(sql_store, 1, name)
    replicas: list[tuple[OpLog, FeedView]] = [(sql_log, sql_view)]
    replicas += [(_replica(i + 1, name), FeedView(MemoryFeedState())) for i in range(1, n)]
    announced: list[set[str]] = [set() for _ in replicas]

    def note(to: int, changes: list[Change]) -> None:
        for c in changes:
            assert c.kind == "add" and c.key not in announced[to]
            announced[to].add(c.key)

    def deliver(to: int, entries: list[Entry]) -> None:
        log, view = replicas[to]
        batch = entries + rnd.sample(entries, k=min(3, len(entries)))  # duplicates
        rnd.shuffle(batch)
        for e in batch:
            with sql_store.transaction():
                note(to, view.apply(log.receive_entries([e]).added, local=False))

    written: list[Entry] = []
    for step in plan:
        if step[0] == "write":
            who = step[1] % n
            log, view = replicas[who]
            with sql_store.transaction():
                entries = log.append_many([step[2]])
                note(who, view.apply(entries, local=True))
            written.extend(entries)
        else:
            deliver(step[2] % n, list(replicas[step[1] % n][0].traverse()))
    for i in range(n):
        deliver(i, written)

    expected = _model(written)
    for (log, view), seen in zip(replicas, announced, strict=True):
        assert _listing(view) == expected
        assert view.count() == len(expected)
        assert seen == {ident for ident, _ in expected}
        rebuilt = FeedView(MemoryFeedState())
        rebuilt.apply(list(log.traverse()), local=False)
        assert list(rebuilt.items()) == list(view.items())

    if expected:  # ranges agree with slicing the reference, on SQLite and in memory
        ids = [ident for ident, _ in expected]
        lo = data.draw(st.integers(0, len(ids) - 1))
        hi = data.draw(st.integers(lo, len(ids) - 1))
        limit = data.draw(st.none() | st.integers(0, 5))
        for _, view in replicas[:2]:
            window = expected[lo + 1 : hi]
            assert _listing(view, gt=ids[lo], lt=ids[hi], limit=limit) == window[:limit]
            window = expected[lo : hi + 1][::-1]
            got = _listing(view, gte=ids[lo], lte=view.get(ids[hi]), reverse=True, limit=limit)
            assert got == window[:limit]


def test_late_entry_is_inserted_at_its_position() -> None:
    a, b = _replica(1), _replica(2)
    early = a.append(add_op("a1"))
    later = [b.append(add_op(f"b{i}")) for i in range(3)]  # clocks 1..3, concurrent with a1
    view = FeedView(MemoryFeedState())
    view.apply(later, local=False)
    view.apply([early], local=False)
    expected = sorted([early, *later], key=lambda e: e.order_key)
    assert [i.cid for i in view.items()] == [e.cid for e in expected]


def test_malformed_payloads_are_ignored() -> None:
    log = _replica(1)
    bad: list[Any] = [
        "x",
        {"op": "add"},
        {"op": "add", "value": 1, "values": [1]},
        {"op": "add", "values": []},
        {"op": "add", "values": "abc"},
        {"op": "add", "value": {"/": "x"}},
        {"op": "put", "value": 1},
    ]
    view = FeedView(MemoryFeedState())
    assert view.apply(log.append_many(bad), local=True) == []
    assert view.count() == 0 and list(view.items()) == []


class _PlanRecorder:
    """Stands in for a SqliteStore: runs each query, and records SQLite's plan for it."""

    def __init__(self, store: SqliteStore) -> None:
        self._conn = store.connection
        self.plans: list[str] = []

    @property
    def connection(self) -> _PlanRecorder:
        return self

    def execute(self, sql: str, params: Any = ()) -> Any:
        rows = self._conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        self.plans.append(" | ".join(r[3] for r in rows))
        return self._conn.execute(sql, params)


async def test_reads_are_index_seeks_not_scans(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        feed = await _feed(node)
        items = await feed.add_many(list(range(10)))
        store = node.store
        assert isinstance(store, SqliteStore)
        state = open_view_state(store, "feed", feed.cid)
        recorder = _PlanRecorder(store)
        state._s = recorder
        view = FeedView(state)
        assert view.get(items[3].id) == items[3]
        assert list(view.items(gt=items[1], lte=items[8], reverse=True, limit=3)) == items[8:5:-1]
        get_plan, range_plan = recorder.plans
        assert "SEARCH b USING COVERING INDEX sqlite_autoindex_blocks_1 (cid=?)" in get_plan
        assert "SEARCH e USING INDEX entries_block (block=? AND log=?)" in get_plan
        key = "(log=? AND clock=? AND writer=? AND cid=? AND idx=?)"
        assert f"SEARCH f USING PRIMARY KEY {key}" in get_plan
        assert "USING PRIMARY KEY (log=? AND (clock,writer,cid,idx)>" in range_plan
        assert all("SCAN" not in p and "TEMP B-TREE" not in p for p in recorder.plans)


async def test_an_earlier_versions_item_index_is_dropped_and_ids_still_found(
    tmp_path: Path,
) -> None:
    # Earlier versions kept view_feed_cid(log, cid, idx); its random keys made every
    # commit rewrite most of its pages. A store that has it loses it on open, and every
    # item, in two feeds of one file, is still found by id (through the log's indexes).
    async with orbitstore.open_node(tmp_path) as node:
        one, two = await _feed(node, "one"), await _feed(node, "two")
        first = await one.add_many(list(range(5)))
        second = await two.add_many([{"n": i} for i in range(3)])
        store = node.store
        assert isinstance(store, SqliteStore)
        store.connection.execute("CREATE INDEX view_feed_cid ON view_feed(log, cid, idx)")
    async with orbitstore.open_node(tmp_path) as node:
        one, two = await _feed(node, "one"), await _feed(node, "two")
        store = node.store
        assert isinstance(store, SqliteStore)
        names = {r[0] for r in store.connection.execute("SELECT name FROM sqlite_master")}
        assert "view_feed_cid" not in names
        assert [one.get(item.id) for item in first] == first
        assert [two.get(item.id) for item in second] == second
        assert one.get(second[0].id) is None  # the other feed's item is not this one's
