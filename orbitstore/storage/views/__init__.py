"""Storage for views: one SQLite implementation and one memory implementation of each
view's state protocol. ``open_view_state(store, kind, db)`` picks the right one.

:func:`view_rows` and :func:`reset_view_rows` serve ``orbitstore check``: they work on
every ``view_*`` table with a ``log`` column, whatever view made it, so a view that adds
a table is covered without being named here."""

from __future__ import annotations

from typing import Any, Final

from orbitstore.core.cid import Cid
from orbitstore.storage.base import NodeStore
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.storage.views import counter, documents, feed, keyvalue, ydoc

# kind -> (SQLite state class, memory state class); each takes (store, log_id | None).
_KINDS: dict[str, tuple[Any, Any]] = {
    "counter": (counter.SqliteCounterState, counter.MemoryCounterState),
    "documents": (documents.SqliteDocumentsState, documents.MemoryDocumentsState),
    "feed": (feed.SqliteFeedState, feed.MemoryFeedState),
    "keyvalue": (keyvalue.SqliteKeyValueState, keyvalue.MemoryKeyValueState),
    "ydoc": (ydoc.SqliteYDocState, ydoc.MemoryYDocState),
}


def open_view_state(store: NodeStore, kind: str, db: Cid) -> Any:
    sqlite_cls, memory_cls = _KINDS[kind]
    if isinstance(store, SqliteStore):
        log = store.log_store(db)
        sqlite_cls.create_tables(store.connection)
        return sqlite_cls(store, log.log_id)
    # A memory store keeps its view states, so a node reopened on the same store object
    # finds them next to the checkpoints it left (crash/restart tests).
    states = getattr(store, "view_states", None)
    if states is None:
        return memory_cls()
    return states.setdefault((kind, db), memory_cls())


# Tables whose rows are not a function of the log's entries: node-local declarations, the
# checkpoints, and snapshots that also record arrival numbers (compared by their view).
_NOT_DERIVED: Final = frozenset(
    {
        "view_checkpoints",
        "view_document_indexes",
        "view_ydoc",
        # the node-local numbering of conflict tracking (storage/views/causal.py): it
        # depends on arrival order; the conflicts it decides are compared as
        # ``conflicts_json``
        "view_causal",
        "view_causal_frontier",
    }
)
# Columns of derived tables that hold node-local arrival numbers (same reason).
_NODE_LOCAL_COLUMNS: Final = frozenset({"arrival", "conflicts"})


def _log_tables(store: SqliteStore) -> list[tuple[str, list[str]]]:
    conn = store.connection
    names = [
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'view~_%' ESCAPE '~'"
            " ORDER BY name"
        ).fetchall()
    ]
    tables = []
    for name in names:
        columns = [str(r[1]) for r in conn.execute(f'PRAGMA table_info("{name}")').fetchall()]
        if "log" in columns:
            tables.append((name, columns))
    return tables


def view_rows(store: SqliteStore, log_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``log_id`` in the derived view tables, without the ``log`` column,
    sorted: equal for two stores exactly when their views of that log hold the same."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for name, columns in _log_tables(store):
        if name in _NOT_DERIVED:
            continue
        cols = ", ".join(f'"{c}"' for c in columns if c != "log" and c not in _NODE_LOCAL_COLUMNS)
        rows = store.connection.execute(
            f'SELECT {cols} FROM "{name}" WHERE log=?', (log_id,)
        ).fetchall()
        if rows:
            out[name] = sorted(rows, key=repr)
    return out


def reset_view_rows(store: SqliteStore, log_id: int) -> None:
    """Delete the view state of ``log_id`` (every view table, snapshots and checkpoints
    included; index declarations kept), so that the view is rebuilt from the log."""
    with store.transaction():
        for name, _ in _log_tables(store):
            if name != "view_document_indexes":
                store.connection.execute(f'DELETE FROM "{name}" WHERE log=?', (log_id,))
