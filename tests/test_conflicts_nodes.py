"""The todo scenario end to end: two nodes edit one todo while partitioned; the title
that lost is visible as a conflict in the Python API, in SQL and in change events, on
both nodes; a merge write clears it everywhere."""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
import trio

import orbitstore
from orbitstore.core.access import StaticAccess
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.errors import OrbitstoreError
from orbitstore.node import NodeConfig, open_node
from orbitstore.node.config import ReplicationConfig
from orbitstore.node.database import Database
from orbitstore.node.documents import Documents
from orbitstore.node.keyvalue import KeyValue
from orbitstore.storage.base import NodeStore
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.testing.network import MemoryNetwork
from orbitstore.testing.pairs import NodePair, open_memory_pair
from orbitstore.views.base import Change, Lagged

CONFIG = NodeConfig(timestamps=False, replication=ReplicationConfig(idle_timeout=5.0))


def _manifest(name: str, type_: str, meta: dict[str, Any] | None = None) -> Manifest:
    return Manifest(name=name, type=type_, access=StaticAccess.of(["*"]), meta=meta or {})


async def _wait(db: Database, done: Callable[[], bool], seen: list[Change]) -> None:
    """Wait (with a deadline) until ``done()``, re-checking after every change of ``db``;
    the changes are appended to ``seen``."""
    with trio.fail_after(30):
        async with db.subscribe() as changes:
            while not done():
                item = await changes.__anext__()
                assert not isinstance(item, Lagged)
                seen.append(item)


def _pair(stores: list[NodeStore]) -> AbstractAsyncContextManager[NodePair]:
    return open_memory_pair(
        network=MemoryNetwork(rng=random.Random(5), latency=(0.0, 0.002)),
        identities=(Identity(b"\x0a" * 32), Identity(b"\x0b" * 32)),
        stores=stores,
        config=CONFIG,
    )


async def _concurrent_edits(
    pair: NodePair,
    dbs: list[Any],
    write: Callable[[Any, str], Any],
) -> tuple[list[Change], list[Change]]:
    """Partition, write one title on each side, heal; returns the changes each side saw
    until it held both writes."""
    net = pair.network
    assert net is not None
    net.partition({"a"}, {"b"})
    ea = await write(dbs[0], "Buy oat milk")
    eb = await write(dbs[1], "Buy almond milk")
    net.heal()
    seen: tuple[list[Change], list[Change]] = ([], [])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_wait, dbs[0], lambda: dbs[0].get_entry(eb.cid) is not None, seen[0])
        nursery.start_soon(_wait, dbs[1], lambda: dbs[1].get_entry(ea.cid) is not None, seen[1])
        await trio.lowlevel.checkpoint()
        with contextlib.suppress(OrbitstoreError):
            await pair.connect()
    return seen


def _titles(conflicts: tuple[orbitstore.Conflict, ...]) -> list[Any]:
    return [c.value for c in conflicts]


@pytest.mark.parametrize("merge", ["field", "document"])
async def test_todo_documents_on_the_memory_network(merge: str, tmp_path: Path) -> None:
    cid, block = _manifest("todos", "documents", {"merge": merge}).to_block()
    # SQLite files: SQL reads them through a second, read-only connection
    stores: list[NodeStore] = [SqliteStore(tmp_path / f"{n}.sqlite") for n in "ab"]
    for s in stores:
        s.blocks.put(cid, block)
    try:
        async with _pair(stores) as pair:
            dbs = [await n.open(f"/orbitstore/{cid}", type="documents") for n in pair.nodes]
            assert all(isinstance(d, Documents) for d in dbs)
            first = await dbs[0].put({"_id": "t1", "title": "Buy milk", "done": False})
            await pair.connect()
            await _wait(dbs[1], lambda: dbs[1].get_entry(first.cid) is not None, [])

            async def retitle(db: Documents, title: str) -> Any:
                return await db.patch("t1", set={"title": title})

            seen = await _concurrent_edits(pair, dbs, retitle)
            winner = dbs[0].get("t1")["title"]
            loser = ({"Buy oat milk", "Buy almond milk"} - {winner}).pop()
            lost_doc = {"_id": "t1", "title": loser, "done": False}
            for db, changes in zip(dbs, seen, strict=True):
                assert db.get("t1") == {"_id": "t1", "title": winner, "done": False}
                (conflict,) = db.conflicts("t1")
                if merge == "field":
                    assert (conflict.field, conflict.value) == ("title", loser)
                else:
                    assert (conflict.field, conflict.value) == (None, lost_doc)
                assert not conflict.deleted
                assert db.get_with_conflicts("t1") == (db.get("t1"), (conflict,))
                assert db.conflicted() == ["t1"]
                # the change that brought the other side's write carries the conflict
                assert changes[-1].key == "t1" and changes[-1].conflicts == (conflict,)
                rows = db.query(
                    "SELECT id, _conflicts FROM todos WHERE _conflicts IS NOT NULL"
                ).dicts()
                assert [r["id"] for r in rows] == ["t1"]
                (item,) = rows[0]["_conflicts"]
                assert item["value"] == conflict.value and item.get("field") == conflict.field
                assert item["cid"] == str(conflict.cid) and item["writer"] == conflict.writer
                assert "_conflicts" not in db.query("SELECT * FROM todos").columns
                n = db.query("SELECT json_array_length(_conflicts) AS n FROM todos").rows
                assert n == ((1,),)
                if merge == "field":
                    sql = "SELECT id FROM todos WHERE _conflicts->>'$[0].field' = 'title'"
                    assert db.query(sql).rows == (("t1",),)

            # the application resolves: one write that has seen both clears the conflict
            merged = await dbs[1].patch("t1", set={"title": "Buy oat and almond milk"})
            changes: list[Change] = []
            await _wait(dbs[0], lambda: dbs[0].get_entry(merged.cid) is not None, changes)
            for db in dbs:
                assert db.conflicts("t1") == ()
                assert db.get("t1")["title"] == "Buy oat and almond milk"
                assert db.query("SELECT id FROM todos WHERE _conflicts IS NOT NULL").rows == ()
            assert changes[-1].kind == "put" and changes[-1].conflicts == ()
    finally:
        for s in stores:
            s.close()


async def _kv_scenario(stores: list[NodeStore], cid: Any) -> None:
    async with _pair(stores) as pair:
        dbs = [await n.open(f"/orbitstore/{cid}", type="keyvalue") for n in pair.nodes]
        assert all(isinstance(d, KeyValue) for d in dbs)
        first = await dbs[0].put("todo/1/title", "Buy milk")
        await pair.connect()
        await _wait(dbs[1], lambda: dbs[1].get_entry(first.cid) is not None, [])

        async def retitle(db: KeyValue, title: str) -> Any:
            return await db.put("todo/1/title", title)

        seen = await _concurrent_edits(pair, dbs, retitle)
        winner = dbs[0].get("todo/1/title")
        loser = ({"Buy oat milk", "Buy almond milk"} - {winner}).pop()
        for db, changes in zip(dbs, seen, strict=True):
            assert db.get("todo/1/title") == winner
            assert _titles(db.conflicts("todo/1/title")) == [loser]
            assert changes[-1].conflicts == db.conflicts("todo/1/title")
            # the side that won sees the other write arrive as a conflict; the other
            # side sees its value replaced, with its own write as the conflict
            came = db.get_entry(changes[-1].cid)
            assert came is not None
            assert changes[-1].kind == ("conflict" if came.payload["value"] == loser else "put")
            (row,) = db.query("SELECT key, value, _conflicts FROM todo").dicts()
            assert row["value"] == winner and [c["value"] for c in row["_conflicts"]] == [loser]
        # the loser's side resolves by writing the winner again: the conflict clears
        loser_writer = dbs[0].conflicts("todo/1/title")[0].writer
        side = 0 if pair.a.identity.id == loser_writer else 1
        before = dbs[0].heads
        merged = await dbs[side].put("todo/1/title", winner)
        other = dbs[1 - side]
        changes: list[Change] = []
        await _wait(other, lambda: other.get_entry(merged.cid) is not None, changes)
        assert [c.kind for c in changes][-1:] == ["conflict"] and changes[-1].conflicts == ()
        sql = "SELECT key FROM todo WHERE _conflicts IS NOT NULL"
        for db in dbs:
            assert db.conflicts("todo/1/title") == () and db.get("todo/1/title") == winner
            assert db.query(sql).rows == () and db.conflicted() == []
            # time travel: as of the heads before the merge, the conflict is there
            (row,) = db.query("SELECT _conflicts FROM todo", as_of=before).rows
            assert [c["value"] for c in row[0]] == [loser]


async def test_todo_keyvalue_on_real_sqlite_files_survives_reopen(tmp_path: Path) -> None:
    cid, block = _manifest("todo", "keyvalue").to_block()
    paths = [tmp_path / "a.sqlite", tmp_path / "b.sqlite"]
    stores: list[NodeStore] = [SqliteStore(p) for p in paths]
    for s in stores:
        s.blocks.put(cid, block)
    try:
        await _kv_scenario(stores, cid)
    finally:
        for s in stores:
            s.close()
    # persisted: reopened stores need no replay and still agree
    for p in paths:
        with SqliteStore(p) as store:
            async with open_node(store=store, identity=Identity(b"\x0c" * 32)) as node:
                kv = await node.open(f"/orbitstore/{cid}", type="keyvalue")
                assert isinstance(kv, KeyValue)
                assert kv.statistics().reapplied_on_open == 0
                assert kv.conflicts("todo/1/title") == ()


async def test_old_view_tables_are_migrated_by_a_rebuild(tmp_path: Path) -> None:
    """A store written before conflicts were tracked: the view tables lack the new
    columns. Opening rebuilds the views from the log once, with the conflicts."""
    async with orbitstore.open_node(tmp_path) as node:
        kv = await node.open("kv", type="keyvalue", write=["*"])
        docs = await node.open("docs", type="documents")
        assert isinstance(kv, KeyValue) and isinstance(docs, Documents)
        await kv.put("k", 1)
        await docs.put({"_id": "d", "n": 1})
        other = Identity(b"\x0d" * 32)  # a concurrent write by another writer
        async with open_node(identity=other) as peer:
            peer.store.blocks.put(kv.cid, kv.manifest.to_block()[1])
            remote = await peer.open(kv.address, type="keyvalue")
            assert isinstance(remote, KeyValue)
            entry = await remote.put("k", 2)
        await kv.receive_entries([entry])
        expected = kv.conflicts("k")
        assert len(expected) == 1
    conn = sqlite3.connect(tmp_path / "orbitstore.sqlite")
    conn.execute("DROP INDEX view_kv_conflicted")
    conn.execute("DROP INDEX view_documents_conflicted")
    for table in ("view_kv", "view_documents"):
        for column in ("arrival", "conflicts", "conflicts_json"):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.execute("DROP TABLE view_causal")
    conn.execute("DROP TABLE view_causal_frontier")
    conn.commit()
    conn.close()
    async with orbitstore.open_node(tmp_path) as node:
        kv = await node.open("kv", type="keyvalue")
        docs = await node.open("docs", type="documents")
        assert isinstance(kv, KeyValue) and isinstance(docs, Documents)
        assert kv.statistics().reapplied_on_open == 2
        assert kv.conflicts("k") == expected and kv.get("k") in (1, 2)
        assert docs.get("d") == {"_id": "d", "n": 1} and docs.statistics().reapplied_on_open == 1
        rows = kv.query("SELECT key, _conflicts FROM kv").dicts()
        assert json.dumps(rows[0]["_conflicts"]) != "null"
    async with orbitstore.open_node(tmp_path) as node:  # and once only
        kv = await node.open("kv", type="keyvalue")
        assert kv.statistics().reapplied_on_open == 0


async def test_a_node_with_conflicts_checks_ok(tmp_path: Path) -> None:
    """``node.check()`` rebuilds every view from its log and compares: conflicts (values
    read back from the log) and the node-local numbering must not look like damage."""
    async with orbitstore.open_node(tmp_path) as node:
        kv = await node.open("kv", type="keyvalue", write=["*"])
        docs = await node.open("docs", type="documents", write=["*"], meta={"merge": "field"})
        assert isinstance(kv, KeyValue) and isinstance(docs, Documents)
        await kv.put("k", 1)
        await docs.put({"_id": "d", "n": 1})
        async with open_node(identity=Identity(b"\x0e" * 32)) as peer:
            for db in (kv, docs):
                peer.store.blocks.put(db.cid, db.manifest.to_block()[1])
            rkv = await peer.open(kv.address, type="keyvalue")
            rdocs = await peer.open(docs.address, type="documents")
            assert isinstance(rkv, KeyValue) and isinstance(rdocs, Documents)
            await rdocs.receive_entries(list(docs.entries()))
            mine = [await rkv.put("k", 2), await rdocs.patch("d", set={"n": 2})]
        await docs.patch("d", set={"n": 3})  # concurrent with the peer's patch
        await kv.receive_entries(mine[:1])
        await docs.receive_entries(mine[1:])
        assert kv.conflicts("k") and docs.conflicts("d")
        assert kv.conflicted() == ["k"] and docs.conflicted() == ["d"]
    async with orbitstore.open_node(tmp_path) as node:
        report = node.check()
        assert report.problems == (), report.problems
