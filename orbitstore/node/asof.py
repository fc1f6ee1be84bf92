"""Time travel: queries AS OF a set of heads.

How it works
============

A view is a deterministic function of a set of entries (``views/base.py``), and the log
is closed under ancestry, so any set of entries ``H`` this log holds names one past state:
the view of ``H`` and all its ancestors. Heads the database had at some moment name the
state it had then, on every replica that holds them.

1. **Resolve.** ``as_of`` (CIDs or their text) is parsed; every CID must be an entry of
   this log (else :class:`~orbitstore.errors.NotFoundError`). ``as_of`` equal to the
   current heads is the live view: no snapshot is built.
2. **Fold.** The entries of ``H`` and their ancestors are read with
   :meth:`OpLog.traverse` (total order, so parents come first) and folded into a *fresh*
   view of the database's type over a scratch in-memory SQLite store — the very view and
   state code that maintain the live tables, so the snapshot's rows are exactly the rows
   the live table had (or would have had) at ``H``. A view that can fold a whole history
   at once (:class:`~orbitstore.views.base.SnapshotFold`: keyvalue, feed, counter;
   :mod:`orbitstore.views.history`) computes the final rows in memory and writes them in
   one statement. Keyvalue (:class:`HistoryFold`) reads its history straight from the
   store's raw rows (:class:`~orbitstore.storage.base.EntryRows`) into columns, without
   an :class:`Entry` or a :class:`Cid` per row. Documents are folded by their own view
   code on a memory store, then their rows are copied in one statement
   (:class:`RowCopy`). Otherwise (ydoc, or a history the bulk fold refuses) the entries
   are applied in batches as a live view applies them. Under capabilities access the
   view folds only the entries visible *in that state*: a capability log of the history
   alone (:meth:`CapabilityLog.of_history`) decides, so a revocation in the past of
   ``H`` retracts what it retracts in the live view, and one outside it nothing.
3. **Attach.** The scratch database's image is deserialized into an attached schema of
   the query executor's read-only connection (:meth:`SqliteQueryExecutor.attach_image`);
   the query is compiled against a catalog whose source points at that schema and runs
   unchanged.
4. **Cache.** A snapshot never goes stale: the entries of ``H`` and their ancestors are
   immutable. :class:`SnapshotCache` keeps the last few per ``(database, H)`` (LRU), so a
   repeated time-travel query costs what a live one does.
"""

from __future__ import annotations

import gc
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.oplog import OpLog
from orbitstore.errors import InvalidCidError, InvalidValueError, NotFoundError, UsageError
from orbitstore.storage.base import EntryRows, NodeStore, SeqLogStore
from orbitstore.storage.memory import MemoryStore
from orbitstore.storage.query_exec import MAX_ATTACHED, SqliteQueryExecutor
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.views.base import SnapshotFold, View
from orbitstore.views.history import History

#: What ``as_of`` takes: entry CIDs (or their text), or a single one.
Heads = Iterable[Cid | str] | Cid | str

# Entries applied to the scratch view per call: bounds the list held at once.
_FOLD_BATCH = 1000


#: Types whose SQL table exists only in snapshots: a query of the current state is a
#: query as of the current heads (a ydoc's document lives in memory, not in a table).
SNAPSHOT_ONLY = frozenset({"ydoc"})


class Snapshottable(Protocol):
    """What building a snapshot needs of a database handle."""

    cid: Cid

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def log(self) -> OpLog: ...

    @property
    def heads(self) -> frozenset[Cid]: ...

    @property
    def encrypted(self) -> bool: ...

    def view_entries(self, entries: Sequence[Entry]) -> list[Entry]: ...

    def fresh_view(self, store: NodeStore) -> View | None: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An attached snapshot: the executor schema holding its view tables, and the log id
    its rows carry there."""

    schema: str
    log_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AsOf:
    """A request for database ``db`` (local ``name``) as of ``heads``."""

    db: Cid
    name: str
    heads: frozenset[Cid]
    build: Callable[[], tuple[bytes, int]] = field(compare=False, repr=False)

    @property
    def key(self) -> tuple[Cid, frozenset[Cid]]:
        return (self.db, self.heads)


def parse_heads(value: Heads) -> frozenset[Cid]:
    """The set of CIDs ``value`` names; InvalidValueError for anything else."""
    if isinstance(value, Cid | str):
        value = [value]
    if isinstance(value, bytes | bytearray) or not isinstance(value, Iterable):
        raise InvalidValueError(
            f"as_of is an iterable of entry CIDs (Cid or str), not {type(value).__name__}"
        )
    out: set[Cid] = set()
    for item in value:
        if isinstance(item, Cid):
            out.add(item)
        elif isinstance(item, str):
            try:
                out.add(Cid.parse(item))
            except InvalidCidError as exc:
                raise InvalidValueError(f"as_of: {item!r:.80} is not a CID: {exc}") from exc
        else:
            raise InvalidValueError(f"as_of holds entry CIDs, not {type(item).__name__}")
    return frozenset(out)


def resolve(db: Snapshottable, value: Heads) -> AsOf | None:
    """The snapshot request for ``db`` as of ``value``; None when ``value`` is the
    current heads (the live view is that state). NotFoundError for a CID that is not an
    entry of this log."""
    heads = parse_heads(value)
    log = db.log
    for cid in sorted(heads, key=str):
        if not log.has(cid):
            raise NotFoundError(
                f"as_of: {cid} is not an entry of database {db.name!r}", cid=cid, db=db.name
            )
    if heads == db.heads and db.type not in SNAPSHOT_ONLY:
        return None
    return AsOf(db=db.cid, name=db.name, heads=heads, build=lambda: fold_image(db, heads))


def request(db: Snapshottable, value: Heads | None) -> AsOf | None:
    """The snapshot a query of ``db`` needs: as of ``value`` (None: the current state,
    which needs one only for the types of :data:`SNAPSHOT_ONLY`)."""
    if value is None:
        if db.type not in SNAPSHOT_ONLY:
            return None
        value = db.heads
    return resolve(db, value)


def fold_image(db: Snapshottable, heads: frozenset[Cid], *, bulk: bool = True) -> tuple[bytes, int]:
    """Fold ``heads`` and their ancestors into a fresh view on a scratch in-memory store;
    return the store's image and the log id its view rows carry. ``bulk=False`` folds
    entry by entry as a live view does (the reference the bulk folds are tested against)."""
    scratch = SqliteStore.in_memory()
    try:
        view = db.fresh_view(scratch)
        if view is None and db.type != "log":
            raise UsageError(f"database {db.name!r} has no view to query as of past heads")
        log_store = scratch.log_store(db.cid)
        with scratch.transaction(), _collector_paused():
            # The entries live only inside this call: freed before the collector resumes,
            # they are not walked by it either.
            _fold_history(db, view, log_store, heads, bulk=bulk)
        return scratch.serialize(), log_store.log_id
    finally:
        scratch.close()


def _fold_history(
    db: Snapshottable,
    view: View | None,
    log_store: SeqLogStore,
    heads: frozenset[Cid],
    *,
    bulk: bool,
) -> None:
    if bulk and isinstance(view, HistoryFold) and _fold_rows(db, view, heads):
        return
    entries = list(db.log.traverse(heads))
    if view is None:  # a log's table reads its entries
        log_store.add_entries(entries)
        return
    shown = _visible(db, entries)
    if bulk and isinstance(view, SnapshotFold) and view.fold_snapshot(db.view_entries(shown)):
        return
    if bulk and isinstance(view, RowCopy):
        _fold_staged(db, view, entries, shown)
        return
    # Entry by entry, as a live view. Views that report conflicts (keyvalue, documents)
    # read entries back from the log of the store they live in, as in a live database:
    # the scratch log holds the whole history (retracted entries and ACL ops included).
    if getattr(view, "reads_log", False):
        log_store.add_entries(entries)
    for i in range(0, len(shown), _FOLD_BATCH):
        view.apply(db.view_entries(shown[i : i + _FOLD_BATCH]), local=False)


@runtime_checkable
class HistoryFold(Protocol):
    """A view that folds a whole history by columns (:class:`~orbitstore.views.history.
    History`: keyvalue)."""

    def fold_history(self, history: History) -> bool: ...


def _fold_rows(db: Snapshottable, view: HistoryFold, heads: frozenset[Cid]) -> bool:
    """The fast path: fold the history straight from the store's raw rows, no Entry or
    Cid per row (:meth:`History.of_rows`). False, with nothing written, where it does
    not apply: an encrypted database (payloads are opened entry by entry), capabilities
    access (visibility is decided on entries), a store without raw rows, or a history
    the view's bulk fold refuses."""
    log = db.log
    store = log.store
    if db.encrypted or log.capabilities is not None or not isinstance(store, EntryRows):
        return False
    clocks = store.get_clocks(heads)
    rows = store.iter_entry_rows(max_clock=max(clocks.values(), default=0))
    history = History.of_rows(rows, [bytes(h) for h in clocks])
    del rows
    return view.fold_history(history)


def _visible(db: Snapshottable, entries: list[Entry]) -> list[Entry]:
    """The entries of a history the view folds: under capabilities access, those visible
    in the state the history is (its own ACL ops decide: a revocation outside it retracts
    nothing there, one inside it does, as in the live view); otherwise all."""
    caps = db.log.capabilities
    if caps is None:
        return entries
    past = caps.of_history(entries)
    return [e for e in entries if past.visible(e)]


@runtime_checkable
class RowCopy(Protocol):
    """A view whose SQL rows can be copied from another view of its type (documents)."""

    def dump_rows(self) -> Sequence[Any]: ...

    def load_rows(self, rows: Sequence[Any]) -> None: ...


def _fold_staged(
    db: Snapshottable, view: RowCopy, entries: list[Entry], shown: list[Entry]
) -> None:
    """Fold ``shown`` (of the history ``entries``) into a view on a memory store (the
    same view code, its state in dicts: no SQL per op), then copy its rows into ``view``
    in one statement."""
    memory = MemoryStore()
    staged = db.fresh_view(memory)
    assert isinstance(staged, RowCopy)
    memory.log_store(db.cid).add_entries(entries)  # read back to render conflicts
    staged.apply(db.view_entries(shown), local=False)
    view.load_rows(staged.dump_rows())


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a history is folded: the fold
    allocates tens of thousands of acyclic containers (entries, payloads, rows), and
    every few hundred allocations the collector would walk them all again (a third of
    the fold's time at 10,000 entries). Collection resumes, as it was, right after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True, slots=True)
class SnapshotStatistics:
    size: int
    hits: int
    misses: int
    evictions: int


class SnapshotCache:
    """The last ``capacity`` snapshots, attached to the executor (LRU)."""

    def __init__(self, executor: SqliteQueryExecutor, capacity: int) -> None:
        self._executor = executor
        self._capacity = max(1, min(capacity, MAX_ATTACHED))
        self._lru: OrderedDict[tuple[Cid, frozenset[Cid]], Snapshot] = OrderedDict()
        self._hits = self._misses = self._evictions = 0

    def acquire(self, requests: Sequence[AsOf]) -> dict[tuple[Cid, frozenset[Cid]], Snapshot]:
        """A snapshot for every request (built and attached if not cached). All of them
        stay attached until the next call."""
        wanted = {r.key: r for r in requests}
        if len(wanted) > MAX_ATTACHED:
            raise UsageError(f"a query reads at most {MAX_ATTACHED} AS OF snapshots")
        missing = [r for k, r in wanted.items() if k not in self._lru]
        room = max(self._capacity, len(wanted))
        for key in list(self._lru):
            if len(self._lru) + len(missing) <= room:
                break
            if key not in wanted:
                self._evict(key)
        out: dict[tuple[Cid, frozenset[Cid]], Snapshot] = {}
        for key, request in wanted.items():
            found = self._lru.get(key)
            if found is None:
                self._misses += 1
                image, log_id = request.build()
                found = Snapshot(self._executor.attach_image(image), log_id)
                self._lru[key] = found
            else:
                self._hits += 1
                self._lru.move_to_end(key)
            out[key] = found
        return out

    def _evict(self, key: tuple[Cid, frozenset[Cid]]) -> None:
        snapshot = self._lru.pop(key)
        self._evictions += 1
        self._executor.detach(snapshot.schema)

    def clear(self) -> None:
        for key in list(self._lru):
            self._evict(key)

    def statistics(self) -> SnapshotStatistics:
        return SnapshotStatistics(len(self._lru), self._hits, self._misses, self._evictions)
