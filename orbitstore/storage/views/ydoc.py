"""Ydoc state: one snapshot per log — a Yjs update, the arrival ``seq`` it reflects and
how many updates were merged into it (see :mod:`orbitstore.views.ydoc`, Rule 4)."""

from __future__ import annotations

import sqlite3

from orbitstore.storage.sqlite import SqliteStore


class SqliteYDocState:
    @staticmethod
    def create_tables(conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS view_ydoc(log INTEGER PRIMARY KEY,"
            " seq INTEGER NOT NULL, updates INTEGER NOT NULL, snapshot BLOB NOT NULL)"
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


class MemoryYDocState:
    def __init__(self) -> None:
        self._snapshot: tuple[int, int, bytes] | None = None

    def load(self) -> tuple[int, int, bytes] | None:
        return self._snapshot

    def save(self, seq: int, updates: int, snapshot: bytes) -> None:
        self._snapshot = (seq, updates, bytes(snapshot))
