"""Documents operations: options, validation of writes, and parsing of entry payloads
(the op shapes are described in :mod:`orbitstore.views.documents`)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

from orbitstore.core import codec
from orbitstore.core.dagjson import to_json
from orbitstore.errors import InvalidValueError

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
    to_json(doc)  # ... or that have no DAG-JSON form (the SQL column)
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
    to_json(to_set)
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
            doc_id = _check_doc(raw["doc"], id_field)
            to_json(raw["doc"])  # a value with no JSON form cannot be a row (Rule 3)
            return _Put(doc_id, raw["doc"])
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
            to_json(to_set)
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
