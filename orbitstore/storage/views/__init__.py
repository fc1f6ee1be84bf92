"""Storage for views: one SQLite implementation and one memory implementation of each
view's state protocol. ``open_view_state(store, kind, db)`` picks the right one."""

from __future__ import annotations

from typing import Any

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
