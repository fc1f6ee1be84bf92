"""The ydoc view: a collaborative document (Yjs / pycrdt) folded from the log.

How it works
============

Operations (entry payloads)::

    {"op": "update", "update": <bytes>}        # a Yjs v1 update

The view keeps one :class:`pycrdt.Doc` in memory and applies every entry's update to it,
in the order the log hands entries over. Yjs is itself a CRDT, so the document converges
on every replica that holds the same entries, whatever order they arrived in.

Rule 1 — apply in log order, and nothing is ever left pending. Yjs integrates an update
only when the structs it builds on are already in the document; otherwise it parks the
update as *pending* (and a pending struct is missing from ``get_update``, so it would
silently fall out of a snapshot). The log hands the view entries parents first, and an
honest writer's update only builds on Yjs state that came from that writer's causal past
in the log: the writer's document held exactly the updates of the entries it had applied
(all ancestors of the heads it appends on) plus its own earlier captured edits (committed
before, or in, the same entry, in capture order — see Rule 3). So by the time an entry is
applied, everything its update depends on has been applied. A writer that breaks this
(a forged or corrupt update) only hurts itself: its update stays pending identically on
every replica, because every replica holds the same set of updates.

Rule 2 — bad payloads are ignored and counted, never fatal. A valid signed entry whose
payload is not ``{"op": "update", "update": <bytes>}`` or whose bytes do not decode as a
Yjs v1 update changes nothing (pycrdt decodes the whole update before it integrates any
of it, so a bad update cannot be half applied). Every replica ignores the same entries,
so they still converge. :attr:`YDocStatistics.ignored` counts them.

Rule 3 — local edits are captured, then committed explicitly. Edits made through pycrdt
on :attr:`YDocView.doc` fire the document's transaction observer; the view keeps each
transaction's update in a *captured* list (one item per pycrdt transaction). Updates the
view applies from the log run in a transaction whose origin is :data:`REMOTE_ORIGIN`
and are not captured. The database handle turns captured updates into entries
(:meth:`take_captured` + :func:`pack_updates`: merged into as few entries as the entry
size limit allows) and must commit them in capture order, never dropping any: a later
edit may build on an earlier one.

If an entry arrives while the application holds a pycrdt transaction open (it awaited
inside ``with doc.transaction():``), applying would fold the remote update into the local
transaction. The view *defers* such updates and applies them at the next opportunity
(:meth:`apply_deferred`, called on every apply and commit).

Rule 4 — snapshots are built from the log, not from the document. The persisted state is
``(seq, update)``: one Yjs update equal to the merge (``pycrdt.merge_updates``) of every
valid update of the entries with arrival number ``<= seq``. Building it from the log's
updates instead of ``doc.get_update()`` keeps out local edits not yet committed (they
must never outlive a crash without an entry that carries them) and keeps pending structs
(Rule 1). A snapshot is written every ``snapshot_every`` updates and when the database
closes; on open the view loads it and replays only the entries after ``seq`` — at most
``snapshot_every`` of them after a crash, none after a clean close. The view therefore
owns its checkpoint (:class:`~orbitstore.views.base.SnapshotView`).

The view does no I/O: its state object stores the snapshot, and the caller passes in the
Yjs client id (randomness belongs to the node).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import pycrdt

from orbitstore.core.dagjson import to_json
from orbitstore.core.entry import Entry
from orbitstore.errors import InvalidValueError
from orbitstore.views.base import Change, change_for

#: The origin of the pycrdt transactions in which the view applies updates from the log.
#: Pass it to ``pycrdt.UndoManager`` to keep remote edits out of a user's undo stack.
REMOTE_ORIGIN: Final = "orbitstore.remote"
#: The Yjs v1 encoding of an update that changes nothing.
EMPTY_UPDATE: Final = b"\x00\x00"
# Room left in an entry for everything but the update (fields, signature, CID links).
_ENTRY_OVERHEAD: Final = 8 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class YDocConfig:
    # 1,000 updates: reopening after a crash replays at most this many (a few ms), while
    # the O(document size) snapshot write happens once per 1,000 writes, not per write.
    snapshot_every: int = 1000

    def __post_init__(self) -> None:
        every = self.snapshot_every
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise InvalidValueError("snapshot_every must be an integer >= 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredSnapshot:
    """The persisted state of a ydoc view: the merge of every valid update up to ``seq``."""

    seq: int
    update: bytes
    updates: int
    """How many updates were merged into it (all time)."""

    def __post_init__(self) -> None:
        if not isinstance(self.seq, int) or self.seq < 0:
            raise InvalidValueError("a snapshot seq is an integer >= 0")
        if not isinstance(self.update, bytes):
            raise InvalidValueError("a snapshot is a Yjs update (bytes)")


class YDocState(Protocol):
    def load(self) -> tuple[int, int, bytes] | None:
        """The last snapshot saved, as ``(seq, updates, update)``, if any."""
        ...

    def save(self, seq: int, updates: int, snapshot: bytes) -> None:
        """Replace the snapshot (inside the caller's transaction)."""
        ...

    def set_roots(self, rows: Sequence[RootRow]) -> None:
        """Write the SQL rows of the document's roots (AS OF snapshots only)."""
        ...


RootRow = tuple[str, str | None, str | None]
"""A root of the document for SQL: its name, its content read as Text (None if empty)
and read as a Map, as DAG-JSON (None if empty or without a JSON form)."""


@dataclass(frozen=True, slots=True)
class YDocStatistics:
    applied: int
    """Updates applied from the log since the view was opened (replays included)."""
    ignored: int
    """Valid entries whose payload is not a decodable Yjs update (Rule 2)."""
    captured: int
    """Local transactions captured and not yet committed."""
    deferred: int
    """Log updates waiting for the application to close its pycrdt transaction."""
    since_snapshot: int
    """Updates applied after the stored snapshot (replayed on open after a crash)."""
    snapshot_seq: int
    """The arrival number the stored snapshot reflects."""


def update_op(update: bytes) -> dict[str, Any]:
    """The payload carrying one Yjs update; InvalidValueError if it is not bytes."""
    if not isinstance(update, bytes | bytearray | memoryview):
        raise InvalidValueError("a ydoc update is bytes (a Yjs v1 update)")
    return {"op": "update", "update": bytes(update)}


def update_of(payload: Any) -> bytes | None:
    """The Yjs update an entry payload carries, or None if it is not an update op."""
    if not isinstance(payload, dict) or payload.get("op") != "update":
        return None
    update = payload.get("update")
    return update if isinstance(update, bytes) else None


def pack_updates(updates: Sequence[bytes], *, budget: int) -> list[bytes]:
    """Merge consecutive updates into as few as possible of at most ~``budget`` bytes.

    The order is kept (each result holds a run of consecutive inputs). An input larger
    than the budget is passed through alone; the entry size limit then refuses it.
    """
    packed: list[bytes] = []
    run: list[bytes] = []
    size = 0
    for update in updates:
        if run and size + len(update) > budget:
            packed.append(_merge(run))
            run, size = [], 0
        run.append(update)
        size += len(update)
    if run:
        packed.append(_merge(run))
    return packed


def _merge(updates: Sequence[bytes]) -> bytes:
    return updates[0] if len(updates) == 1 else bytes(pycrdt.merge_updates(*updates))


def entry_budget(max_entry_bytes: int) -> int:
    """How many update bytes fit in one entry under ``max_entry_bytes``."""
    return max(1, max_entry_bytes - _ENTRY_OVERHEAD)


class YDocView:
    """A pycrdt document kept equal to the log's updates (plus uncommitted local edits)."""

    name = "ydoc"

    def __init__(
        self,
        state: YDocState,
        *,
        config: YDocConfig | None = None,
        client_id: int | None = None,
    ) -> None:
        self._state = state
        self._config = config or YDocConfig()
        self._doc: pycrdt.Doc[Any] = pycrdt.Doc(client_id=client_id)
        self._remote = False
        self._captured: list[bytes] = []
        self._deferred: list[tuple[Entry, bytes, bool]] = []
        self._tail: list[bytes] = []  # valid updates applied after the snapshot
        self._applied = 0
        self._ignored = 0
        loaded = state.load()
        stored = (
            None
            if loaded is None
            else StoredSnapshot(seq=loaded[0], updates=loaded[1], update=loaded[2])
        )
        self._snapshot = stored or StoredSnapshot(seq=0, update=EMPTY_UPDATE, updates=0)
        if stored is not None and self._integrate(stored.update) is not True:
            # Our own snapshot no longer decodes: start empty and replay the whole log.
            self._snapshot = StoredSnapshot(seq=0, update=EMPTY_UPDATE, updates=0)
        self._subscription = self._doc.observe(self._on_transaction)

    # -- reading ------------------------------------------------------------------------

    @property
    def doc(self) -> pycrdt.Doc[Any]:
        """The live document. Edits made on it are captured (Rule 3)."""
        return self._doc

    def snapshot(self) -> bytes:
        """The whole current document as one Yjs v1 update any Yjs client can load."""
        return bytes(self._doc.get_update())

    def roots(self) -> list[RootRow]:
        """Every root of the document, by name, as the SQL table shows it. Yjs roots
        have no type of their own until read, so each is read both ways, each on its own
        copy of the document (the live one keeps the types the application gave it)."""
        update = self.snapshot()
        as_text: pycrdt.Doc[Any] = pycrdt.Doc()
        as_text.apply_update(update)
        as_map: pycrdt.Doc[Any] = pycrdt.Doc()
        as_map.apply_update(update)
        rows: list[RootRow] = []
        for name in sorted(as_text.keys()):
            text = str(as_text.get(name, type=pycrdt.Text)) or None
            fields = as_map.get(name, type=pycrdt.Map).to_py() or None
            try:
                encoded = None if fields is None else to_json(fields)
            except InvalidValueError:
                encoded = None
            rows.append((name, text, encoded))
        return rows

    def fold_snapshot(self, entries: Sequence[Entry]) -> bool:
        """Fold a whole history for a read-only snapshot, with the rows of its roots."""
        self.apply(entries, local=False)
        self._state.set_roots(self.roots())
        return True

    def statistics(self) -> YDocStatistics:
        return YDocStatistics(
            applied=self._applied,
            ignored=self._ignored,
            captured=len(self._captured),
            deferred=len(self._deferred),
            since_snapshot=len(self._tail),
            snapshot_seq=self._snapshot.seq,
        )

    # -- the log side -------------------------------------------------------------------

    def apply(self, entries: Sequence[Entry], *, local: bool) -> list[Change]:
        changes = self.apply_deferred()
        for entry in entries:
            update = update_of(entry.payload)
            if update is None:
                self._ignored += 1
                continue
            if self._deferred:  # keep log order behind updates already waiting
                self._deferred.append((entry, update, local))
                continue
            change = self._apply_one(entry, update, local)
            if change is not None:
                changes.append(change)
        return changes

    def apply_deferred(self) -> list[Change]:
        """Apply log updates that waited for a local pycrdt transaction to close."""
        changes: list[Change] = []
        while self._deferred:
            entry, update, local = self._deferred[0]
            outcome = self._integrate(update)
            if outcome is None:
                break
            self._deferred.pop(0)
            if outcome:
                self._applied += 1
                self._tail.append(update)
                changes.append(change_for(entry, "update", value=update, local=local))
            else:
                self._ignored += 1
        return changes

    def _apply_one(self, entry: Entry, update: bytes, local: bool) -> Change | None:
        outcome = self._integrate(update)
        if outcome is None:
            self._deferred.append((entry, update, local))
            return None
        if not outcome:
            self._ignored += 1
            return None
        self._applied += 1
        self._tail.append(update)
        return change_for(entry, "update", value=update, local=local)

    def _integrate(self, update: bytes) -> bool | None:
        """Apply one update from the log. None: a local transaction is open (defer);
        False: the bytes are not a Yjs update (nothing changed)."""
        try:
            txn = self._doc.transaction(origin=REMOTE_ORIGIN)
        except RuntimeError:  # the application holds a transaction open
            return None
        self._remote = True
        try:
            with txn:
                self._doc.apply_update(update)
        except ValueError:
            return False
        finally:
            self._remote = False
        return True

    # -- snapshots (SnapshotView) ----------------------------------------------------------

    def checkpoint(self) -> int:
        """The arrival number the stored snapshot reflects: replay entries after it."""
        return self._snapshot.seq

    def save(self, seq: int, *, force: bool = False) -> None:
        """Called after each apply (in its transaction) with the log's last ``seq``.

        Writes a snapshot every ``snapshot_every`` updates, or with ``force`` whenever
        ``seq`` moved. Never while updates are deferred: the snapshot at ``seq`` must hold
        every valid update up to ``seq``.
        """
        if self._deferred or seq <= self._snapshot.seq:
            return
        if not force and len(self._tail) < self._config.snapshot_every:
            return
        merged = (
            _merge([self._snapshot.update, *self._tail]) if self._tail else self._snapshot.update
        )
        snapshot = StoredSnapshot(
            seq=seq, update=merged, updates=self._snapshot.updates + len(self._tail)
        )
        self._state.save(snapshot.seq, snapshot.updates, snapshot.update)
        self._snapshot = snapshot
        self._tail = []

    # -- the local side -----------------------------------------------------------------

    def _on_transaction(self, event: pycrdt.TransactionEvent) -> None:
        if self._remote:
            return
        update = bytes(event.update)
        if update != EMPTY_UPDATE:
            self._captured.append(update)

    @property
    def has_captured(self) -> bool:
        return bool(self._captured)

    def take_captured(self) -> list[bytes]:
        """Every local update captured since the last call, oldest first."""
        captured, self._captured = self._captured, []
        return captured

    def restore_captured(self, updates: Sequence[bytes]) -> None:
        """Put back updates whose commit failed, ahead of anything captured since."""
        self._captured[:0] = updates


def check_update(update: bytes) -> bytes:
    """``update`` if it decodes as a Yjs v1 update, else InvalidValueError."""
    if not isinstance(update, bytes | bytearray | memoryview):
        raise InvalidValueError("a ydoc update is bytes (a Yjs v1 update)")
    update = bytes(update)
    try:
        pycrdt.get_state(update)
    except ValueError as exc:
        raise InvalidValueError(f"not a Yjs v1 update: {exc}") from exc
    return update
