"""Counter state: one integer per log (stored as text: totals can exceed 64 bits)."""

from __future__ import annotations

import sqlite3

from orbitstore.storage.sqlite import SqliteStore


class SqliteCounterState:
    @staticmethod
    def create_tables(conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS view_counter(log INTEGER PRIMARY KEY, total TEXT NOT NULL)"
        )

    def __init__(self, store: SqliteStore, log_id: int) -> None:
        self._s = store
        self._log = log_id

    def get(self) -> int:
        row = self._s.connection.execute(
            "SELECT total FROM view_counter WHERE log=?", (self._log,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def add(self, delta: int) -> int:
        total = self.get() + delta
        self._s.connection.execute(
            "INSERT OR REPLACE INTO view_counter(log, total) VALUES (?, ?)",
            (self._log, str(total)),
        )
        return total


class MemoryCounterState:
    def __init__(self) -> None:
        self._total = 0

    def get(self) -> int:
        return self._total

    def add(self, delta: int) -> int:
        self._total += delta
        return self._total
