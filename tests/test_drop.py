"""``node.drop``: close, leave replication, remove every row; typed error if unknown."""

from __future__ import annotations

from pathlib import Path

import pytest

from orbitstore.errors import NotFoundError
from orbitstore.node import open_node
from orbitstore.node.documents import Documents
from orbitstore.node.keyvalue import KeyValue
from orbitstore.storage.sqlite import SqliteStore


def _rows(store: SqliteStore) -> dict[str, int]:
    conn = store.connection
    tables = [
        r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    ]
    counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    return {t: n for t, n in counts.items() if n}  # view tables are made on first use


async def test_drop_removes_every_row_of_the_database_and_keeps_the_others(
    tmp_path: Path,
) -> None:
    async with open_node(tmp_path) as node:
        keep = await node.open("keep", type="keyvalue")
        assert isinstance(keep, KeyValue)
        await keep.put("a", 1)
        store = node.store
        assert isinstance(store, SqliteStore)
        before = _rows(store)
        people = await node.open("people", type="documents")
        assert isinstance(people, Documents)
        await people.create_index("age")
        await people.put_many([{"_id": f"p{i}", "age": i} for i in range(20)])
        await people.put({"_id": "p1", "age": 99})
        address = people.address
        report = await node.drop("people")
        assert (report.address, report.names, report.was_open) == (address, ("people",), True)
        assert report.entries == 2
        assert people.closed and "people" not in node.databases()
        assert _rows(store) == before  # nothing of it is left, the other database is whole
        indexes = store.connection.execute(
            "SELECT name FROM sqlite_master WHERE type='index'"
            " AND name LIKE 'view~_documents~_%~_%' ESCAPE '~'"
        ).fetchall()
        assert indexes == []
        with pytest.raises(NotFoundError):
            node.manifest(address)
        with pytest.raises(NotFoundError):
            await node.drop("people")
        with pytest.raises(NotFoundError):
            await node.drop(address)
        assert keep.get("a") == 1
        # The name can be used again, for a new (empty) database.
        again = await node.open("people", type="documents")
        assert isinstance(again, Documents) and again.count() == 0 and again.indexes() == []
        assert again.address == address  # same manifest, so the same address
    async with open_node(tmp_path) as node:
        reopened = await node.open("keep", type="keyvalue")
        assert isinstance(reopened, KeyValue) and reopened.get("a") == 1


async def test_drop_on_a_memory_node_and_of_a_closed_database() -> None:
    async with open_node() as node:
        kv = await node.open("kv", type="keyvalue")
        assert isinstance(kv, KeyValue)
        await kv.put("a", 1)
        await kv.close()
        report = await node.drop(kv.address)
        assert report.was_open is False and report.entries == 1 and report.names == ("kv",)
        assert node.databases() == {}
        fresh = await node.open("kv", type="keyvalue")
        assert isinstance(fresh, KeyValue) and fresh.get("a") is None and len(fresh) == 0
        with pytest.raises(NotFoundError):
            await node.drop("nope")


async def test_drop_of_an_encrypted_database_removes_its_sealed_keys(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        keep = await node.open("keep", type="keyvalue")
        await keep.put("a", 1)  # type: ignore[attr-defined]
    async with open_node(tmp_path) as node:
        store = node.store
        assert isinstance(store, SqliteStore)
        before = _rows(store)
        secret = await node.open("secret", type="keyvalue", encrypted=True)
        await secret.put("k", "v")  # type: ignore[attr-defined]
        await secret.aclose()  # the view's checkpoint and the sealed keys beside it
        assert _rows(store).get("db_keys", 0) == 1
        await node.drop("secret")
        assert _rows(store) == before
