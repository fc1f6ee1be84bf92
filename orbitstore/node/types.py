"""Which handle class and view serve each database type (the one registry, used by
:meth:`Node.open`).

Each type's modules are imported the first time a database of that type is opened, so a
node that only holds keyvalue databases never imports pycrdt (the ydoc view)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from orbitstore.core.cid import Cid
from orbitstore.core.encryption import strip_meta
from orbitstore.core.entry import Entry
from orbitstore.core.manifest import Manifest
from orbitstore.errors import InvalidValueError
from orbitstore.storage.base import NodeStore
from orbitstore.storage.views import open_view_state
from orbitstore.views.base import View

if TYPE_CHECKING:
    from orbitstore.node.database import Database

ViewFactory = Callable[[NodeStore, Cid, Manifest], View]
Handler = tuple["type[Database]", ViewFactory | None]


class LogLookup:
    """Entries of ``db``'s log in ``store``: the views that report conflicts read them
    back (``orbitstore/views/causal.py``). In an encrypted database the node sets
    ``opener`` so that they read opened payloads, as they folded them."""

    def __init__(self, store: NodeStore, db: Cid) -> None:
        self._log_store = store.log_store(db)
        self.opener: Callable[[Entry], Entry] | None = None

    def __call__(self, cid: Cid) -> Entry | None:
        block = self._log_store.get_block(cid)
        if block is None:
            return None
        entry = Entry.from_trusted_block(cid, block)
        return entry if self.opener is None else self.opener(entry)


def with_opener(factory: ViewFactory, opener: Callable[[Entry], Entry]) -> ViewFactory:
    """``factory`` whose views read entries back through ``opener`` (encrypted databases)."""

    def make(store: NodeStore, db: Cid, manifest: Manifest) -> View:
        view = factory(store, db, manifest)
        lookup = getattr(view, "_lookup", None)
        if isinstance(lookup, LogLookup):
            lookup.opener = opener
        return view

    return make


def _lookup(store: NodeStore, db: Cid) -> LogLookup:
    return LogLookup(store, db)


def _log() -> Handler:
    from orbitstore.node.database import Database

    return Database, None


def _counter() -> Handler:
    from orbitstore.node.counter import Counter
    from orbitstore.views.counter import CounterView

    def view(store: NodeStore, db: Cid, manifest: Manifest) -> View:
        return CounterView(open_view_state(store, "counter", db))

    return Counter, view


def _documents() -> Handler:
    from orbitstore.node.documents import Documents
    from orbitstore.views.documents import DocumentsOptions, DocumentsView

    def view(store: NodeStore, db: Cid, manifest: Manifest) -> View:
        options = DocumentsOptions.from_meta(strip_meta(manifest.meta))
        state = open_view_state(store, "documents", db)
        return DocumentsView(state, options, lookup=_lookup(store, db))

    return Documents, view


def _feed() -> Handler:
    from orbitstore.node.feed import Feed
    from orbitstore.views.feed import FeedView

    def view(store: NodeStore, db: Cid, manifest: Manifest) -> View:
        return FeedView(open_view_state(store, "feed", db))

    return Feed, view


def _keyvalue() -> Handler:
    from orbitstore.node.keyvalue import KeyValue
    from orbitstore.views.keyvalue import KeyValueView

    def view(store: NodeStore, db: Cid, manifest: Manifest) -> View:
        return KeyValueView(open_view_state(store, "keyvalue", db), lookup=_lookup(store, db))

    return KeyValue, view


def _ydoc() -> Handler:
    from orbitstore.node.ydoc import YDocument, new_client_id
    from orbitstore.views.ydoc import YDocView

    def view(store: NodeStore, db: Cid, manifest: Manifest) -> View:
        return YDocView(open_view_state(store, "ydoc", db), client_id=new_client_id())

    return YDocument, view


_LOADERS: dict[str, Callable[[], Handler]] = {
    "log": _log,
    "counter": _counter,
    "documents": _documents,
    "feed": _feed,
    "keyvalue": _keyvalue,
    "ydoc": _ydoc,
}
_LOADED: dict[str, Handler] = {}


def database_class(type_name: str) -> Handler:
    """The handle class and view factory of ``type_name`` (imported on first use)."""
    found = _LOADED.get(type_name)
    if found is not None:
        return found
    loader = _LOADERS.get(type_name) if isinstance(type_name, str) else None
    if loader is None:
        raise InvalidValueError(
            f"database type {type_name!r:.40} is not available; one of {sorted(_LOADERS)}"
        )
    found = _LOADED[type_name] = loader()
    return found


def available_types() -> list[str]:
    return sorted(_LOADERS)
