"""Where a node keeps the learned keys of its encrypted databases between runs.

One row per log: the arrival ``seq`` the state reflects and the state itself, sealed by
the caller (:meth:`orbitstore.node.encryption.DatabaseKeys.export_sealed`) under a key
derived from the node's identity seed — the SQLite file alone does not give the keys
away. The table is not a view table (``check`` neither compares nor resets it); the
state is a cache of what the log holds, so a missing or stale row only costs one pass
over the log when the database is opened. A memory store keeps nothing.
"""

from __future__ import annotations

from orbitstore.core.cid import Cid
from orbitstore.storage.base import NodeStore
from orbitstore.storage.sqlite import SqliteStore

_TABLE = (
    "CREATE TABLE IF NOT EXISTS db_keys(log INTEGER PRIMARY KEY, seq INTEGER NOT NULL,"
    " state BLOB NOT NULL)"
)


class KeyStateStore:
    """The key state row of one database (no-op on a memory store)."""

    def __init__(self, store: NodeStore, db: Cid) -> None:
        self._s = store if isinstance(store, SqliteStore) else None
        self._log = 0
        if self._s is not None:
            self._s.connection.execute(_TABLE)
            self._log = self._s.log_store(db).log_id

    def load(self) -> tuple[int, bytes] | None:
        if self._s is None:
            return None
        row = self._s.connection.execute(
            "SELECT seq, state FROM db_keys WHERE log=?", (self._log,)
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def save(self, seq: int, state: bytes | None) -> None:
        """Record the state at ``seq`` (None: unchanged since the last save, only the
        seq moves). Call inside the transaction that applied the entries."""
        if self._s is None:
            return
        conn = self._s.connection
        if state is None:
            conn.execute("UPDATE db_keys SET seq=? WHERE log=?", (seq, self._log))
        else:
            conn.execute(
                "INSERT OR REPLACE INTO db_keys(log, seq, state) VALUES (?, ?, ?)",
                (self._log, seq, state),
            )

    def clear(self) -> None:
        if self._s is not None:
            self._s.connection.execute("DELETE FROM db_keys WHERE log=?", (self._log,))


__all__ = ["KeyStateStore"]
