"""Forget one database: every row a node keeps for it, in one transaction.

``drop_log(store, db)`` removes the log's entries and their blocks, its heads, ACL
frontiers, view rows (every ``view_*`` table with a ``log`` column, declared document
indexes included), view checkpoints, sealed keys (``db_keys``), the local names that
point at it and its manifest block. Blocks that another log still uses are kept. It is
the storage half of ``node.drop`` (:mod:`orbitstore.node.drop`), which closes the
database first and holds the node's write lock, so nothing writes to the log while it
goes.
"""

from __future__ import annotations

from dataclasses import dataclass

from orbitstore.core.cid import Cid
from orbitstore.storage.base import NodeStore
from orbitstore.storage.memory import MemoryStore
from orbitstore.storage.sqlite import SqliteStore


@dataclass(frozen=True, slots=True, kw_only=True)
class DroppedLog:
    """What :func:`drop_log` removed."""

    entries: int
    names: tuple[str, ...]


def drop_log(store: NodeStore, db: Cid) -> DroppedLog:
    """Remove everything ``store`` holds for the database ``db`` (see the module doc)."""
    if isinstance(store, SqliteStore):
        return _drop_sqlite(store, db)
    if isinstance(store, MemoryStore):
        return _drop_memory(store, db)
    raise TypeError(f"cannot drop a database from a {type(store).__name__}")


def _drop_sqlite(store: SqliteStore, db: Cid) -> DroppedLog:
    from orbitstore.storage.views import reset_view_rows
    from orbitstore.storage.views.documents import _index_name as index_name

    conn = store.connection
    raw = bytes(db)
    names = tuple(n for n, d in store.names().items() if d == db)
    with store.transaction():
        row = conn.execute("SELECT id FROM logs WHERE db=?", (raw,)).fetchone()
        entries = 0
        if row is not None:
            log_id = int(row[0])
            reset_view_rows(store, log_id)
            if _has_table(store, "view_document_indexes"):
                paths = conn.execute(
                    "SELECT path FROM view_document_indexes WHERE log=?", (log_id,)
                ).fetchall()
                for (path,) in paths:
                    conn.execute(f"DROP INDEX IF EXISTS {index_name(log_id, str(path))}")
                conn.execute("DELETE FROM view_document_indexes WHERE log=?", (log_id,))
            # Blocks only this log uses (an entry names its database, so normally all).
            conn.execute(
                "DELETE FROM blocks WHERE id IN (SELECT block FROM entries WHERE log=?)"
                " AND id NOT IN (SELECT block FROM entries WHERE log<>?)",
                (log_id, log_id),
            )
            entries = conn.execute("DELETE FROM entries WHERE log=?", (log_id,)).rowcount
            for table in ("heads", "acl_frontiers", "view_checkpoints"):
                conn.execute(f"DELETE FROM {table} WHERE log=?", (log_id,))
            if _has_table(store, "db_keys"):  # an encrypted database's sealed keys
                conn.execute("DELETE FROM db_keys WHERE log=?", (log_id,))
            conn.execute("DELETE FROM logs WHERE id=?", (log_id,))
        conn.execute("DELETE FROM names WHERE db=?", (raw,))
        conn.execute("DELETE FROM blocks WHERE cid=?", (raw,))  # the manifest
    # The log's id may be handed out again: no cached handle may keep pointing at it.
    store._log_cache.pop(db, None)
    return DroppedLog(entries=max(entries, 0), names=names)


def _has_table(store: SqliteStore, name: str) -> bool:
    found = store.connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)
    ).fetchone()
    return found is not None


def _drop_memory(store: MemoryStore, db: Cid) -> DroppedLog:
    names = tuple(n for n, d in store.names().items() if d == db)
    log = store._logs.pop(db, None)
    entries = 0
    blocks = store.blocks._blocks
    if log is not None:
        for cid in list(log._clocks):
            blocks.pop(cid, None)
            entries += 1
    for name in names:
        del store._names[name]
    for key in [k for k in store.view_states if k[1] == db]:
        del store.view_states[key]
    for checkpoint in [k for k in store._checkpoints if k[0] == db]:
        del store._checkpoints[checkpoint]
    blocks.pop(db, None)
    return DroppedLog(entries=entries, names=names)
