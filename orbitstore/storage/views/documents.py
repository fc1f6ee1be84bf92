"""Documents state: the materialized table, field registers and declared indexes.

SQLite schema (all keyed by the node-local log id)::

    view_documents(log, id, doc, value, clock, writer, cid, deleted, arrival, conflicts,
                   conflicts_json)
        PRIMARY KEY (log, id) WITHOUT ROWID. ``doc`` is the document as JSON text (NULL
        when deleted) for ``json_extract``; ``value`` its DAG-CBOR; (clock, writer, cid)
        the greatest op that still affects it; ``deleted`` 1 for a tombstone.
        ``arrival``: the winner's arrival number (orbitstore.views.causal); ``conflicts``:
        DAG-CBOR bookkeeping of the maximal writes (document mode: the losing members;
        field mode: the maximal clears and per-field members), NULL if none;
        ``conflicts_json``: the losing values as JSON for SQL (``_conflicts``), NULL if none
    view_document_fields(log, id, field, clock, writer, cid, op, present, value)
        field mode only: one last-writer-wins register per top-level field
    view_document_clears(log, id, clock, writer, cid, op)
        field mode only: the latest put or delete of each document
    view_document_indexes(log, path)
        node-local index declarations; each is an expression index
        ``ON view_documents(log, json_extract(doc, '$.<path>'))``
    view_causal, view_causal_frontier
        see storage/views/causal.py

Tables written before conflicts were tracked (no ``arrival`` column) are migrated by
emptying them (index declarations are kept): every documents database is rebuilt from its
log once, on its next open.

The JSON column is DAG-JSON-like: compact, keys sorted, bytes as
``{"/": {"bytes": <base64, no padding>}}`` and links as ``{"/": <cid>}``.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from typing import Any, Final, TypeAlias

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.dagjson import to_json
from orbitstore.core.order import OrderKey
from orbitstore.errors import DecodeError, InvalidValueError, StorageCorruptedError, StorageError
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.storage.views.causal import (
    MemoryCausal,
    SqliteCausal,
    create_causal_tables,
    has_column,
    migrate,
)

# The same shapes as in orbitstore.views.documents (which storage must not import).
OpKey: TypeAlias = tuple[int, str, bytes, int]
FieldRegisters: TypeAlias = dict[str, tuple[OpKey, bool, Any]]
Row: TypeAlias = tuple[str, OrderKey, bytes | None]
# (order key, value, arrival, conflicts bookkeeping, conflicts JSON)
Register: TypeAlias = tuple[OrderKey, bytes | None, int, bytes | None, str | None]
# (id, order key, value, doc, arrival, conflicts bookkeeping, conflicts JSON)
RowWrite: TypeAlias = tuple[
    str, OrderKey, bytes | None, dict[str, Any] | None, int, bytes | None, str | None
]
_INSERT: Final = (
    "INSERT OR REPLACE INTO view_documents(log, id, doc, value, clock, writer, cid, deleted,"
    " arrival, conflicts, conflicts_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# Paths are spliced into SQL (index expressions cannot take parameters), so storage checks
# them itself, whatever its caller checked.
_SAFE_PATH: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_CHUNK: Final = 500  # ids per IN (...) query; SQLite allows 32766 parameters
_OPS: Final = frozenset({"=", "!=", "<", "<=", ">", ">="})


def _check_path(path: str) -> str:
    if not isinstance(path, str) or not _SAFE_PATH.match(path):
        raise InvalidValueError(f"not a field path: {path!r:.80}")
    return path


def _check_where(path: str, op: str) -> None:
    _check_path(path)
    if op not in _OPS:
        raise InvalidValueError(f"where: operator {op!r:.20} is not one of {sorted(_OPS)}")


def _index_name(log: int, path: str) -> str:
    return f'"view_documents_{log}_{path}"'


def _expr(path: str) -> str:
    return f"json_extract(doc, '$.{path}')"  # path is checked: letters, digits, '_', '.'


# --- SQLite -----------------------------------------------------------------------------


def _row_params(log: int, row: RowWrite) -> tuple[Any, ...]:
    doc_id, key, value, doc, arrival, conflicts, conflicts_json = row
    return (
        log,
        doc_id,
        None if doc is None else to_json(doc),
        value,
        *key,
        int(value is None),
        arrival,
        conflicts,
        conflicts_json,
    )


class SqliteDocumentsState(SqliteCausal):
    @staticmethod
    def create_tables(conn: sqlite3.Connection) -> None:
        old = has_column(conn, "view_documents", "arrival") is False
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS view_documents(
                log INTEGER NOT NULL, id TEXT NOT NULL, doc TEXT, value BLOB,
                clock INTEGER NOT NULL, writer TEXT NOT NULL, cid BLOB NOT NULL,
                deleted INTEGER NOT NULL, arrival INTEGER NOT NULL DEFAULT 0,
                conflicts BLOB, conflicts_json TEXT, PRIMARY KEY(log, id)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS view_document_fields(
                log INTEGER NOT NULL, id TEXT NOT NULL, field TEXT NOT NULL,
                clock INTEGER NOT NULL, writer TEXT NOT NULL, cid BLOB NOT NULL,
                op INTEGER NOT NULL, present INTEGER NOT NULL, value BLOB,
                PRIMARY KEY(log, id, field)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS view_document_clears(
                log INTEGER NOT NULL, id TEXT NOT NULL,
                clock INTEGER NOT NULL, writer TEXT NOT NULL, cid BLOB NOT NULL,
                op INTEGER NOT NULL, PRIMARY KEY(log, id)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS view_document_indexes(
                log INTEGER NOT NULL, path TEXT NOT NULL, PRIMARY KEY(log, path)) WITHOUT ROWID;
            """
        )
        create_causal_tables(conn)
        if old:
            migrate(
                conn,
                view="documents",
                alter=[
                    "ALTER TABLE view_documents ADD COLUMN arrival INTEGER NOT NULL DEFAULT 0",
                    "ALTER TABLE view_documents ADD COLUMN conflicts BLOB",
                    "ALTER TABLE view_documents ADD COLUMN conflicts_json TEXT",
                ],
                reset=["view_documents", "view_document_fields", "view_document_clears"],
            )
        # Rows with conflicts only (rare): listing them, in Python or SQL, is a short scan.
        conn.execute(
            "CREATE INDEX IF NOT EXISTS view_documents_conflicted ON view_documents(log, id)"
            " WHERE conflicts_json IS NOT NULL"
        )

    def __init__(self, store: SqliteStore, log_id: int) -> None:
        self._s = store
        self._log = log_id

    # -- rows -------------------------------------------------------------------------

    def get_row(self, doc_id: str) -> tuple[OrderKey, bytes | None] | None:
        r = self._s.connection.execute(
            "SELECT clock, writer, cid, value FROM view_documents WHERE log=? AND id=?",
            (self._log, doc_id),
        ).fetchone()
        if r is None:
            return None
        return (r[0], r[1], bytes(r[2])), None if r[3] is None else bytes(r[3])

    def get_registers(self, doc_ids: Iterable[str]) -> dict[str, Register]:
        ids = list(doc_ids)
        found: dict[str, Register] = {}
        conn = self._s.connection
        for lo in range(0, len(ids), _CHUNK):
            chunk = ids[lo : lo + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for i, clock, writer, cid, value, arrival, blob, text in conn.execute(
                "SELECT id, clock, writer, cid, value, arrival, conflicts, conflicts_json"
                f" FROM view_documents WHERE log=? AND id IN ({marks})",
                (self._log, *chunk),
            ):
                found[i] = (
                    (clock, writer, bytes(cid)),
                    None if value is None else bytes(value),
                    int(arrival),
                    None if blob is None else bytes(blob),
                    text,
                )
        return found

    def set_rows(self, rows: Iterable[RowWrite]) -> None:
        self._s.connection.executemany(_INSERT, [_row_params(self._log, r) for r in rows])

    def dump_rows(self) -> list[RowWrite]:
        out: list[RowWrite] = []
        for i, clock, writer, cid, value, arrival, raw, text in self._s.connection.execute(
            "SELECT id, clock, writer, cid, value, arrival, conflicts, conflicts_json"
            " FROM view_documents WHERE log=? ORDER BY id",
            (self._log,),
        ):
            data = None if value is None else bytes(value)
            doc = None if data is None else _decode(data)
            blob = None if raw is None else bytes(raw)
            out.append((i, (clock, writer, bytes(cid)), data, doc, int(arrival), blob, text))
        return out

    def conflicted(self, limit: int) -> list[str]:
        rows = self._s.connection.execute(
            "SELECT id FROM view_documents WHERE log=? AND conflicts_json IS NOT NULL"
            " ORDER BY id LIMIT ?",
            (self._log, limit),
        )
        return [str(r[0]) for r in rows]

    def set_conflicts(self, doc_id: str, conflicts: bytes | None, text: str | None) -> None:
        self._s.connection.execute(
            "UPDATE view_documents SET conflicts=?, conflicts_json=? WHERE log=? AND id=?",
            (conflicts, text, self._log, doc_id),
        )

    # -- field registers ----------------------------------------------------------------

    def get_fields(self, doc_id: str) -> tuple[OpKey | None, FieldRegisters]:
        conn = self._s.connection
        c = conn.execute(
            "SELECT clock, writer, cid, op FROM view_document_clears WHERE log=? AND id=?",
            (self._log, doc_id),
        ).fetchone()
        clear: OpKey | None = None if c is None else (c[0], c[1], bytes(c[2]), c[3])
        fields: FieldRegisters = {}
        for name, clock, writer, cid, op, present, value in conn.execute(
            "SELECT field, clock, writer, cid, op, present, value FROM view_document_fields"
            " WHERE log=? AND id=?",
            (self._log, doc_id),
        ):
            key: OpKey = (clock, writer, bytes(cid), op)
            v = codec.decode(bytes(value)) if present else None
            fields[name] = (key, bool(present), v)
        return clear, fields

    def set_fields(self, doc_id: str, clear: OpKey | None, fields: FieldRegisters) -> None:
        conn = self._s.connection
        if clear is not None:
            conn.execute(
                "INSERT OR REPLACE INTO view_document_clears(log, id, clock, writer, cid, op)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (self._log, doc_id, *clear),
            )
        conn.execute("DELETE FROM view_document_fields WHERE log=? AND id=?", (self._log, doc_id))
        conn.executemany(
            "INSERT INTO view_document_fields"
            "(log, id, field, clock, writer, cid, op, present, value)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    self._log,
                    doc_id,
                    name,
                    *key,
                    int(present),
                    codec.encode(v) if present else None,
                )
                for name, (key, present, v) in fields.items()
            ],
        )

    # -- reads ----------------------------------------------------------------------------

    def get(self, doc_id: str) -> dict[str, Any] | None:
        r = self._s.connection.execute(
            "SELECT value FROM view_documents WHERE log=? AND id=? AND deleted=0",
            (self._log, doc_id),
        ).fetchone()
        return None if r is None else _decode(r[0])

    def all(self, *, limit: int | None) -> list[dict[str, Any]]:
        rows = self._s.connection.execute(
            "SELECT value FROM view_documents WHERE log=? AND deleted=0 ORDER BY id LIMIT ?",
            (self._log, -1 if limit is None else limit),
        )
        return [_decode(r[0]) for r in rows]

    def count(self) -> int:
        r = self._s.connection.execute(
            "SELECT count(*) FROM view_documents WHERE log=? AND deleted=0", (self._log,)
        ).fetchone()
        return int(r[0])

    def rows(self) -> list[Row]:
        rows = self._s.connection.execute(
            "SELECT id, clock, writer, cid, value FROM view_documents WHERE log=? ORDER BY id",
            (self._log,),
        )
        return [(i, (c, w, bytes(k)), None if v is None else bytes(v)) for i, c, w, k, v in rows]

    def where_sql(self, path: str, op: str) -> str:
        """The SQL that :meth:`where` runs (for ``EXPLAIN QUERY PLAN``).

        A declared index is named with ``INDEXED BY``: without statistics (a new
        database, before ``PRAGMA optimize`` has run) SQLite's planner prefers the primary
        key for an equality on an expression. ``!=`` cannot use an index at all.
        """
        _check_where(path, op)
        hint = ""
        if op != "!=" and path in self.indexes():
            hint = f" INDEXED BY {_index_name(self._log, path)}"
        return (
            f"SELECT value FROM view_documents{hint} WHERE log=? AND {_expr(path)} {op} ?"
            f" AND deleted=0 ORDER BY {_expr(path)}, id LIMIT ?"
        )

    def where(
        self, path: str, op: str, value: str | int | float, *, limit: int | None
    ) -> list[dict[str, Any]]:
        _check_where(path, op)
        rows = self._s.connection.execute(
            self.where_sql(path, op), (self._log, value, -1 if limit is None else limit)
        )
        return [_decode(r[0]) for r in rows]

    # -- indexes --------------------------------------------------------------------------

    def indexes(self) -> list[str]:
        rows = self._s.connection.execute(
            "SELECT path FROM view_document_indexes WHERE log=? ORDER BY path", (self._log,)
        )
        return [r[0] for r in rows]

    def create_index(self, path: str) -> None:
        _check_path(path)
        conn = self._s.connection
        try:
            with self._s.transaction():
                conn.execute(
                    "INSERT OR IGNORE INTO view_document_indexes(log, path) VALUES (?, ?)",
                    (self._log, path),
                )
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {_index_name(self._log, path)}"
                    f" ON view_documents(log, {_expr(path)})"
                )
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot create the index on {path!r}: {exc}") from exc


def _decode(value: bytes) -> dict[str, Any]:
    try:
        doc = codec.decode(bytes(value))
    except DecodeError as exc:  # our own bytes, damaged on disk
        raise StorageCorruptedError(f"a stored document no longer decodes: {exc}") from exc
    if not isinstance(doc, dict):
        raise StorageCorruptedError("a stored document is no longer a map")
    return doc


# --- memory -------------------------------------------------------------------------------


def _sql_value(value: Any) -> Any:
    """What SQLite's ``json_extract`` returns for a document value: booleans as 0/1,
    maps, lists, bytes and links as their JSON text, None for null."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list | bytes | Cid):
        return to_json(value)
    return value


def _extract(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for name in path.split("."):
        if not isinstance(value, dict) or name not in value:
            return None
        value = value[name]
    return _sql_value(value)


def _compare(a: Any, op: str, b: Any) -> bool:
    """SQLite's comparison of two non-NULL values: numbers sort before text."""
    ra, rb = isinstance(a, str), isinstance(b, str)
    if ra != rb:
        x, y = int(ra), int(rb)
    else:
        x, y = a, b
    match op:
        case "=":
            return bool(x == y)
        case "!=":
            return bool(x != y)
        case "<":
            return bool(x < y)
        case "<=":
            return bool(x <= y)
        case ">":
            return bool(x > y)
        case _:
            return bool(x >= y)


class MemoryDocumentsState(MemoryCausal):
    def __init__(self) -> None:
        self._rows: dict[str, tuple[OrderKey, bytes | None]] = {}
        self._extra: dict[str, tuple[int, bytes | None, str | None]] = {}
        self._fields: dict[str, tuple[OpKey | None, FieldRegisters]] = {}
        self._indexes: set[str] = set()
        self._init_causal()

    def get_row(self, doc_id: str) -> tuple[OrderKey, bytes | None] | None:
        return self._rows.get(doc_id)

    def get_registers(self, doc_ids: Iterable[str]) -> dict[str, Register]:
        return {i: (*self._rows[i], *self._extra[i]) for i in doc_ids if i in self._rows}

    def set_rows(self, rows: Iterable[RowWrite]) -> None:
        for doc_id, key, value, _, arrival, conflicts, text in rows:
            self._rows[doc_id] = (key, value)
            self._extra[doc_id] = (arrival, conflicts, text)

    def set_conflicts(self, doc_id: str, conflicts: bytes | None, text: str | None) -> None:
        self._extra[doc_id] = (self._extra[doc_id][0], conflicts, text)

    def conflicted(self, limit: int) -> list[str]:
        found = [i for i in sorted(self._extra) if self._extra[i][2] is not None]
        return found if limit < 0 else found[:limit]

    def get_fields(self, doc_id: str) -> tuple[OpKey | None, FieldRegisters]:
        clear, fields = self._fields.get(doc_id, (None, {}))
        return clear, dict(fields)

    def set_fields(self, doc_id: str, clear: OpKey | None, fields: FieldRegisters) -> None:
        self._fields[doc_id] = (clear, dict(fields))

    def get(self, doc_id: str) -> dict[str, Any] | None:
        row = self._rows.get(doc_id)
        return None if row is None or row[1] is None else _decode(row[1])

    def all(self, *, limit: int | None) -> list[dict[str, Any]]:
        live = [v for _, (_, v) in sorted(self._rows.items()) if v is not None]
        return [_decode(v) for v in live[:limit]]

    def count(self) -> int:
        return sum(v is not None for _, v in self._rows.values())

    def rows(self) -> list[Row]:
        return [(i, k, v) for i, (k, v) in sorted(self._rows.items())]

    def dump_rows(self) -> list[RowWrite]:
        return [
            (i, k, v, None if v is None else _decode(v), *self._extra[i])
            for i, (k, v) in sorted(self._rows.items())
        ]

    def where(
        self, path: str, op: str, value: str | int | float, *, limit: int | None
    ) -> list[dict[str, Any]]:
        _check_where(path, op)
        found = []
        for doc in self.all(limit=None):  # by id
            got = _extract(doc, path)
            if got is not None and _compare(got, op, value):
                found.append((isinstance(got, str), got, doc))
        found.sort(key=lambda t: t[:2])  # stable: ties stay by id
        return [doc for _, _, doc in found[:limit]]

    def indexes(self) -> list[str]:
        return sorted(self._indexes)

    def create_index(self, path: str) -> None:
        self._indexes.add(_check_path(path))
