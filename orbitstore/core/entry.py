"""The v1 log entry: a signed DAG-CBOR map, addressed by its CID.

Wire form (a DAG-CBOR map; keys sorted as DAG-CBOR requires: shorter first, then bytewise)::

    {
      "v":       1,                  format version
      "db":      <link>,             CID of the database manifest
      "ts":      <int>,              optional: writer's wall clock, ms since the Unix epoch
                                     (display only, never used to merge)
      "sig":     <bytes 64>,         Ed25519 over the encoding of this map without "sig"
      "next":    [<link>, ...],      the heads the writer saw, sorted by CID bytes, unique
      "refs":    [<link>, ...],      optional older ancestors (skip-ahead hints), sorted
      "clock":   <int>,              Lamport time: max(clock of next) + 1, or 1
      "writer":  "did:key:z6Mk...",  the Ed25519 public key that signed
      "payload": <any>               the operation; meaning is up to the database type
    }

An :class:`Entry` can only be made by :meth:`Entry.create` (which signs) or
:meth:`Entry.from_block` (which verifies hash, structure, limits and signature), so an
``Entry`` object in hand is always well-formed and signed by its writer. Whether its
parents exist, its clock fits them and its writer may write are questions about the log,
answered in :mod:`orbitstore.core.oplog`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final

from orbitstore.core import codec
from orbitstore.core.cid import _PREFIX_DAG_CBOR, DAG_CBOR, Cid
from orbitstore.core.identity import Identity, public_key_from_did, verify
from orbitstore.core.limits import DEFAULT_LIMITS, EntryLimits
from orbitstore.core.order import OrderKey
from orbitstore.errors import (
    ClockError,
    DecodeError,
    EntryTooLargeError,
    HashMismatchError,
    InvalidEntryError,
    InvalidParentsError,
    InvalidValueError,
    PayloadTooLargeError,
    StorageCorruptedError,
    UnsupportedVersionError,
)

VERSION: Final = 1
_REQUIRED: Final = frozenset({"v", "db", "sig", "next", "clock", "writer", "payload"})
_ALLOWED: Final = _REQUIRED | {"ts", "refs"}
_MAX_TS: Final = 2**53
_MAX_CLOCK: Final = 2**53


def _check_links(name: str, value: object, limit: int) -> tuple[Cid, ...]:
    if not isinstance(value, list):
        raise InvalidEntryError(f"entry field {name!r} must be a list of links")
    if len(value) > limit:
        raise EntryTooLargeError(f"entry field {name!r} has {len(value)} links (limit {limit})")
    prev: bytes = b""
    for link in value:
        if not isinstance(link, Cid):
            raise InvalidEntryError(f"entry field {name!r} must hold only CID links")
        if link.codec != DAG_CBOR:
            raise InvalidParentsError(f"entry field {name!r} links a non-dag-cbor block")
        raw = bytes(link)
        if raw <= prev:
            raise InvalidParentsError(
                f"entry field {name!r} must be sorted by CID bytes without duplicates"
            )
        prev = raw
    return tuple(value)


class Entry:
    """A verified, immutable log entry. Build with :meth:`create` or :meth:`from_block`."""

    __slots__ = (
        "block",
        "cid",
        "clock",
        "db",
        "next",
        "payload",
        "refs",
        "sig",
        "ts",
        "writer",
    )

    cid: Cid
    block: bytes
    db: Cid
    clock: int
    next: tuple[Cid, ...]
    refs: tuple[Cid, ...]
    payload: Any
    writer: str
    sig: bytes
    ts: int | None

    def __init__(self) -> None:  # pragma: no cover - guarded
        raise TypeError("use Entry.create(...) or Entry.from_block(...)")

    @classmethod
    def _build(cls, cid: Cid, block: bytes, fields: dict[str, Any]) -> Entry:
        self = object.__new__(cls)
        s = object.__setattr__
        s(self, "cid", cid)
        s(self, "block", block)
        s(self, "db", fields["db"])
        s(self, "clock", fields["clock"])
        s(self, "next", tuple(fields["next"]))
        s(self, "refs", tuple(fields.get("refs", ())))
        s(self, "payload", fields["payload"])
        s(self, "writer", fields["writer"])
        s(self, "sig", fields["sig"])
        s(self, "ts", fields.get("ts"))
        return self

    @classmethod
    def create(
        cls,
        identity: Identity,
        *,
        db: Cid,
        clock: int,
        next: Sequence[Cid],
        payload: Any,
        refs: Sequence[Cid] = (),
        ts: int | None = None,
        limits: EntryLimits = DEFAULT_LIMITS,
    ) -> Entry:
        """Build and sign a new entry. Raises UsageError subclasses on bad arguments."""
        if not isinstance(clock, int) or isinstance(clock, bool) or not 1 <= clock < _MAX_CLOCK:
            raise InvalidValueError("clock must be an integer >= 1")
        if not isinstance(db, Cid) or db.codec != DAG_CBOR:
            raise InvalidValueError("db must be the CID of a manifest block")
        for link in (*next, *refs):
            if not isinstance(link, Cid) or link.codec != DAG_CBOR:
                raise InvalidValueError(f"parents and refs must be entry CIDs, not {link!r:.80}")
        fields: dict[str, Any] = {
            "v": VERSION,
            "db": db,
            "next": sorted(set(next)),
            "clock": clock,
            "writer": identity.id,
            "payload": payload,
        }
        if len(fields["next"]) > limits.max_next:
            raise InvalidValueError(f"too many parents ({len(fields['next'])} > {limits.max_next})")
        if refs:
            fields["refs"] = sorted(set(refs) - set(next))
            if len(fields["refs"]) > limits.max_refs:
                raise InvalidValueError(f"too many refs (> {limits.max_refs})")
        if ts is not None:
            if not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts < _MAX_TS:
                raise InvalidValueError("ts must be milliseconds since the epoch")
            fields["ts"] = ts
        codec.check_depth(payload)
        unsigned = codec.encode_checked(fields)
        fields["sig"] = identity.sign(unsigned)
        block = codec.encode_checked(fields)
        if len(block) > limits.max_entry_bytes:
            raise PayloadTooLargeError(
                f"entry would be {len(block)} bytes; the limit is {limits.max_entry_bytes}",
                size=len(block),
                limit=limits.max_entry_bytes,
            )
        cid = Cid._trusted(_PREFIX_DAG_CBOR + hashlib.sha256(block).digest())
        return cls._build(cid, block, fields)

    @classmethod
    def from_block(cls, cid: Cid, block: bytes, *, limits: EntryLimits = DEFAULT_LIMITS) -> Entry:
        """Decode and verify a block received as ``cid``. Raises InvalidDataError subclasses."""
        if len(block) > limits.max_entry_bytes:
            raise EntryTooLargeError(
                f"entry block is {len(block)} bytes; the limit is {limits.max_entry_bytes}"
            )
        if bytes(cid) != _PREFIX_DAG_CBOR + hashlib.sha256(block).digest():
            raise HashMismatchError(f"block does not hash to {cid}")
        return cls._verify(cid, block, codec.decode(block, check_nesting=False), limits)

    @classmethod
    def from_trusted_block(cls, cid: Cid, block: bytes) -> Entry:
        """Decode a block our own store verified before it stored it (no signature check)."""
        try:
            return cls._build(cid, block, codec.decode(block, check_nesting=False))
        except (DecodeError, KeyError, TypeError) as exc:  # damaged on disk: not the peer's
            raise StorageCorruptedError(f"stored entry {cid} no longer decodes: {exc}") from exc

    @classmethod
    def _verify(cls, cid: Cid, block: bytes, fields: Any, limits: EntryLimits) -> Entry:
        if not isinstance(fields, dict):
            raise InvalidEntryError("an entry is a DAG-CBOR map")
        v = fields.get("v")
        if type(v) is not int or v != VERSION:  # not 1.0, not True
            raise UnsupportedVersionError(f"unsupported entry version {v!r:.20}")
        keys = fields.keys()
        if not keys >= _REQUIRED:
            raise InvalidEntryError(f"entry lacks fields {sorted(_REQUIRED - keys)}")
        if not keys <= _ALLOWED:
            raise InvalidEntryError(f"entry has unknown fields {sorted(keys - _ALLOWED)}")
        db = fields["db"]
        if not isinstance(db, Cid):
            raise InvalidEntryError("entry field 'db' must be a CID link")
        clock = fields["clock"]
        if not isinstance(clock, int) or isinstance(clock, bool) or not 1 <= clock < _MAX_CLOCK:
            raise InvalidEntryError("entry field 'clock' must be an integer >= 1")
        nxt = _check_links("next", fields["next"], limits.max_next)
        if "refs" in fields:
            refs = _check_links("refs", fields["refs"], limits.max_refs)
            if set(refs) & set(nxt):
                raise InvalidParentsError("a CID is in both 'next' and 'refs'")
        else:
            refs = ()
        if cid in nxt or cid in refs:  # pragma: no cover - would need a sha256 fixed point
            raise InvalidParentsError("entry references itself")
        if not nxt and clock != 1:
            raise ClockError(f"an entry without parents has clock 1, not {clock}")
        if "ts" in fields:
            ts = fields["ts"]
            if not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts < _MAX_TS:
                raise InvalidEntryError("entry field 'ts' must be milliseconds since the epoch")
        writer = fields["writer"]
        if not isinstance(writer, str) or len(writer) > limits.max_writer_chars:
            raise InvalidEntryError("entry field 'writer' must be a did:key string")
        public_key_from_did(writer)  # InvalidWriterError
        if not codec.payload_within_depth(fields["payload"]):
            raise DecodeError(f"entry payload nests deeper than {codec.MAX_DEPTH} levels")
        sig = fields.pop("sig")
        if not isinstance(sig, bytes):
            raise InvalidEntryError("entry field 'sig' must be bytes")
        verify(writer, sig, codec.encode_checked(fields))
        fields["sig"] = sig
        return cls._build(cid, block, fields)

    @property
    def order_key(self) -> OrderKey:
        """The entry's place in the total order: ``(clock, writer, cid bytes)``."""
        return (self.clock, self.writer, bytes(self.cid))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Entry is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entry) and other.cid == self.cid

    def __hash__(self) -> int:
        return hash(self.cid)

    def __repr__(self) -> str:
        return f"Entry({str(self.cid)[:16]}..., clock={self.clock}, writer={self.writer[:20]}...)"
