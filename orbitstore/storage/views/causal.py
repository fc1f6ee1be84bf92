"""The causal numbers of :mod:`orbitstore.views.causal`, for the views that report
conflicts (keyvalue, documents).

Schema::

    view_causal(log, cid, arrival, past, exact)  PRIMARY KEY (log, cid) WITHOUT ROWID
        one row per entry the view applied: its local arrival number, and the arrival
        numbers of its causal past as intervals (little-endian int64 lo, hi, lo, hi, ...)
    view_causal_frontier(log PRIMARY KEY, counter)
        the last arrival number given out

Both are node-local bookkeeping: they never leave the node and differ between replicas
(only the ancestry answers they give are the same everywhere).
"""

from __future__ import annotations

import array
import sqlite3
import sys
from collections.abc import Collection, Iterable
from typing import Final, TypeAlias

from orbitstore.storage.sqlite import SqliteStore

_CHUNK: Final = 500

CAUSAL_TABLES: Final = (
    "CREATE TABLE IF NOT EXISTS view_causal("
    "log INTEGER NOT NULL, cid BLOB NOT NULL, arrival INTEGER NOT NULL, past BLOB NOT NULL,"
    " exact INTEGER NOT NULL, PRIMARY KEY(log, cid)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS view_causal_frontier("
    "log INTEGER PRIMARY KEY, counter INTEGER NOT NULL)",
)


def create_causal_tables(conn: sqlite3.Connection) -> None:
    # One statement at a time: executescript would commit a transaction the caller holds.
    for statement in CAUSAL_TABLES:
        conn.execute(statement)


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


# (arrival, past intervals, exact), as in orbitstore.views.causal (storage cannot import it)
_Causal: TypeAlias = tuple[int, tuple[tuple[int, int], ...], bool]


def _encode_past(past: tuple[tuple[int, int], ...]) -> bytes:
    # Little-endian int64 pairs: node-local bookkeeping, read and written for every entry,
    # so the cheapest encoding wins (an array round trip is ~10x faster than DAG-CBOR).
    flat = array.array("q", [n for pair in past for n in pair])
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        flat.byteswap()
    return flat.tobytes()


def _decode_past(data: bytes) -> tuple[tuple[int, int], ...]:
    flat = array.array("q")
    flat.frombytes(data)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        flat.byteswap()
    return tuple(zip(flat[::2], flat[1::2], strict=True))


class SqliteCausal:
    """Mixed into a SQLite view state that has ``self._s`` and ``self._log``."""

    _s: SqliteStore
    _log: int

    def causal_counter(self) -> int:
        row = self._s.connection.execute(
            "SELECT counter FROM view_causal_frontier WHERE log=?", (self._log,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def causal_get(self, cids: Collection[bytes]) -> dict[bytes, _Causal]:
        wanted = list(cids)
        found: dict[bytes, _Causal] = {}
        conn = self._s.connection
        for lo in range(0, len(wanted), _CHUNK):
            part = wanted[lo : lo + _CHUNK]
            marks = ",".join("?" * len(part))
            for cid, arrival, past, exact in conn.execute(
                "SELECT cid, arrival, past, exact FROM view_causal"
                f" WHERE log=? AND cid IN ({marks})",
                (self._log, *part),
            ):
                found[bytes(cid)] = (int(arrival), _decode_past(bytes(past)), bool(exact))
        return found

    def causal_save(self, counter: int, rows: Iterable[tuple[bytes, _Causal]]) -> None:
        conn = self._s.connection
        conn.executemany(
            "INSERT OR REPLACE INTO view_causal(log, cid, arrival, past, exact)"
            " VALUES (?, ?, ?, ?, ?)",
            [(self._log, cid, a, _encode_past(p), int(e)) for cid, (a, p, e) in rows],
        )
        conn.execute(
            "INSERT OR REPLACE INTO view_causal_frontier(log, counter) VALUES (?, ?)",
            (self._log, counter),
        )


class MemoryCausal:
    """The memory form of :class:`SqliteCausal` (call :meth:`_init_causal`)."""

    def _init_causal(self) -> None:
        self._causal: dict[bytes, _Causal] = {}
        self._counter = 0

    def causal_counter(self) -> int:
        return self._counter

    def causal_get(self, cids: Collection[bytes]) -> dict[bytes, _Causal]:
        return {c: self._causal[c] for c in cids if c in self._causal}

    def causal_save(self, counter: int, rows: Iterable[tuple[bytes, _Causal]]) -> None:
        self._causal.update(rows)
        self._counter = counter
