"""Every storage backend passes the conformance battery; SQLite-specific checks follow."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from orbitstore.core.entry import Entry
from orbitstore.errors import StorageError
from orbitstore.storage.base import NodeStore
from orbitstore.storage.memory import MemoryStore
from orbitstore.storage.sqlite import SCHEMA_VERSION, SqliteStore
from orbitstore.testing.storage_conformance import (
    NodeStoreConformance,
    make_entries,
    manifest_cid,
    total_order,
)


class TestMemoryStore(NodeStoreConformance):
    atomic_transactions = True

    @pytest.fixture
    def store(self) -> Iterator[NodeStore]:
        s = MemoryStore()
        yield s
        s.close()


class TestSqliteStore(NodeStoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[NodeStore]:
        s = SqliteStore(tmp_path / "node.sqlite")
        yield s
        s.close()


def test_sqlite_data_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    db = manifest_cid()
    entries = make_entries(db, 30, seed=3)
    named = {p for e in entries for p in e.next}
    heads = {e.cid: e.clock for e in entries if e.cid not in named}
    with SqliteStore(path) as store:
        log = store.log_store(db)
        log.add_entries(entries)
        log.set_heads(heads)
        store.set_name("kept", db)
        store.blocks.put(*_raw_block())
    with SqliteStore(path) as store:
        log = store.log_store(db)
        assert log.count() == 30
        assert log.get_heads() == heads
        assert [c for c, _ in log.iter_entries()] == total_order(entries)
        assert store.get_name("kept") == db
        assert store.databases() == [db]
        assert store.blocks.get(_raw_block()[0]) == _raw_block()[1]
        for cid, block in log.iter_entries():
            assert Entry.from_block(cid, block).cid == cid


def _raw_block() -> tuple[object, bytes]:
    from orbitstore.core.cid import RAW, Cid

    data = b"raw block"
    return Cid.for_block(data, RAW), data


def test_sqlite_schema_version_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value=? WHERE key='schema'", (SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(StorageError, match=f"schema version {SCHEMA_VERSION + 1}"):
        SqliteStore(path)


def test_sqlite_malformed_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value='one' WHERE key='schema'")
    conn.close()
    with pytest.raises(StorageError):
        SqliteStore(path)


@pytest.mark.parametrize(
    "content",
    [b"this is not a database\n" * 100, b"SQLite format 3\x00" + b"\xff" * 4000],
    ids=["text", "bad header"],
)
def test_sqlite_refuses_a_file_that_is_not_sqlite(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "node.sqlite"
    path.write_bytes(content)
    with pytest.raises(StorageError) as info:
        SqliteStore(path)
    assert not isinstance(info.value, sqlite3.Error)
    assert path.read_bytes() == content  # and it was left alone


def test_sqlite_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        SqliteStore(tmp_path)


def test_sqlite_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError):
        SqliteStore(tmp_path / "file" / "node.sqlite")


def test_sqlite_batched_clock_lookup_does_not_scan_the_log(tmp_path: Path) -> None:
    """get_clocks looks each CID up by index; it must not scan every entry of the log
    (that made a 100,000-entry catch-up quadratic)."""
    from orbitstore.core.cid import Cid

    db = manifest_cid()
    entries = make_entries(db, 40, seed=5)
    with SqliteStore(tmp_path / "node.sqlite") as store:
        log = store.log_store(db)
        log.add_entries(entries)
        conn = store.connection
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        asked = [e.cid for e in entries] + [Cid.for_block(i.to_bytes(2, "big")) for i in range(460)]
        try:
            found = log.get_clocks(asked)
        finally:
            conn.set_trace_callback(None)
        assert found == {e.cid: e.clock for e in entries}
        select = next(s for s in statements if s.lstrip().upper().startswith("SELECT"))
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {select}")]
        assert plan[0].startswith("SEARCH b USING COVERING INDEX"), plan
        assert not any(step.startswith("SCAN") or "(log=?)" in step for step in plan), plan
