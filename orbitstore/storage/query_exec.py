"""Runs compiled queries on the node's SQLite file, read-only and within limits.

A dedicated connection opened with ``mode=ro`` and ``PRAGMA query_only`` serves every
query, with an authorizer that allows only SELECT, reads of view tables (``view_*``), of
the entry columns the ``log`` table shows (``entries``: log, cid, writer, clock, block;
``blocks``: id, data — decoded by ``os_entry_ts``/``os_entry_payload``) and the functions
the dialect whitelists — a second wall behind the compiler, which already
refuses everything else. A progress handler enforces the time budget; the row cap is
checked while fetching. The connection is a translated one
(:mod:`orbitstore.storage.sqlite_errors`): an error of the user's statement that is the
user's fault (bad SQL, a refused table or function, the budget) becomes
:class:`~orbitstore.errors.QueryError`; a damaged file or an I/O failure stays a
:class:`~orbitstore.errors.StorageError` — it is not the query's fault.

AS OF snapshots (``docs/query.md``) are attached to the same connection: the image of a
scratch in-memory database holding the view tables as of past heads is deserialized into
a fresh attached in-memory schema (``asof_<n>``, never reused) by :meth:`attach_image`.
ATTACH is denied to queries; it runs here with the authorizer lifted for that one
statement, never around user SQL. ``PRAGMA query_only`` stays on throughout, so the
attached snapshots are as unwritable to queries as the view tables themselves.
"""

from __future__ import annotations

import base64
import re
import sqlite3
import time
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import quote

from orbitstore.core import codec
from orbitstore.core.dagjson import to_json
from orbitstore.errors import InvalidValueError, QueryLimitError
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.storage.sqlite_errors import Connection, connect

# VM instructions between two looks at the clock: ~100 µs of work, so a query overruns
# its budget by well under a millisecond.
_PROGRESS_STEPS = 10_000

_FUNCTIONS = frozenset(
    {
        "abs", "avg", "coalesce", "count", "group_concat", "ifnull", "iif", "instr",
        "json_array_length", "json_extract", "json_type", "length", "lower", "ltrim", "max",
        "min", "nullif", "replace", "round", "rtrim", "substr", "sum", "total", "trim",
        "typeof", "upper", "like", "glob", "os_cid", "os_entry_ts", "os_entry_payload",
        "->",  # emitted only by the compiler, to read a projected path as exact JSON text
    }
)  # fmt: skip
# SQLite's default SQLITE_MAX_ATTACHED: at most this many snapshots attached at once.
MAX_ATTACHED = 10
_INDEX_PATH = re.compile(r"json_extract\(\s*\"?\w+\"?\s*,\s*'([^']*)'\s*\)", re.IGNORECASE)
# An index a query can use for one log: ON <table>(log, json_extract(<col>, '<path>'))
_LOG_INDEX = re.compile(
    r"\(\s*\"?log\"?\s*,\s*json_extract\(\s*\"?\w+\"?\s*,\s*'([^']*)'\s*\)\s*\)\s*$",
    re.IGNORECASE,
)


def cid_text(raw: bytes | None) -> str | None:
    """SQL function ``os_cid``: a binary CID as its base32 text form."""
    if raw is None:
        return None
    return "b" + base64.b32encode(bytes(raw)).decode("ascii").lower().rstrip("=")


def entry_ts(block: bytes | None) -> int | None:
    """SQL function ``os_entry_ts``: the ``ts`` of an entry block (NULL if it has none)."""
    if block is None:
        return None
    ts = codec.decode(bytes(block), check_nesting=False).get("ts")
    return ts if isinstance(ts, int) else None


def entry_payload(block: bytes | None) -> str | None:
    """SQL function ``os_entry_payload``: the payload of an entry block as DAG-JSON."""
    if block is None:
        return None
    try:
        return to_json(codec.decode(bytes(block), check_nesting=False).get("payload"))
    except InvalidValueError:  # a payload with no DAG-JSON form reads as SQL NULL
        return None


# The columns of the node's own tables that the ``log`` table reads (catalog.py).
# ("": a row is visited for no column, as in count(*).)
_LOG_COLUMNS: Final = {
    "entries": frozenset({"", "log", "cid", "writer", "clock", "block"}),
    "blocks": frozenset({"", "id", "data"}),
}


def _authorize(action: int, arg1: str | None, arg2: str | None, *_: object) -> int:
    if action == sqlite3.SQLITE_SELECT:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_READ:
        # arg1 is the table; subquery columns come with no table
        if not arg1 or arg1.startswith("view_") or arg2 in _LOG_COLUMNS.get(arg1, ()):
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_OK if (arg2 or "").lower() in _FUNCTIONS else sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_DENY


class SqliteQueryExecutor:
    """Executes (SQL, parameters) on a read-only connection to ``store``'s file."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._conn: Connection | None = None
        self._deadline = 0.0
        self._index_paths: dict[str, str | None] = {}
        self._indexes: dict[str, tuple[tuple[str, str], ...]] = {}
        self._schema_version = -1
        self._attached: set[str] = set()
        self._next_schema = 0

    def _connection(self) -> Connection:
        if self._conn is not None:
            return self._conn
        self._store.connection  # noqa: B018 - raises ClosedError if the store is closed
        uri = "file:" + quote(str(self._store.path.resolve())) + "?mode=ro"
        conn = connect(
            uri,
            label=f"{self._store.path} (read connection)",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=512,
        )
        try:
            conn.execute("PRAGMA query_only=ON")
            conn.execute(f"PRAGMA cache_size=-{int(self._store.config.cache_kib)}")
            conn.create_function("os_cid", 1, cid_text, deterministic=True)
            conn.create_function("os_entry_ts", 1, entry_ts, deterministic=True)
            conn.create_function("os_entry_payload", 1, entry_payload, deterministic=True)
            conn.set_authorizer(_authorize)
            conn.set_progress_handler(self._progress, _PROGRESS_STEPS)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _progress(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def execute(
        self, sql: str, params: Sequence[Any], *, max_rows: int, timeout_s: float
    ) -> list[tuple[Any, ...]]:
        """All rows (at most ``max_rows``); QueryError past a limit or on a SQL error."""
        conn = self._connection()
        self._deadline = time.monotonic() + timeout_s
        with conn.user_statement(timeout_s):  # its SQL errors are QueryError (see above)
            cur = conn.execute(sql, tuple(params))
            rows: list[tuple[Any, ...]] = cur.fetchmany(max_rows + 1)
            cur.close()
        if len(rows) > max_rows:
            raise QueryLimitError(
                f"the result has more than {max_rows} rows; add a LIMIT or narrow the WHERE"
            )
        return rows

    def explain(self, sql: str, params: Sequence[Any]) -> list[str]:
        """SQLite's ``EXPLAIN QUERY PLAN`` detail lines, in order."""
        rows = self.execute("EXPLAIN QUERY PLAN " + sql, params, max_rows=10_000, timeout_s=5.0)
        return [str(r[3]) for r in rows]

    def index_path(self, index: str) -> str | None:
        """The JSON path a declared expression index covers (``$.a.b``), if it is one."""
        if index not in self._index_paths:
            row = self._store.connection.execute(
                "SELECT sql FROM sqlite_master WHERE type='index' AND name=?", (index,)
            ).fetchone()
            m = _INDEX_PATH.search(row[0]) if row and row[0] else None
            self._index_paths[index] = m.group(1) if m else None
        return self._index_paths[index]

    def json_indexes(self, table: str) -> tuple[tuple[str, str], ...]:
        """Expression indexes ``(log, json_extract(col, path))`` on ``table``, as
        (path, index name) pairs; cached until the schema changes."""
        conn = self._store.connection
        version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
        if version != self._schema_version:
            self._schema_version = version
            self._indexes = {}
            self._index_paths = {}
        found = self._indexes.get(table)
        if found is None:
            rows = conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name=?"
                " AND sql IS NOT NULL ORDER BY name",
                (table,),
            ).fetchall()
            pairs = []
            for name, sql in rows:
                m = _LOG_INDEX.search(sql)
                if m:
                    pairs.append((m.group(1), str(name)))
            found = self._indexes[table] = tuple(pairs)
        return found

    # -- AS OF snapshots -------------------------------------------------------------------

    def attach_image(self, image: bytes) -> str:
        """Attach a serialized SQLite database (see :meth:`SqliteStore.serialize`) as a
        new schema of the read connection; returns the schema name."""
        if len(self._attached) >= MAX_ATTACHED:
            raise QueryLimitError(
                f"more than {MAX_ATTACHED} AS OF snapshots would be attached at once"
            )
        conn = self._connection()
        self._next_schema += 1
        name = f"asof_{self._next_schema}"
        conn.set_authorizer(None)
        try:
            conn.execute(f'ATTACH DATABASE ? AS "{name}"', (":memory:",))
            try:
                conn.deserialize(image, name=name)
            except BaseException:
                conn.execute(f'DETACH DATABASE "{name}"')
                raise
        finally:
            conn.set_authorizer(_authorize)
        self._attached.add(name)
        return name

    def detach(self, name: str) -> None:
        """Drop a snapshot attached by :meth:`attach_image` (unknown names: no-op)."""
        conn = self._conn
        if name not in self._attached or conn is None:
            return
        self._attached.discard(name)
        conn.set_authorizer(None)
        try:
            conn.execute(f'DETACH DATABASE "{name}"')
        finally:
            conn.set_authorizer(_authorize)

    @property
    def attached(self) -> frozenset[str]:
        """The snapshot schemas attached right now."""
        return frozenset(self._attached)

    def close(self) -> None:
        self._attached.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
