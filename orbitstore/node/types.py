"""Which handle class and view serve each database type (the one registry, used by
:meth:`Node.open`)."""

from __future__ import annotations

from collections.abc import Callable

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.manifest import Manifest
from orbitstore.errors import InvalidValueError
from orbitstore.node.counter import Counter
from orbitstore.node.database import Database
from orbitstore.node.documents import Documents
from orbitstore.node.feed import Feed
from orbitstore.node.keyvalue import KeyValue
from orbitstore.node.ydoc import YDocument, new_client_id
from orbitstore.storage.base import NodeStore
from orbitstore.storage.views import open_view_state
from orbitstore.views.base import View
from orbitstore.views.causal import EntryLookup
from orbitstore.views.counter import CounterView
from orbitstore.views.documents import DocumentsOptions, DocumentsView
from orbitstore.views.feed import FeedView
from orbitstore.views.keyvalue import KeyValueView
from orbitstore.views.ydoc import YDocView

ViewFactory = Callable[[NodeStore, Cid, Manifest], View]


def _counter_view(store: NodeStore, db: Cid, manifest: Manifest) -> View:
    return CounterView(open_view_state(store, "counter", db))


def _lookup(store: NodeStore, db: Cid) -> EntryLookup:
    """Entries of ``db``'s log in ``store``: the views that report conflicts walk back
    through them (``orbitstore/views/causal.py``)."""
    log_store = store.log_store(db)

    def lookup(cid: Cid) -> Entry | None:
        block = log_store.get_block(cid)
        return None if block is None else Entry.from_trusted_block(cid, block)

    return lookup


def _documents_view(store: NodeStore, db: Cid, manifest: Manifest) -> View:
    options = DocumentsOptions.from_meta(manifest.meta)
    state = open_view_state(store, "documents", db)
    return DocumentsView(state, options, lookup=_lookup(store, db))


def _feed_view(store: NodeStore, db: Cid, manifest: Manifest) -> View:
    return FeedView(open_view_state(store, "feed", db))


def _keyvalue_view(store: NodeStore, db: Cid, manifest: Manifest) -> View:
    return KeyValueView(open_view_state(store, "keyvalue", db), lookup=_lookup(store, db))


def _ydoc_view(store: NodeStore, db: Cid, manifest: Manifest) -> View:
    return YDocView(open_view_state(store, "ydoc", db), client_id=new_client_id())


_TYPES: dict[str, tuple[type[Database], ViewFactory | None]] = {
    "log": (Database, None),
    "counter": (Counter, _counter_view),
    "documents": (Documents, _documents_view),
    "feed": (Feed, _feed_view),
    "keyvalue": (KeyValue, _keyvalue_view),
    "ydoc": (YDocument, _ydoc_view),
}


def database_class(type_name: str) -> tuple[type[Database], ViewFactory | None]:
    try:
        return _TYPES[type_name]
    except KeyError:
        raise InvalidValueError(
            f"database type {type_name!r} is not available; one of {sorted(_TYPES)}"
        ) from None


def available_types() -> list[str]:
    return sorted(_TYPES)
