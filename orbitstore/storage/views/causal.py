"""The causal numbers of :mod:`orbitstore.views.causal`, for the views that report
conflicts (keyvalue, documents).

Schema::

    view_causal(log, cid, arrival, floor)  PRIMARY KEY (log, cid) WITHOUT ROWID
        one row per entry the view applied: its local arrival number and floor
    view_causal_frontier(log PRIMARY KEY, counter, heads)
        the last arrival number given out, and the view's heads (DAG-CBOR list of CIDs)

Both are node-local bookkeeping: they never leave the node and differ between replicas
(only the ancestry answers they give are the same everywhere).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable
from typing import Final

from orbitstore.core import codec
from orbitstore.storage.sqlite import SqliteStore

_CHUNK: Final = 500

CAUSAL_TABLES: Final = """
CREATE TABLE IF NOT EXISTS view_causal(
    log INTEGER NOT NULL, cid BLOB NOT NULL, arrival INTEGER NOT NULL, floor INTEGER NOT NULL,
    PRIMARY KEY(log, cid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS view_causal_frontier(
    log INTEGER PRIMARY KEY, counter INTEGER NOT NULL, heads BLOB NOT NULL);
"""


def migrate(
    conn: sqlite3.Connection, *, view: str, alter: Iterable[str], reset: Iterable[str]
) -> None:
    """Add state the old view tables never recorded (``alter``: ALTER TABLE statements),
    then empty the ``reset`` tables of every log and the view's checkpoints, so each of
    its databases is rebuilt from its log when it is next opened. One transaction: after
    a crash the migration either happened whole or runs again."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in alter:
            conn.execute(statement)
        for table in reset:
            conn.execute(f"DELETE FROM {table}")
        for table in ("view_causal", "view_causal_frontier"):
            conn.execute(
                f"DELETE FROM {table} WHERE log IN (SELECT log FROM view_checkpoints WHERE view=?)",
                (view,),
            )
        conn.execute("DELETE FROM view_checkpoints WHERE view=?", (view,))
    except BaseException:
        if own and conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if own:
        conn.execute("COMMIT")


def has_column(conn: sqlite3.Connection, table: str, column: str) -> bool | None:
    """Whether ``table`` has ``column`` (None: there is no such table)."""
    rows = conn.execute(f"PRAGMA table_info({table})").fetchall()
    if not rows:
        return None
    return any(r[1] == column for r in rows)


class SqliteCausal:
    """Mixed into a SQLite view state that has ``self._s`` and ``self._log``."""

    _s: SqliteStore
    _log: int

    def causal_frontier(self) -> tuple[int, frozenset[bytes]]:
        row = self._s.connection.execute(
            "SELECT counter, heads FROM view_causal_frontier WHERE log=?", (self._log,)
        ).fetchone()
        if row is None:
            return 0, frozenset()
        heads = codec.decode(bytes(row[1]))
        assert isinstance(heads, list)
        return int(row[0]), frozenset(bytes(h) for h in heads)

    def causal_get(self, cids: Collection[bytes]) -> dict[bytes, tuple[int, int]]:
        wanted = list(cids)
        found: dict[bytes, tuple[int, int]] = {}
        conn = self._s.connection
        for lo in range(0, len(wanted), _CHUNK):
            part = wanted[lo : lo + _CHUNK]
            marks = ",".join("?" * len(part))
            for cid, arrival, floor in conn.execute(
                f"SELECT cid, arrival, floor FROM view_causal WHERE log=? AND cid IN ({marks})",
                (self._log, *part),
            ):
                found[bytes(cid)] = (int(arrival), int(floor))
        return found

    def causal_save(
        self, counter: int, heads: frozenset[bytes], rows: Iterable[tuple[bytes, int, int]]
    ) -> None:
        conn = self._s.connection
        conn.executemany(
            "INSERT OR REPLACE INTO view_causal(log, cid, arrival, floor) VALUES (?, ?, ?, ?)",
            [(self._log, cid, a, f) for cid, a, f in rows],
        )
        conn.execute(
            "INSERT OR REPLACE INTO view_causal_frontier(log, counter, heads) VALUES (?, ?, ?)",
            (self._log, counter, codec.encode(sorted(heads))),
        )


class MemoryCausal:
    """The memory form of :class:`SqliteCausal` (call :meth:`_init_causal`)."""

    def _init_causal(self) -> None:
        self._causal: dict[bytes, tuple[int, int]] = {}
        self._frontier: tuple[int, frozenset[bytes]] = (0, frozenset())

    def causal_frontier(self) -> tuple[int, frozenset[bytes]]:
        return self._frontier

    def causal_get(self, cids: Collection[bytes]) -> dict[bytes, tuple[int, int]]:
        return {c: self._causal[c] for c in cids if c in self._causal}

    def causal_save(
        self, counter: int, heads: frozenset[bytes], rows: Iterable[tuple[bytes, int, int]]
    ) -> None:
        self._causal.update((c, (a, f)) for c, a, f in rows)
        self._frontier = (counter, heads)
