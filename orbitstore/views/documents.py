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
no valid id) is ignored; a batch holding any such op is ignored whole, so a batch is all
or nothing. The handle validates before writing, so only foreign writers produce these.

The view reads and writes through an injected :class:`DocumentsState` (SQLite and memory
implementations live in :mod:`orbitstore.storage.views.documents`) and returns a
:class:`~orbitstore.views.base.Change` (``"put"`` with the new document, or ``"delete"``)
only when the visible document changed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, TypeAlias

from orbitstore.core import codec
from orbitstore.core.entry import Entry
from orbitstore.core.order import OrderKey
from orbitstore.errors import InvalidValueError
from orbitstore.views.base import Change, change_for

MAX_ID_CHARS: Final = 1024
MAX_INDEXES: Final = 32
DEFAULT_ID_FIELD: Final = "_id"
WHERE_OPS: Final = ("=", "!=", "<", "<=", ">", ">=")
_SEGMENT: Final = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_PATH_RE: Final = re.compile(rf"^{_SEGMENT}(\.{_SEGMENT}){{0,7}}$")
_OPTIONS: Final = frozenset({"id_field", "merge", "indexes"})

OpKey: TypeAlias = tuple[int, str, bytes, int]
"""``(clock, writer, cid bytes, op index)``: the order of ops."""

MergeMode: TypeAlias = Literal["document", "field"]
WhereValue: TypeAlias = str | int | float


# --- options and validation (pure; used by the handle before anything is written) -------


def check_id(value: object) -> str:
    """``value`` if it is a valid document id, else InvalidValueError."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_CHARS:
        raise InvalidValueError(
            f"a document id is a string of 1 to {MAX_ID_CHARS} characters, not {value!r:.60}"
        )
    return value


def check_path(path: object) -> str:
    """A dotted field path for an index or a query: ``age``, ``address.city``."""
    if not isinstance(path, str) or not _PATH_RE.match(path):
        raise InvalidValueError(
            f"a field path is up to 8 dot-separated names of letters, digits and '_'"
            f" (not starting with a digit): {path!r:.80}"
        )
    return path


def check_where(path: object, op: object, value: object) -> None:
    """InvalidValueError unless ``(path, op, value)`` is a query :meth:`where` takes."""
    check_path(path)
    if op not in WHERE_OPS:
        raise InvalidValueError(f"where: the operator is one of {list(WHERE_OPS)}, not {op!r:.20}")
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise InvalidValueError(f"where: the value is a string or a number, not {value!r:.40}")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise InvalidValueError("where: integers are 64-bit")
    if isinstance(value, float) and math.isnan(value):
        raise InvalidValueError("where: NaN matches nothing")


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentsOptions:
    """The documents options kept in a manifest's ``meta``."""

    id_field: str = DEFAULT_ID_FIELD
    merge: MergeMode = "document"
    indexes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.id_field, str) or not 1 <= len(self.id_field) <= 256:
            raise InvalidValueError("id_field is a field name of 1 to 256 characters")
        if self.merge not in ("document", "field"):
            raise InvalidValueError(f"merge is 'document' or 'field', not {self.merge!r:.40}")
        if not isinstance(self.indexes, tuple):
            raise InvalidValueError("indexes is a list of field paths")
        for path in self.indexes:
            check_path(path)
        if len(set(self.indexes)) != len(self.indexes) or len(self.indexes) > MAX_INDEXES:
            raise InvalidValueError(f"indexes: up to {MAX_INDEXES} distinct field paths")

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> DocumentsOptions:
        unknown = set(meta) - _OPTIONS
        if unknown:
            raise InvalidValueError(
                f"unknown documents options {sorted(unknown)}; known: {sorted(_OPTIONS)}"
            )
        indexes = meta.get("indexes", [])
        if not isinstance(indexes, list):
            raise InvalidValueError("indexes is a list of field paths")
        return cls(
            id_field=meta.get("id_field", DEFAULT_ID_FIELD),
            merge=meta.get("merge", "document"),
            indexes=tuple(indexes),
        )


def _check_doc(doc: object, id_field: str) -> str:
    if not isinstance(doc, dict):
        raise InvalidValueError(f"a document is a map, not {type(doc).__name__}")
    if id_field not in doc:
        raise InvalidValueError(f"the document has no id field {id_field!r}")
    return check_id(doc[id_field])


def put_op(doc: object, *, id_field: str) -> dict[str, Any]:
    """The payload that puts ``doc``; InvalidValueError if it is not a document."""
    _check_doc(doc, id_field)
    assert isinstance(doc, dict)
    codec.encode(doc)  # InvalidValueError for values DAG-CBOR cannot hold
    return {"op": "put", "doc": doc}


def delete_op(doc_id: object) -> dict[str, Any]:
    return {"op": "del", "id": check_id(doc_id)}


def patch_op(
    doc_id: object, *, set: Mapping[str, Any], unset: Iterable[str], id_field: str
) -> dict[str, Any]:
    """The payload of a field-mode patch; InvalidValueError on bad fields."""
    check_id(doc_id)
    if not isinstance(set, Mapping):
        raise InvalidValueError("patch 'set' is a map of field names to values")
    if isinstance(unset, str | bytes):
        raise InvalidValueError("patch 'unset' is a list of field names, not one string")
    to_set = dict(set)
    to_unset = sorted({*unset})
    for name in (*to_set, *to_unset):
        if not isinstance(name, str):
            raise InvalidValueError(f"field names are strings, not {name!r:.40}")
        if name == id_field:
            raise InvalidValueError(f"a patch cannot change the id field {id_field!r}")
    if to_set.keys() & {*to_unset}:
        raise InvalidValueError("a field cannot be both set and unset in one patch")
    if not to_set and not to_unset:
        raise InvalidValueError("a patch sets or unsets at least one field")
    codec.encode(to_set)
    return {"op": "patch", "id": doc_id, "set": to_set, "unset": to_unset}


def batch_op(ops: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"op": "batch", "ops": list(ops)}


# --- parsing ops from entries (foreign data: never raises, returns None) ----------------


@dataclass(frozen=True, slots=True)
class _Put:
    id: str
    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Del:
    id: str


@dataclass(frozen=True, slots=True)
class _Patch:
    id: str
    set: dict[str, Any]
    unset: tuple[str, ...]


_Op: TypeAlias = _Put | _Del | _Patch


def _parse_one(raw: Any, id_field: str) -> _Op | None:
    if not isinstance(raw, dict):
        return None
    kind = raw.get("op")
    try:
        if kind == "put" and raw.keys() == {"op", "doc"}:
            return _Put(_check_doc(raw["doc"], id_field), raw["doc"])
        if kind == "del" and raw.keys() == {"op", "id"}:
            return _Del(check_id(raw["id"]))
        if kind == "patch" and raw.keys() == {"op", "id", "set", "unset"}:
            doc_id, to_set, to_unset = check_id(raw["id"]), raw["set"], raw["unset"]
            if not isinstance(to_set, dict) or not isinstance(to_unset, list):
                return None
            if not all(isinstance(f, str) and f != id_field for f in to_unset):
                return None
            if id_field in to_set or to_set.keys() & {*to_unset}:
                return None
            if not to_set and not to_unset:
                return None
            return _Patch(doc_id, to_set, tuple(to_unset))
    except InvalidValueError:
        return None
    return None


def parse_ops(payload: Any, id_field: str) -> list[_Op]:
    """The ops of an entry payload, or ``[]`` when it is not a valid documents op."""
    if isinstance(payload, dict) and payload.get("op") == "batch":
        raw_ops = payload.get("ops")
        if payload.keys() != {"op", "ops"} or not isinstance(raw_ops, list):
            return []
        ops: list[_Op] = []
        for raw in raw_ops:
            op = _parse_one(raw, id_field)
            if op is None:
                return []  # a batch is all or nothing
            ops.append(op)
        return ops
    single = _parse_one(payload, id_field)
    return [] if single is None else [single]


# --- state ---------------------------------------------------------------------------------

FieldRegisters: TypeAlias = dict[str, tuple[OpKey, bool, Any]]
"""Field mode: field name -> (op key of its latest write, present?, value)."""


class DocumentsState(Protocol):
    """Where the documents view keeps its state (SQLite or memory). Values cross this
    interface as plain tuples so storage never imports this module."""

    # materialized rows (both modes; in document mode they are the registers)
    def get_row(self, doc_id: str) -> tuple[OrderKey, bytes | None] | None:
        """The order key and DAG-CBOR value (None: deleted) of a document's row."""
        ...

    def set_row(
        self, doc_id: str, key: OrderKey, value: bytes | None, doc: dict[str, Any] | None
    ) -> None:
        """Write a row; ``doc`` is the decoded ``value`` (for the JSON column)."""
        ...

    def get_rows(self, doc_ids: Iterable[str]) -> dict[str, tuple[OrderKey, bytes | None]]:
        """:meth:`get_row` for many ids at once (absent ids are left out)."""
        ...

    def set_rows(
        self, rows: Iterable[tuple[str, OrderKey, bytes | None, dict[str, Any] | None]]
    ) -> None:
        """:meth:`set_row` for many rows at once."""
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
    name = "documents"

    def __init__(self, state: DocumentsState, options: DocumentsOptions) -> None:
        self._state = state
        self.options = options
        for path in options.indexes:
            state.create_index(path)

    @property
    def state(self) -> DocumentsState:
        return self._state

    def apply(self, entries: Sequence[Entry], *, local: bool) -> list[Change]:
        changes: list[Change] = []
        field_mode = self.options.merge == "field"
        for entry in entries:
            ops = parse_ops(entry.payload, self.options.id_field)
            if not ops:
                continue
            if field_mode:
                for index, op in enumerate(ops):
                    key: OpKey = (entry.clock, entry.writer, bytes(entry.cid), index)
                    done = self._apply_field(op, key)
                    if done is not None:
                        changes.append(_change(entry, *done, local=local))
            else:
                for doc_id, doc in self._apply_document(entry, ops):
                    changes.append(_change(entry, doc_id, doc, local=local))
        return changes

    # Rule 1
    def _apply_document(self, entry: Entry, ops: list[_Op]) -> list[tuple[str, Any]]:
        key = entry.order_key
        rows = self._state.get_rows({op.id for op in ops})
        written: dict[str, tuple[str, OrderKey, bytes | None, dict[str, Any] | None]] = {}
        changed: list[tuple[str, Any]] = []
        # Ops of one entry are applied in index order, so an equal (clock, writer, cid)
        # is an earlier op of the same batch: the later op wins.
        for op in ops:
            if isinstance(op, _Patch):
                continue
            row = rows.get(op.id)
            if row is not None and row[0] > key:
                continue
            doc = op.doc if isinstance(op, _Put) else None
            value = None if doc is None else codec.encode(doc)
            rows[op.id] = (key, value)
            written[op.id] = (op.id, key, value, doc)
            if (None if row is None else row[1]) != value:
                changed.append((op.id, doc))
        self._state.set_rows(written.values())
        return changed

    # Rule 2
    def _apply_field(self, op: _Op, key: OpKey) -> tuple[str, Any] | None:
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
        return self._materialize(op.id, clear, fields)

    def _materialize(
        self, doc_id: str, clear: OpKey | None, fields: FieldRegisters
    ) -> tuple[str, Any] | None:
        visible = {n: v for n, (_, present, v) in fields.items() if present}
        doc: dict[str, Any] | None = None
        if visible:
            visible[self.options.id_field] = doc_id
            doc = dict(sorted(visible.items()))
        keys = [k for k, _, _ in fields.values()]
        if clear is not None:
            keys.append(clear)
        if not keys:  # pragma: no cover - every parsed op writes a field or clears
            return None
        latest = _order(max(keys))
        value = None if doc is None else codec.encode(doc)
        row = self._state.get_row(doc_id)
        self._state.set_row(doc_id, latest, value, doc)
        if (None if row is None else row[1]) == value:
            return None
        return doc_id, doc

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


def _change(entry: Entry, doc_id: str, doc: Any, *, local: bool) -> Change:
    kind = "delete" if doc is None else "put"
    return change_for(entry, kind, key=doc_id, value=doc, local=local)


def _check_limit(limit: object) -> int | None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise InvalidValueError(f"limit is a non-negative integer or None, not {limit!r:.20}")
    return limit
