"""Test and benchmark kit: the view tables of keyvalue, feed, documents and counter,
created and filled directly in a :class:`SqliteStore` exactly as the views lay them out,
so the query layer can be exercised without writing entries."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from orbitstore.core.cid import Cid
from orbitstore.core.codec import encode
from orbitstore.node.query import QueryService
from orbitstore.query.catalog import Catalog, Source
from orbitstore.storage.sqlite import SqliteStore

TABLES = """
CREATE TABLE IF NOT EXISTS view_kv(log INTEGER, key TEXT, value BLOB, json TEXT,
    clock INTEGER, writer TEXT, cid BLOB, idx INTEGER, deleted INTEGER,
    arrival INTEGER NOT NULL DEFAULT 0, conflicts BLOB, conflicts_json TEXT,
    PRIMARY KEY(log, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS view_feed(log INTEGER, clock INTEGER, writer TEXT, cid BLOB,
    idx INTEGER, ts INTEGER, value BLOB, json TEXT,
    PRIMARY KEY(log, clock, writer, cid, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS view_documents(log INTEGER, id TEXT, doc TEXT, value BLOB,
    clock INTEGER, writer TEXT, cid BLOB, deleted INTEGER,
    arrival INTEGER NOT NULL DEFAULT 0, conflicts BLOB, conflicts_json TEXT,
    PRIMARY KEY(log, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS view_counter(log INTEGER PRIMARY KEY, total TEXT NOT NULL);
"""

WRITER = "did:key:z6MkexampleWriter"


def fake_cid(n: int | str) -> Cid:
    return Cid.for_block(encode(n))


class Tables:
    """One store with the view tables, and helpers to fill them like the views would."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.conn = store.connection
        self.conn.executescript(TABLES)
        self.sources: dict[str, Source] = {}

    def source(self, name: str, type_name: str) -> Source:
        log = self.store.log_store(fake_cid(f"db:{name}")).log_id
        src = self.sources[name] = Source(name, type_name, log)
        return src

    def catalog(self, service: QueryService, *names: str) -> Catalog:
        """The catalog a node would build (with the indexes declared now)."""
        return Catalog.of(
            (n, service.table_source(n, s.type_name, s.log_id))
            for n, s in self.sources.items()
            if not names or n in names
        )

    def put_docs(self, name: str, docs: Iterable[dict[str, Any]], *, key: str = "_id") -> None:
        log = self.sources[name].log_id
        rows = []
        for i, doc in enumerate(docs):
            rows.append(
                (log, str(doc[key]), json.dumps(doc), encode(doc), i + 1, WRITER,
                 bytes(fake_cid(i)), 0)
            )  # fmt: skip
        with self.store.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO view_documents(log, id, doc, value, clock, writer, cid,"
                " deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def delete_doc(self, name: str, doc_id: str) -> None:
        with self.store.transaction():
            self.conn.execute(
                "UPDATE view_documents SET deleted=1, doc=NULL, value=NULL WHERE log=? AND id=?",
                (self.sources[name].log_id, doc_id),
            )

    def put_kv(self, name: str, items: dict[str, Any], *, deleted: Iterable[str] = ()) -> None:
        log = self.sources[name].log_id
        rows: list[tuple[Any, ...]] = [
            (log, k, encode(v), json.dumps(v), i + 1, WRITER, bytes(fake_cid(k)), 0, 0)
            for i, (k, v) in enumerate(items.items())
        ]
        rows += [(log, k, None, None, 99, WRITER, bytes(fake_cid(k)), 0, 1) for k in deleted]
        with self.store.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO view_kv(log, key, value, json, clock, writer, cid, idx,"
                " deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def put_feed(self, name: str, values: Iterable[Any]) -> None:
        log = self.sources[name].log_id
        rows = [
            (log, i + 1, WRITER, bytes(fake_cid(i)), 0, 1_700_000_000_000 + i, encode(v),
             json.dumps(v))
            for i, v in enumerate(values)
        ]  # fmt: skip
        with self.store.transaction():
            self.conn.executemany("INSERT INTO view_feed VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def index(self, name: str, path: str) -> None:
        """Declare an index like the documents view does."""
        safe = path.replace(".", "_")
        with self.store.transaction():
            self.conn.execute(
                f"CREATE INDEX IF NOT EXISTS view_documents_{safe} ON"
                f" view_documents(log, json_extract(doc, '$.{path}'))"
            )

    def snapshot(self) -> list[Any]:
        """Every row of every table (to prove a refused query changed nothing)."""
        out: list[Any] = []
        names = self.conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        out.append(names)
        for name, _ in names:
            if not name.startswith("sqlite_") and _ and _.upper().startswith("CREATE TABLE"):
                out.append(self.conn.execute(f'SELECT * FROM "{name}" ORDER BY 1').fetchall())
        return out
