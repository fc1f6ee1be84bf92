"""Ydoc state: one snapshot per log — a Yjs update, the arrival ``seq`` it reflects and
how many updates were merged into it (see :mod:`orbitstore.views.ydoc`, Rule 4)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from orbitstore.storage.sqlite import SqliteStore

# (name, text, fields JSON): orbitstore.views.ydoc.RootRow
_Root = tuple[str, str | None, str | None]


class SqliteYDocState:
    @staticmethod
    def create_tables(conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS view_ydoc(log INTEGER PRIMARY KEY,"
            " seq INTEGER NOT NULL, updates INTEGER NOT NULL, snapshot BLOB NOT NULL)"
        )
        # The SQL table of a ydoc: written only in AS OF snapshots (node/asof.py).
        conn.execute(
            "CREATE TABLE IF NOT EXISTS view_ydoc_roots(log INTEGER NOT NULL,"
            " name TEXT NOT NULL, text TEXT, fields TEXT, PRIMARY KEY(log, name)) WITHOUT ROWID"
        )

    def __init__(self, store: SqliteStore, log_id: int) -> None:
        self._s = store
        self._log = log_id

    def load(self) -> tuple[int, int, bytes] | None:
        row = self._s.connection.execute(
            "SELECT seq, updates, snapshot FROM view_ydoc WHERE log=?", (self._log,)
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), bytes(row[2]))

    def save(self, seq: int, updates: int, snapshot: bytes) -> None:
        with self._s.transaction():
            self._s.connection.execute(
                "INSERT OR REPLACE INTO view_ydoc(log, seq, updates, snapshot) VALUES (?, ?, ?, ?)",
                (self._log, seq, updates, snapshot),
            )

    def set_roots(self, rows: Sequence[_Root]) -> None:
        conn = self._s.connection
        conn.execute("DELETE FROM view_ydoc_roots WHERE log=?", (self._log,))
        conn.executemany(
            "INSERT INTO view_ydoc_roots(log, name, text, fields) VALUES (?, ?, ?, ?)",
            [(self._log, *row) for row in rows],
        )


class MemoryYDocState:
    def __init__(self) -> None:
        self._snapshot: tuple[int, int, bytes] | None = None
        self.roots: list[_Root] = []

    def load(self) -> tuple[int, int, bytes] | None:
        return self._snapshot

    def save(self, seq: int, updates: int, snapshot: bytes) -> None:
        self._snapshot = (seq, updates, bytes(snapshot))

    def set_roots(self, rows: Sequence[_Root]) -> None:
        self.roots = list(rows)
