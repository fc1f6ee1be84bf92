"""The documents view: JSON-like documents keyed by an id field, merged by CRDT rules.

How it works
============

Operations (entry payloads)::

    {"op": "put",   "doc": {...}}                                 write a whole document
    {"op": "del",   "id": <id>}                                   delete a document
    {"op": "patch", "id": <id>, "set": {f: v}, "unset": [f]}      field writes (field mode)
    {"op": "batch", "ops": [<put|del|patch>, ...]}                several ops, one entry

An id is a non-empty string of at most :data:`MAX_ID_CHARS` characters. A document is a
DAG-CBOR map whose id field (``_id`` unless the manifest says otherwise) holds its id.

Every op has an *op key* ``(clock, writer, cid bytes, op index)``: the entry's place in
the total order, then the op's position inside a batch (0 for a single op). Later in the
total order wins; inside one batch, later ops win over earlier ones.

Rule 1 — document mode (the default, ``merge: "document"``). A document is one
last-writer-wins register: its value is that of the put or del with the greatest op key
(a del leaves a tombstone, so an older put that arrives late stays invisible). Patch ops
are ignored in this mode; the handle turns a patch into a put of the merged document.

Rule 2 — field mode (``merge: "field"``). Every top-level field of a document is its own
register. A put *clears* the document at its op key and writes each of its fields at that
same key; a del clears it; a patch writes the fields in ``set`` (value) and ``unset``
(absent). A field is visible when its latest write is present and its key is not less than
the document's latest clear. The document exists when at least one field is visible; it
is then the visible fields plus its id field. So concurrent patches of different fields
both survive; a put replaces the fields that older writes made; and a patch ordered after
a delete resurrects the document with only the fields written after the delete. A field
register that sorts before the latest clear can never be visible again and is dropped.

Rule 3 — bad operations. An op of the wrong shape (for example a put whose document has
no valid id, or a value with no DAG-JSON form, such as a map ``{"/": "text"}``; see
:mod:`orbitstore.core.dagjson`) is ignored; a batch holding any such op is ignored whole,
so a batch is all or nothing. The handle validates before writing, so only foreign
writers produce these.

The view reads and writes through an injected :class:`DocumentsState` (SQLite and memory
implementations live in :mod:`orbitstore.storage.views.documents`) and returns a
:class:`~orbitstore.views.base.Change` (``"put"`` with the new document, or ``"delete"``)
only when the visible document changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeAlias

from orbitstore.core import codec
from orbitstore.core.entry import Entry
from orbitstore.core.order import OrderKey
from orbitstore.errors import InvalidValueError
from orbitstore.views.base import Change, Conflict, change_for
from orbitstore.views.causal import (
    CausalState,
    CausalTracker,
    EntryLookup,
    Member,
    Step,
    conflicts_json,
    newest_first,
    prune,
)
from orbitstore.views.document_conflicts import DocumentConflicts
from orbitstore.views.document_ops import (
    DEFAULT_ID_FIELD,
    MAX_ID_CHARS,
    MAX_INDEXES,
    WHERE_OPS,
    DocumentsOptions,
    MergeMode,
    OpKey,
    WhereValue,
    _Del,
    _Op,
    _Patch,
    _Put,
    batch_op,
    check_id,
    check_path,
    check_where,
    delete_op,
    parse_ops,
    patch_op,
    put_op,
)

__all__ = [  # the op helpers live in document_ops; this module re-exports them
    "DEFAULT_ID_FIELD",
    "DocumentsOptions",
    "DocumentsState",
    "DocumentsView",
    "FieldRegisters",
    "MAX_ID_CHARS",
    "MAX_INDEXES",
    "MergeMode",
    "OpKey",
    "Register",
    "RowWrite",
    "WHERE_OPS",
    "WhereValue",
    "batch_op",
    "check_id",
    "check_path",
    "check_where",
    "delete_op",
    "parse_ops",
    "patch_op",
    "put_op",
]

# --- state ---------------------------------------------------------------------------------

FieldRegisters: TypeAlias = dict[str, tuple[OpKey, bool, Any]]
"""Field mode: field name -> (op key of its latest write, present?, value)."""

Register: TypeAlias = tuple[OrderKey, bytes | None, int, bytes | None, str | None]
"""A row: order key, value, the winner's arrival, conflict bookkeeping, its JSON."""

RowWrite: TypeAlias = tuple[
    str, OrderKey, bytes | None, dict[str, Any] | None, int, bytes | None, str | None
]
"""A row to write: id, order key, value, decoded doc, arrival, bookkeeping, JSON."""


class DocumentsState(CausalState, Protocol):
    """Where the documents view keeps its state (SQLite or memory). Values cross this
    interface as plain tuples so storage never imports this module."""

    # materialized rows (both modes; in document mode they are the registers)
    def get_row(self, doc_id: str) -> tuple[OrderKey, bytes | None] | None:
        """The order key and DAG-CBOR value (None: deleted) of a document's row."""
        ...

    def get_registers(self, doc_ids: Iterable[str]) -> dict[str, Register]:
        """Rows with their conflict bookkeeping, for many ids (absent ids left out)."""
        ...

    def set_rows(self, rows: Iterable[RowWrite]) -> None:
        """Insert or replace rows; each ``doc`` is the decoded ``value`` (for the JSON
        column), with the winner's arrival, the conflict bookkeeping and its JSON."""
        ...

    def set_conflicts(self, doc_id: str, conflicts: bytes | None, text: str | None) -> None:
        """Replace the conflict bookkeeping of an existing row."""
        ...

    def conflicted(self, limit: int) -> list[str]:
        """Up to ``limit`` ids (deleted ones included) that have conflicts, by id."""
        ...

    # field mode registers
    def get_fields(self, doc_id: str) -> tuple[OpKey | None, FieldRegisters]:
        """The latest clear of a document and its field registers."""
        ...

    def set_fields(self, doc_id: str, clear: OpKey | None, fields: FieldRegisters) -> None: ...

    # reads
    def get(self, doc_id: str) -> dict[str, Any] | None: ...

    def all(self, *, limit: int | None) -> list[dict[str, Any]]: ...

    def count(self) -> int: ...

    def rows(self) -> list[tuple[str, OrderKey, bytes | None]]:
        """Every row, tombstones included, by id (for tests and rebuild checks)."""
        ...

    def dump_rows(self) -> list[RowWrite]:
        """Every row as :meth:`set_rows` takes it (to copy a state elsewhere)."""
        ...

    def where(
        self, path: str, op: str, value: WhereValue, *, limit: int | None
    ) -> list[dict[str, Any]]: ...

    # declared indexes
    def indexes(self) -> list[str]: ...

    def create_index(self, path: str) -> None: ...


# --- the view -------------------------------------------------------------------------------


def _order(key: OpKey) -> OrderKey:
    return (key[0], key[1], key[2])


class DocumentsView:
    """Folds documents ops into a :class:`DocumentsState` (see the module docstring).
    ``lookup`` reads entries of the log (to tell concurrent writes from superseded ones)."""

    name = "documents"
    #: It reads entries back from its log (``lookup``): AS OF snapshots must hold them.
    reads_log = True

    def __init__(
        self, state: DocumentsState, options: DocumentsOptions, *, lookup: EntryLookup
    ) -> None:
        self._state = state
        self.options = options
        self._causal = CausalTracker(state, lookup)
        self._conflicts = DocumentConflicts(options.id_field, lookup)
        for path in options.indexes:
            state.create_index(path)

    @property
    def state(self) -> DocumentsState:
        return self._state

    def apply(self, entries: Sequence[Entry], *, local: bool) -> list[Change]:
        changes: list[Change] = []
        field_mode = self.options.merge == "field"
        self._causal.begin()
        for entry in entries:
            step = self._causal.step(entry)  # every entry: it moves the heads
            ops = parse_ops(entry.payload, self.options.id_field)
            if not ops:
                continue
            if field_mode:
                for index, op in enumerate(ops):
                    done = self._apply_field(step, op, index, local=local)
                    if done is not None:
                        changes.append(done)
            else:
                changes.extend(self._apply_document(step, ops, local=local))
        self._causal.end()
        return changes

    # Rule 1 and rule 4 (document mode)
    def _apply_document(self, step: Step, ops: list[_Op], *, local: bool) -> list[Change]:
        entry = step.entry
        # Within an entry a later op on an id supersedes an earlier one.
        last = {op.id: (i, op) for i, op in enumerate(ops) if not isinstance(op, _Patch)}
        registers = self._state.get_registers(last)
        conflicts = self._conflicts
        written: list[RowWrite] = []
        changes: list[Change] = []
        for doc_id, (_, op) in sorted(last.items(), key=lambda t: t[1][0]):
            register = registers.get(doc_id)
            new = step.member(0)  # one member per entry and document
            old_losers: list[Member] = []
            members: list[Member] = []
            if register is not None:
                old_losers = conflicts.decode_losers(register[3])
                members = [Member((*register[0], 0), register[2]), *old_losers]
            kept = [*prune(members, step), new]
            top = max(kept, key=lambda m: m.stamp)
            losers = newest_first(m for m in kept if m is not top)
            rendered = conflicts.render_documents(doc_id, losers)
            blob, text = conflicts.encode_losers(losers), conflicts_json(rendered)
            if top is not new:  # an older op loses; here it is concurrent with the winner
                assert register is not None
                self._state.set_conflicts(doc_id, blob, text)
                current = None if register[1] is None else codec.decode(register[1])
                changes.append(
                    change_for(
                        entry,
                        "conflict",
                        key=doc_id,
                        value=current,
                        local=local,
                        conflicts=rendered,
                    )
                )
                continue
            doc = op.doc if isinstance(op, _Put) else None
            value = None if doc is None else codec.encode(doc)
            written.append((doc_id, entry.order_key, value, doc, new.arrival, blob, text))
            if (None if register is None else register[1]) != value:
                kind = "delete" if doc is None else "put"
            elif set(losers) != set(old_losers):
                kind = "conflict"
            else:
                continue
            changes.append(
                change_for(entry, kind, key=doc_id, value=doc, local=local, conflicts=rendered)
            )
        self._state.set_rows(written)
        return changes

    # Rule 2 and rule 4 (field mode)
    def _apply_field(self, step: Step, op: _Op, index: int, *, local: bool) -> Change | None:
        key: OpKey = (step.entry.clock, step.entry.writer, bytes(step.entry.cid), index)
        clear, fields = self._state.get_fields(op.id)
        if isinstance(op, _Put | _Del) and (clear is None or clear < key):
            clear = key
        writes: dict[str, tuple[bool, Any]] = {}
        if isinstance(op, _Put):
            writes = {name: (True, v) for name, v in op.doc.items()}
        elif isinstance(op, _Patch):
            writes = {name: (True, v) for name, v in op.set.items()}
            writes.update((name, (False, None)) for name in op.unset)
        for name, (present, v) in writes.items():
            current = fields.get(name)
            if current is None or current[0] < key:
                fields[name] = (key, present, v)
        if clear is not None:
            fields = {n: r for n, r in fields.items() if r[0] >= clear}
        self._state.set_fields(op.id, clear, fields)
        register = self._state.get_registers([op.id]).get(op.id)
        conflicts = self._conflicts
        maximal = conflicts.field_write(
            conflicts.decode_fields(None if register is None else register[3]), step, op, index
        )
        rendered = conflicts.render_fields(maximal)
        text = conflicts_json(rendered)
        doc, changed = self._materialize(
            op.id, clear, fields, register, conflicts.encode_fields(maximal), text
        )
        if changed:
            kind = "delete" if doc is None else "put"
        elif text != (None if register is None else register[4]):
            kind = "conflict"
        else:
            return None
        return change_for(step.entry, kind, key=op.id, value=doc, local=local, conflicts=rendered)

    def _materialize(  # noqa: PLR0917 - private, called once
        self,
        doc_id: str,
        clear: OpKey | None,
        fields: FieldRegisters,
        register: Register | None,
        blob: bytes,
        text: str | None,
    ) -> tuple[dict[str, Any] | None, bool]:
        """Write the row of a field-mode document; return it and whether it changed."""
        visible = {n: v for n, (_, present, v) in fields.items() if present}
        doc: dict[str, Any] | None = None
        if visible:
            visible[self.options.id_field] = doc_id
            doc = dict(sorted(visible.items()))
        keys = [k for k, _, _ in fields.values()]
        if clear is not None:
            keys.append(clear)
        latest = _order(max(keys))  # every parsed op writes a field or clears
        value = None if doc is None else codec.encode(doc)
        self._state.set_rows([(doc_id, latest, value, doc, 0, blob, text)])
        return doc, (None if register is None else register[1]) != value

    # -- copying (AS OF snapshots) -----------------------------------------------------------

    def dump_rows(self) -> list[RowWrite]:
        """The rows of this view (queried through SQL) as :meth:`load_rows` takes them."""
        return self._state.dump_rows()

    def load_rows(self, rows: Sequence[RowWrite]) -> None:
        """Write rows dumped from another view of the same database into this one's empty
        state: its SQL table then answers like the other's (the field registers and the
        causal bookkeeping are not copied: a snapshot is read-only)."""
        self._state.set_rows(rows)

    # -- conflicts --------------------------------------------------------------------------

    def conflicts(self, doc_id: str) -> tuple[Conflict, ...]:
        """The concurrent writes that lost to the visible document (document mode) or to
        its fields (field mode: each :class:`Conflict` names its ``field``), newest first
        within a field; empty when there are none."""
        register = self._state.get_registers([check_id(doc_id)]).get(doc_id)
        if register is None or register[3] is None:
            return ()
        if self.options.merge == "field":
            return self._conflicts.render_fields(self._conflicts.decode_fields(register[3]))
        return self._conflicts.render_documents(doc_id, self._conflicts.decode_losers(register[3]))

    def conflicted(self, *, limit: int | None = None) -> list[str]:
        """Ids of documents that have conflicts (deleted ones included), by id."""
        checked = _check_limit(limit)
        return self._state.conflicted(-1 if checked is None else checked)

    # -- reads (through the state) --------------------------------------------------------

    def get(self, doc_id: str) -> dict[str, Any] | None:
        return self._state.get(check_id(doc_id))

    def all(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        return self._state.all(limit=_check_limit(limit))

    def count(self) -> int:
        return self._state.count()

    def where(
        self, path: str, op: str, value: WhereValue, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        check_where(path, op, value)
        return self._state.where(path, op, value, limit=_check_limit(limit))

    def indexes(self) -> list[str]:
        return self._state.indexes()

    def create_index(self, path: str) -> None:
        check_path(path)
        if path not in self._state.indexes() and len(self._state.indexes()) >= MAX_INDEXES:
            raise InvalidValueError(f"a documents database has at most {MAX_INDEXES} indexes")
        self._state.create_index(path)


def _check_limit(limit: object) -> int | None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise InvalidValueError(f"limit is a non-negative integer or None, not {limit!r:.20}")
    return limit
