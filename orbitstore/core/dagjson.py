"""DAG-JSON text for DAG-CBOR values: what the view tables keep in their ``json`` columns.

The SQL layer reads values through SQLite's JSON functions, so every view stores, next to
a value's DAG-CBOR bytes, its rendering as JSON text by these rules (the DAG-JSON
conventions of IPLD):

===================  ======================================================
DAG-CBOR value       JSON text
===================  ======================================================
null, true, false    ``null``, ``true``, ``false``
integer              the integer (any size DAG-CBOR allows: -2**64 .. 2**64-1)
float                the shortest text that reads back as the same float
                     (finite only: DAG-CBOR has no NaN or infinities)
string               a JSON string (non-ASCII characters kept as they are)
list                 a JSON array
map                  a JSON object, keys sorted (code point order, which is
                     the UTF-8 byte order)
bytes                ``{"/":{"bytes":"<base64, standard alphabet, no padding>"}}``
CID link             ``{"/":"<CID string, base32 b...>"}``
===================  ======================================================

Output is compact (no spaces). Because ``{"/": ...}`` objects stand for bytes and links,
a *map* of those two shapes — exactly one key ``"/"`` whose value is a string, or a map
with exactly one key ``"bytes"`` whose value is a string — has no DAG-JSON form:
:func:`to_json` refuses it with :class:`~orbitstore.errors.InvalidValueError`, and the
database types refuse to write it. Any other map with a ``"/"`` key is an ordinary map.

:func:`from_json` is the inverse: ``from_json(to_json(v))`` encodes to the same DAG-CBOR
bytes as ``v``. It raises :class:`~orbitstore.errors.DecodeError` for text that is not
JSON, has duplicate keys, numbers out of range, or a malformed bytes/link object.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any, Final

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.errors import DecodeError, InvalidCidError, InvalidValueError

_INT_MIN: Final = -(2**64)
_INT_MAX: Final = 2**64 - 1
_MAX_DEPTH: Final = 512

_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)


def _is_reserved(value: dict[Any, Any]) -> bool:
    """A map that DAG-JSON would read back as bytes or a link."""
    if len(value) != 1 or "/" not in value:
        return False
    inner = value["/"]
    if isinstance(inner, str):
        return True
    return (
        isinstance(inner, dict)
        and len(inner) == 1
        and "bytes" in inner
        and isinstance(inner["bytes"], str)
    )


def _prepare(value: Any, depth: int) -> Any:
    """Check ``value`` against the data model and swap bytes and links for their forms."""
    if depth > _MAX_DEPTH:
        raise InvalidValueError(f"value nests deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise InvalidValueError("integer out of the DAG-CBOR range (-2**64 .. 2**64-1)")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValueError("DAG-CBOR has no NaN or infinite floats")
        return value
    if isinstance(value, bytes):
        return {"/": {"bytes": base64.b64encode(value).decode("ascii").rstrip("=")}}
    if isinstance(value, Cid):
        return {"/": str(value)}
    if isinstance(value, list):
        return [_prepare(v, depth + 1) for v in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidValueError(f"map keys must be strings, not {type(k).__name__}")
            out[k] = _prepare(v, depth + 1)
        if _is_reserved(value):
            raise InvalidValueError(
                'a map whose only key is "/" holding a string (or {"bytes": <string>})'
                " has no DAG-JSON form: it would read back as a link or bytes"
            )
        return out
    raise InvalidValueError(f"{type(value).__name__} is not a DAG-CBOR value")


def to_json(value: Any) -> str:
    """Render a DAG-CBOR value as compact DAG-JSON text (see the module docstring)."""
    try:
        return _ENCODER.encode(_prepare(value, 0))
    except (ValueError, RecursionError) as exc:  # pragma: no cover - _prepare checks first
        raise InvalidValueError(f"value has no JSON form: {exc}") from exc


def _bad_constant(name: str) -> Any:
    raise DecodeError(f"not valid DAG-JSON: {name} is not a number DAG-CBOR can hold")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise DecodeError(f"not valid DAG-JSON: {text} overflows a 64-bit float")
    return value


def _int(text: str) -> int:
    value = int(text)
    if not _INT_MIN <= value <= _INT_MAX:
        raise DecodeError("not valid DAG-JSON: integer out of the DAG-CBOR range")
    return value


def _object(pairs: list[tuple[str, Any]]) -> Any:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise DecodeError("not valid DAG-JSON: duplicate map key")
    if not _is_reserved(out):
        return out
    inner = out["/"]
    if isinstance(inner, str):
        try:
            return Cid.parse(inner)
        except InvalidCidError as exc:
            raise DecodeError(f"not valid DAG-JSON: bad link ({codec.describe(inner)})") from exc
    text = inner["bytes"]
    if "=" in text:
        raise DecodeError("not valid DAG-JSON: bytes must be base64 without padding")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(f"not valid DAG-JSON: bad base64 bytes ({codec.describe(text)})") from exc


def from_json(text: str) -> Any:
    """Read DAG-JSON text back into a DAG-CBOR value (the inverse of :func:`to_json`)."""
    if not isinstance(text, str):
        raise InvalidValueError("from_json takes a str")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object,
            parse_constant=_bad_constant,
            parse_float=_float,
            parse_int=_int,
        )
    except DecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"not valid DAG-JSON: {exc}") from exc
    try:
        codec.encode(value)  # e.g. a lone surrogate escape is JSON but not UTF-8
    except InvalidValueError as exc:
        raise DecodeError(f"not valid DAG-JSON: {exc}") from exc
    return value
