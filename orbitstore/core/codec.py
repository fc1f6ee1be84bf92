"""Canonical DAG-CBOR: the only encoding of blocks.

The hot path uses ``cbrrr`` (C, strict, ~2 µs per entry); the pure-Python ``dag-cbor``
package is the reference the conformance tests hold it to, byte for byte. Decoding
rejects anything that is not canonical DAG-CBOR — unsorted or duplicate map keys,
non-minimal integers, indefinite lengths, tags other than 42, floats other than 64-bit,
NaN and infinities, non-string map keys, invalid UTF-8, trailing bytes, malformed CIDs —
with :class:`~orbitstore.errors.DecodeError`.

The data model: ``None``, ``bool``, ``int`` (-2**64 .. 2**64-1), ``float`` (finite),
``str``, ``bytes``, ``list``, ``dict`` with ``str`` keys, and :class:`Cid` links.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import cbrrr

from orbitstore.core.cid import Cid
from orbitstore.errors import DecodeError, InvalidCidError, InvalidValueError

Value: TypeAlias = Any
"""A value of the DAG-CBOR data model (see module docstring)."""


def _cid_from_tag(raw: bytes) -> Cid:
    return Cid(raw)


def encode(value: Value) -> bytes:
    """Encode ``value`` as canonical DAG-CBOR, or raise InvalidValueError."""
    try:
        return bytes(cbrrr.encode_dag_cbor(value, cid_type=Cid))
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise InvalidValueError(f"value cannot be encoded as DAG-CBOR: {exc}") from exc


def decode(data: bytes) -> Value:
    """Decode canonical DAG-CBOR, or raise DecodeError."""
    try:
        return cbrrr.decode_dag_cbor(bytes(data), cid_ctor=_cid_from_tag)
    except InvalidCidError as exc:
        raise DecodeError(f"malformed CID link: {exc}") from exc
    except (cbrrr.CbrrrDecodeError, ValueError, TypeError, EOFError, RecursionError) as exc:
        raise DecodeError(f"not canonical DAG-CBOR: {exc}") from exc
