"""Content identifiers: CIDv1 with a sha2-256 multihash.

Binary form (36 bytes)::

    0x01            CID version 1
    0x71 | 0x55     multicodec: dag-cbor (entries, manifests) or raw
    0x12 0x20       multihash: sha2-256, 32-byte digest
    <32 bytes>      sha256(block)

Text form: multibase base32 (RFC 4648, lower case, no padding) with the prefix ``b``,
e.g. ``bafyrei...``. Nothing else is accepted: a CID of another version, codec or hash
function raises :class:`~orbitstore.errors.InvalidCidError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Final

from orbitstore.core.describe import describe as _describe
from orbitstore.errors import InvalidCidError

DAG_CBOR: Final = 0x71
RAW: Final = 0x55
_PREFIX_DAG_CBOR: Final = b"\x01\x71\x12\x20"
_PREFIX_RAW: Final = b"\x01\x55\x12\x20"
CID_LENGTH: Final = 36


class Cid:
    """An immutable CIDv1 (sha2-256). Ordered and hashed by its binary form."""

    __slots__ = ("_bytes", "_hash", "_str")

    _bytes: bytes
    _str: str | None
    _hash: int

    def __init__(self, raw: bytes) -> None:
        raw = bytes(raw)
        if len(raw) != CID_LENGTH or (raw[:4] != _PREFIX_DAG_CBOR and raw[:4] != _PREFIX_RAW):
            raise InvalidCidError(
                f"not a CIDv1 dag-cbor/raw sha2-256 CID: {raw[:8].hex()}... ({len(raw)} bytes)"
            )
        object.__setattr__(self, "_bytes", raw)
        object.__setattr__(self, "_str", None)
        object.__setattr__(self, "_hash", hash(raw))

    @classmethod
    def _trusted(cls, raw: bytes) -> Cid:
        """Build without validation; only for bytes this module produced."""
        self = object.__new__(cls)
        object.__setattr__(self, "_bytes", raw)
        object.__setattr__(self, "_str", None)
        object.__setattr__(self, "_hash", hash(raw))
        return self

    @classmethod
    def for_block(cls, block: bytes, codec: int = DAG_CBOR) -> Cid:
        """The CID of ``block`` (hashes it)."""
        prefix = _PREFIX_DAG_CBOR if codec == DAG_CBOR else _PREFIX_RAW
        if codec not in (DAG_CBOR, RAW):
            raise InvalidCidError(f"unsupported codec 0x{codec:x}")
        return cls._trusted(prefix + hashlib.sha256(block).digest())

    @classmethod
    def parse(cls, text: str) -> Cid:
        """Parse the base32 text form (``b...``)."""
        if not isinstance(text, str) or not text.startswith("b") or text != text.lower():
            raise InvalidCidError(f"not a base32 CIDv1 string: {_describe(text)}")
        body = text[1:]
        try:
            raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
        except (binascii.Error, ValueError) as exc:
            raise InvalidCidError(f"not a base32 CIDv1 string: {_describe(text)}") from exc
        cid = cls(raw)
        if str(cid) != text:  # non-canonical padding bits
            raise InvalidCidError(f"non-canonical CID string: {_describe(text)}")
        return cid

    @property
    def codec(self) -> int:
        return self._bytes[1]

    @property
    def digest(self) -> bytes:
        return self._bytes[4:]

    def __bytes__(self) -> bytes:
        return self._bytes

    def __str__(self) -> str:
        s = self._str
        if s is None:
            s = "b" + base64.b32encode(self._bytes).decode("ascii").lower().rstrip("=")
            object.__setattr__(self, "_str", s)
        return s

    def __repr__(self) -> str:
        return f"Cid({str(self)!r})"

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cid) and other._bytes == self._bytes

    def __lt__(self, other: Cid) -> bool:
        return self._bytes < other._bytes

    def __le__(self, other: Cid) -> bool:
        return self._bytes <= other._bytes

    def __gt__(self, other: Cid) -> bool:
        return self._bytes > other._bytes

    def __ge__(self, other: Cid) -> bool:
        return self._bytes >= other._bytes

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Cid is immutable")

    def __reduce__(self) -> tuple[type[Cid], tuple[bytes]]:
        return (Cid, (self._bytes,))
