"""A node's SQLite file read as it is: no schema setup, no repair, no view catch-up.

:class:`StoreReader` serves the command line's quick reads (``orbitstore kv get`` with
no node running, :mod:`orbitstore.cli.quick`): it opens ``orbitstore.sqlite`` read-only
(``mode=ro``: it never writes, creates or migrates anything) and answers from the
tables a full open would read — names, the manifest block, a log's arrival numbers, the
view checkpoints and the view tables — with plain ``sqlite3`` and nothing else: no trio,
no node, no view classes.

It is only right where the stored view is up to date: :meth:`StoreReader.view_current`
says whether the view's checkpoint covers every entry of the log (a full open would
fold nothing in first). The caller holds the directory lock (storage/lock.py), as a
node would, so no writer can move the file under it; and it falls back to the full open
whenever the reader cannot answer: :meth:`StoreReader.open` returns None for a missing
file or another schema version, and a table that does not exist yet is
:class:`NotReadable`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from orbitstore.errors import StorageError
from orbitstore.storage.sqlite_errors import Connection, connect

# The schema version this reader understands (orbitstore.storage.sqlite.SCHEMA_VERSION;
# a test keeps them equal, so importing the reader does not import the store).
SCHEMA_VERSION = 4
# Rows fetched per round trip of a listing.
_FETCH = 512


class NotReadable(Exception):
    """The file cannot answer this read as it is (the caller opens the node instead)."""


class StoreReader:
    """Read-only queries over one node's SQLite file (see the module docstring)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, path: Path) -> StoreReader | None:
        """The file at ``path``, or None when there is none or it is not a store of
        this schema version (a full open creates or migrates it)."""
        if not path.is_file():
            return None
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        try:
            conn = connect(uri, label=str(path), uri=True, isolation_level=None, timeout=5.0)
        except StorageError:
            return None
        reader = cls(conn)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except StorageError:
            row = None
        if row is None or row[0] != SCHEMA_VERSION:
            reader.close()
            return None
        # One read transaction for everything asked: every answer is of one moment.
        conn.execute("BEGIN")
        return reader

    def _rows(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        try:
            rows: list[Any] = self._conn.execute(sql, params).fetchall()
        except StorageError as exc:  # no such table (yet), a damaged file: the full open says
            raise NotReadable(str(exc)) from exc
        return rows

    def database_by_name(self, name: str) -> bytes | None:
        """The manifest CID (bytes) the local ``name`` stands for."""
        rows = self._rows("SELECT db FROM names WHERE name=?", (name,))
        return bytes(rows[0][0]) if rows else None

    def names(self) -> list[tuple[str, bytes]]:
        """Every local name and its manifest CID (bytes), in name order."""
        rows = self._rows("SELECT name, db FROM names ORDER BY name", ())
        return [(str(n), bytes(d)) for n, d in rows]

    def block(self, cid: bytes) -> bytes | None:
        rows = self._rows("SELECT data FROM blocks WHERE cid=?", (cid,))
        return bytes(rows[0][0]) if rows else None

    def log_id(self, db: bytes) -> int | None:
        """The log of the database ``db`` (None: no entry of it was ever stored)."""
        rows = self._rows("SELECT id FROM logs WHERE db=?", (db,))
        return int(rows[0][0]) if rows else None

    def view_current(self, log: int | None, view: str) -> bool:
        """Whether the view ``view`` of ``log`` reflects every stored entry of it."""
        if log is None:
            return True  # no entries: the empty view is the truth
        (last,) = self._rows("SELECT coalesce(max(seq), 0) FROM entries WHERE log=?", (log,))[0]
        if not last:
            return True
        found = self._rows("SELECT seq FROM view_checkpoints WHERE log=? AND view=?", (log, view))
        return bool(found) and int(found[0][0]) >= int(last)

    # -- view tables (their schemas: orbitstore/storage/views/) ---------------------------

    def kv_value(self, log: int | None, key: str) -> bytes | None:
        """The DAG-CBOR value of a live key (None: absent or deleted)."""
        if log is None:
            return None
        rows = self._rows(
            "SELECT value FROM view_kv WHERE log=? AND key=? AND deleted=0", (log, key)
        )
        return bytes(rows[0][0]) if rows else None

    def kv_items(
        self, log: int | None, *, low: str | None, high: str | None, limit: int | None
    ) -> Iterator[tuple[str, bytes]]:
        """Live ``(key, DAG-CBOR value)`` with ``low <= key < high``, in key order."""
        if log is None or limit == 0:
            return
        sql = "SELECT key, value FROM view_kv WHERE log=? AND deleted=0"
        params: list[object] = [log]
        if low is not None:
            sql += " AND key >= ?"
            params.append(low)
        if high is not None:
            sql += " AND key < ?"
            params.append(high)
        sql += " ORDER BY key LIMIT ?"
        params.append(-1 if limit is None else limit)
        try:
            cur = self._conn.execute(sql, params)
        except StorageError as exc:
            raise NotReadable(str(exc)) from exc
        while rows := cur.fetchmany(_FETCH):
            for key, value in rows:
                yield str(key), bytes(value)

    def counter(self, log: int | None) -> int:
        """A counter's total (0 when it never moved)."""
        if log is None:
            return 0
        rows = self._rows("SELECT total FROM view_counter WHERE log=?", (log,))
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
