"""Keyvalue operations: building them (the handle) and parsing them from entry payloads
(the view). The rules they follow are in :mod:`orbitstore.views.keyvalue`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.dagjson import to_json
from orbitstore.core.entry import Entry
from orbitstore.errors import InvalidValueError
from orbitstore.views.base import Conflict

MAX_KEY_BYTES: Final = 1024


def check_key(key: object) -> str:
    """Return ``key`` if it is a valid key, else raise InvalidValueError."""
    if not isinstance(key, str):
        raise InvalidValueError(f"a key is a str, not {type(key).__name__}")
    if not key:
        raise InvalidValueError("a key is a non-empty string")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidValueError("a key must be valid Unicode (no lone surrogates)") from exc
    if size > MAX_KEY_BYTES:
        raise InvalidValueError(f"a key is at most {MAX_KEY_BYTES} UTF-8 bytes, not {size}")
    return key


def _encode_value(value: Any) -> tuple[bytes, str]:
    """The DAG-CBOR bytes and DAG-JSON text of a value; InvalidValueError if it has none."""
    return codec.encode(value), to_json(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Put:
    """Set ``key`` to ``value`` (one operation of :meth:`KeyValue.apply_batch`)."""

    key: str
    value: Any

    def __post_init__(self) -> None:
        check_key(self.key)
        _encode_value(self.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Delete:
    """Delete ``key`` (one operation of :meth:`KeyValue.apply_batch`)."""

    key: str

    def __post_init__(self) -> None:
        check_key(self.key)


def put_op(key: str, value: Any) -> dict[str, Any]:
    """The payload of one put; InvalidValueError for a bad key or value."""
    Put(key=key, value=value)
    return {"op": "put", "key": key, "value": value}


def delete_op(key: str) -> dict[str, Any]:
    """The payload of one delete; InvalidValueError for a bad key."""
    check_key(key)
    return {"op": "del", "key": key}


def batch_op(ops: Iterable[Put | Delete]) -> dict[str, Any]:
    """The payload of a batch (one entry, several operations, applied in order)."""
    out: list[dict[str, Any]] = []
    for op in ops:
        if isinstance(op, Put):
            out.append({"op": "put", "key": op.key, "value": op.value})
        elif isinstance(op, Delete):
            out.append({"op": "del", "key": op.key})
        else:
            raise InvalidValueError(f"a batch holds Put and Delete, not {type(op).__name__}")
    return {"op": "batch", "ops": out}


class _Op(NamedTuple):  # a tuple: a bulk fold parses one per entry of a history
    key: str
    value: Any  # the value as it sits in the payload (unused for a delete)
    data: bytes | None  # DAG-CBOR, None for a delete
    json: str | None


# A put whose value is a plain scalar, not encoded yet (no DAG-CBOR encoding is empty).
# Scalars of a stored entry always have both forms, so the bulk fold encodes only the
# values it keeps (see _encoded); everything else is encoded to be checked (Rule 3).
_DEFERRED: Final = b""
_SCALARS: Final = frozenset({int, str, bool, type(None)})
# _Op(...) without the Python-level __new__ of a NamedTuple (a third of parsing an op).
_new_op: Final = tuple.__new__


def _parse_one(op: Any, defer: bool = False) -> _Op | None:
    if not isinstance(op, dict):
        return None
    kind = op.get("op")
    try:
        key = op.get("key")
        # An ASCII key of at most MAX_KEY_BYTES characters is valid without encoding it.
        if type(key) is not str or not key.isascii() or not 0 < len(key) <= MAX_KEY_BYTES:
            key = check_key(key)
        if kind == "put" and "value" in op:
            value = op["value"]
            if defer and type(value) in _SCALARS:
                return _new_op(_Op, (key, value, _DEFERRED, None))
            data, text = _encode_value(value)
            return _new_op(_Op, (key, value, data, text))
    except InvalidValueError:
        return None
    if kind == "del":
        return _new_op(_Op, (key, None, None, None))
    return None


def parse_payload(payload: Any, *, defer: bool = False) -> list[_Op] | None:
    """The operations of an entry's payload, or None if any part is malformed (Rule 3).
    With ``defer``, scalar values of stored entries are left to :func:`_encoded`."""
    if not isinstance(payload, dict):
        return None
    if payload.get("op") == "batch":
        ops = payload.get("ops")
        if not isinstance(ops, list):
            return None
        parsed: list[_Op] = []
        for op in ops:
            one = _parse_one(op, defer)
            if one is None:
                return None
            parsed.append(one)
        return parsed
    one = _parse_one(payload, defer)
    return None if one is None else [one]


def _encoded(op: _Op) -> tuple[bytes | None, str | None]:
    """The DAG-CBOR and JSON of an op's value (None, None for a delete)."""
    if op.data is _DEFERRED:
        value = op.value
        if type(value) is int:  # a stored int: in range, its JSON is its decimal form
            return codec.encode_checked(value), str(value)
        return _encode_value(value)
    return op.data, op.json


def _writes_of(payload: Any) -> list[tuple[str, int, _Op]] | None:
    """The writes of an entry's payload: its last op on each key (a later op in an
    entry supersedes an earlier one on the same key), or None for a malformed entry."""
    if type(payload) is dict and payload.get("op") != "batch":  # one op: the common case
        one = _parse_one(payload, True)
        return None if one is None else [(one.key, 0, one)]
    ops = parse_payload(payload, defer=True)
    if ops is None:
        return None
    if len(ops) == 1:
        return [(ops[0].key, 0, ops[0])]
    last = {op.key: (idx, op) for idx, op in enumerate(ops)}
    return [(key, idx, op) for key, (idx, op) in last.items()]


def _conflict(entry: Entry, op: _Op) -> Conflict:
    return _conflict_at(entry.cid, entry.writer, entry.clock, op)


def _conflict_at(cid: Cid, writer: str, clock: int, op: _Op) -> Conflict:
    return Conflict(
        value=op.value if op.data is not None else None,
        deleted=op.data is None,
        cid=cid,
        writer=writer,
        clock=clock,
    )
