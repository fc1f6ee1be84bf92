"""The v1 log entry: a signed DAG-CBOR map, addressed by its CID.

Wire form (a DAG-CBOR map; keys sorted as DAG-CBOR requires: shorter first, then bytewise)::

    {
      "n":       <bytes 16>,         optional: a nonce, so that two calls never make one entry
      "v":       1,                  format version
      "db":      <link>,             CID of the database manifest (CIDv1 dag-cbor sha2-256)
      "ts":      <int>,              optional: writer's wall clock, ms since the Unix epoch
                                     (display only, never used to merge)
      "sig":     <bytes 64>,         Ed25519 over the encoding of this map without "sig"
      "next":    [<link>, ...],      the heads the writer saw, sorted by CID bytes, unique
      "refs":    [<link>, ...],      optional older ancestors (skip-ahead hints), sorted
      "clock":   <int>,              Lamport time: max(clock of next) + 1, or 1
      "writer":  "did:key:z6Mk...",  the Ed25519 public key that signed
      "payload": <any>               the operation; meaning is up to the database type
                                     (its links may be any well-formed CID)
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
from orbitstore.core.cid import _PREFIX_DAG_CBOR, Cid
from orbitstore.core.identity import (
    SIGNATURE_LENGTH,
    Identity,
    bad_signature,
    public_key_from_did,
    signature_key,
    signature_valid,
)
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
_ALLOWED: Final = _REQUIRED | {"ts", "refs", "n"}
NONCE_LENGTH: Final = 16
"""Bytes of the optional ``n`` field (see docs/wire-format.md for why it exists)."""
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
        raw = bytes(link)
        if raw[:4] != _PREFIX_DAG_CBOR:  # link.is_entry_link, inlined
            raise InvalidParentsError(
                f"entry field {name!r} holds an unsupported link ({link.kind}):"
                " entries link entries, by CIDv1 dag-cbor sha2-256"
            )
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
        "nonce",
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
    nonce: bytes | None

    def __init__(self) -> None:  # pragma: no cover - guarded
        raise TypeError("use Entry.create(...) or Entry.from_block(...)")

    @classmethod
    def _build(cls, cid: Cid, block: bytes, fields: dict[str, Any]) -> Entry:
        self = object.__new__(cls)
        # The slots' own setters: half the cost of object.__setattr__ (no name lookup).
        _SET_CID(self, cid)
        _SET_BLOCK(self, block)
        _SET_DB(self, fields["db"])
        _SET_CLOCK(self, fields["clock"])
        _SET_NEXT(self, tuple(fields["next"]))
        _SET_REFS(self, tuple(fields.get("refs", ())))
        _SET_PAYLOAD(self, fields["payload"])
        _SET_WRITER(self, fields["writer"])
        _SET_SIG(self, fields["sig"])
        _SET_TS(self, fields.get("ts"))
        _SET_NONCE(self, fields.get("n"))
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
        nonce: bytes | None = None,
        limits: EntryLimits = DEFAULT_LIMITS,
    ) -> Entry:
        """Build and sign a new entry. Raises UsageError subclasses on bad arguments.

        ``nonce`` (:data:`NONCE_LENGTH` random bytes, drawn by the caller: this module
        has no randomness) makes the entry distinct from any other call's, even one by
        the same writer on the same heads with the same payload and ``ts``."""
        if not isinstance(clock, int) or isinstance(clock, bool) or not 1 <= clock < _MAX_CLOCK:
            raise InvalidValueError("clock must be an integer >= 1")
        if not isinstance(db, Cid) or not db.is_entry_link:
            raise InvalidValueError("db must be the CID of a manifest block")
        for link in (*next, *refs):
            if not isinstance(link, Cid) or not link.is_entry_link:
                raise InvalidValueError(
                    f"parents and refs must be entry CIDs, not {codec.describe(link)}"
                )
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
        if nonce is not None:
            if type(nonce) is not bytes or len(nonce) != NONCE_LENGTH:
                raise InvalidValueError(f"nonce must be {NONCE_LENGTH} bytes")
            fields["n"] = nonce
        codec.check_depth(payload)
        unsigned = codec.encode_checked(fields)
        fields["sig"] = sig = identity.sign(unsigned)
        block = signed_bytes(unsigned, fields, sig)
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
        return cls._build(cid, block, cls._verified_fields(cid, block, limits, None))

    @classmethod
    def check_block(
        cls,
        cid: Cid,
        block: bytes,
        *,
        limits: EntryLimits = DEFAULT_LIMITS,
        links: codec.LinkCache | None = None,
    ) -> None:
        """Every check of :meth:`from_block`, with the same errors, without building the
        entry: for a verification worker, whose verdict is all the node needs from it.

        ``links``: a cache shared by the blocks of one batch (see
        :meth:`from_trusted_block`), so each distinct link is built and checked once."""
        cls._verified_fields(cid, block, limits, links)

    @classmethod
    def _verified_fields(
        cls, cid: Cid, block: bytes, limits: EntryLimits, links: codec.LinkCache | None
    ) -> dict[str, Any]:
        if len(block) > limits.max_entry_bytes:
            raise EntryTooLargeError(
                f"entry block is {len(block)} bytes; the limit is {limits.max_entry_bytes}"
            )
        if bytes(cid) != _PREFIX_DAG_CBOR + hashlib.sha256(block).digest():
            raise HashMismatchError(f"block does not hash to {cid}")
        # The payload may nest MAX_DEPTH levels inside the entry map.
        if links is None:
            fields = codec.decode(block, max_depth=codec.MAX_DEPTH + 1)
        else:
            fields = codec.decode(block, max_depth=codec.MAX_DEPTH + 1, cid_ctor=links.__getitem__)
        public_key, message = cls._check(cid, block, fields, limits)
        if not signature_valid(public_key, fields["sig"], message):
            raise bad_signature(fields["writer"])
        return fields  # type: ignore[no-any-return]

    @classmethod
    def from_trusted_block(
        cls, cid: Cid, block: bytes, *, links: codec.LinkCache | None = None
    ) -> Entry:
        """Decode a block our own store verified before it stored it (no signature check).

        ``links``: a cache shared by the blocks of one read of a log, so that a link to an
        entry already decoded (its ``cid`` is recorded there) or to the database is the
        same :class:`Cid` object, built once."""
        try:
            if links is None:
                return cls._build(cid, block, codec.decode(block, check_nesting=False))
            links[cid._bytes] = cid
            fields = codec.decode(block, check_nesting=False, cid_ctor=links.__getitem__)
            return cls._build(cid, block, fields)
        except (DecodeError, KeyError, TypeError) as exc:  # damaged on disk: not the peer's
            raise StorageCorruptedError(f"stored entry {cid} no longer decodes: {exc}") from exc

    @classmethod
    def _check(
        cls, cid: Cid, block: bytes, fields: Any, limits: EntryLimits
    ) -> tuple[bytes, bytes]:
        """The structure and limits of a decoded entry: its writer's public key and the
        bytes its signature must sign, or InvalidDataError."""
        if not isinstance(fields, dict):
            raise InvalidEntryError("an entry is a DAG-CBOR map")
        v = fields.get("v")
        if type(v) is not int or v != VERSION:  # not 1.0, not True
            raise UnsupportedVersionError(f"unsupported entry version: {codec.describe(v)}")
        keys = fields.keys()
        if not keys >= _REQUIRED:
            raise InvalidEntryError(f"entry lacks fields {sorted(_REQUIRED - keys)}")
        if not keys <= _ALLOWED:
            raise InvalidEntryError(f"entry has unknown fields {sorted(keys - _ALLOWED)}")
        db = fields["db"]
        if not isinstance(db, Cid):
            raise InvalidEntryError("entry field 'db' must be a CID link")
        if not db.is_entry_link:
            raise InvalidEntryError(
                f"entry field 'db' holds an unsupported link ({db.kind}):"
                " a manifest is linked by CIDv1 dag-cbor sha2-256"
            )
        clock = fields["clock"]
        if type(clock) is not int or not 1 <= clock < _MAX_CLOCK:  # type(): not a bool
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
            if type(ts) is not int or not 0 <= ts < _MAX_TS:
                raise InvalidEntryError("entry field 'ts' must be milliseconds since the epoch")
        if "n" in fields:
            n = fields["n"]
            if type(n) is not bytes or len(n) != NONCE_LENGTH:
                raise InvalidEntryError(f"entry field 'n' must be {NONCE_LENGTH} bytes")
        writer = fields["writer"]
        if type(writer) is not str or len(writer) > limits.max_writer_chars:
            raise InvalidEntryError("entry field 'writer' must be a did:key string")
        sig = fields["sig"]
        if type(sig) is not bytes:
            public_key_from_did(writer)  # InvalidWriterError first, as before
            raise InvalidEntryError("entry field 'sig' must be bytes")
        return signature_key(writer, sig), unsigned_bytes(block, fields)

    def with_payload(self, payload: Any) -> Entry:
        """This entry carrying ``payload`` in place of its stored one: the opened form of
        an entry of an encrypted database, handed to views. ``cid``, ``block`` and ``sig``
        are unchanged (they still name and sign the sealed payload)."""
        new = object.__new__(Entry)  # slot by slot: no fields dict (once per opened entry)
        _SET_CID(new, self.cid)
        _SET_BLOCK(new, self.block)
        _SET_DB(new, self.db)
        _SET_CLOCK(new, self.clock)
        _SET_NEXT(new, self.next)
        _SET_REFS(new, self.refs)
        _SET_PAYLOAD(new, payload)
        _SET_WRITER(new, self.writer)
        _SET_SIG(new, self.sig)
        _SET_TS(new, self.ts)
        _SET_NONCE(new, self.nonce)
        return new

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


class EntryChain:
    """Builds one writer's entries for one database, one after another (an append).

    :meth:`Entry.create` checks and encodes the whole entry map on every call. Most of an
    append's map is the same for every entry of a batch — the version, the database
    link, the writer and ``ts`` — so this checks those once and keeps their encoded
    pairs; :meth:`create` encodes only the payload (the one part that needs the codec)
    and lays the pairs out by hand in DAG-CBOR's key order (``n v db ts next clock
    writer payload``, then ``sig`` after ``ts``). The signed block, and so the CID, is
    byte for byte what :meth:`Entry.create` makes: a differential test holds the two
    together for every shape of entry (tests/test_entry_chain.py)."""

    __slots__ = ("_db", "_limits", "_max_bytes", "_pre", "_sign", "_ts", "_writer", "_writer_pair")

    def __init__(
        self,
        identity: Identity,
        *,
        db: Cid,
        ts: int | None = None,
        limits: EntryLimits = DEFAULT_LIMITS,
    ) -> None:
        if not isinstance(db, Cid) or not db.is_entry_link:
            raise InvalidValueError("db must be the CID of a manifest block")
        if ts is not None and (
            not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts < _MAX_TS
        ):
            raise InvalidValueError("ts must be milliseconds since the epoch")
        self._db = db
        self._ts = ts
        self._limits = limits
        self._max_bytes = limits.max_entry_bytes
        self._sign = identity.sign
        self._writer = writer = identity.id
        # "v": 1, "db": <link>, and "ts" when given: the pairs between "n" and "sig".
        self._pre = (
            b"\x61v\x01\x62db"
            + _link(bytes(db))
            + (b"" if ts is None else b"\x62ts" + _head(0, ts))
        )
        text = writer.encode()
        self._writer_pair = b"\x66writer" + _head(3, len(text)) + text

    def create(
        self,
        *,
        clock: int,
        next: Sequence[Cid],
        payload: Any,
        nonce: bytes | None = None,
        encoded: bytes | None = None,
    ) -> Entry:
        """:meth:`Entry.create` with this chain's writer, database and ``ts`` (no refs).
        ``encoded``: the payload's canonical DAG-CBOR encoding when the caller built it
        (:class:`~orbitstore.core.codec.Encoded`); it must be exactly that."""
        if not isinstance(clock, int) or isinstance(clock, bool) or not 1 <= clock < _MAX_CLOCK:
            raise InvalidValueError("clock must be an integer >= 1")
        for link in next:
            if not isinstance(link, Cid) or not link.is_entry_link:
                raise InvalidValueError(
                    f"parents and refs must be entry CIDs, not {codec.describe(link)}"
                )
        parents = tuple(next) if len(next) < 2 else tuple(sorted(set(next)))
        if len(parents) > self._limits.max_next:
            raise InvalidValueError(f"too many parents ({len(parents)} > {self._limits.max_next})")
        pairs = 6 if self._ts is None else 7
        if nonce is not None:
            if type(nonce) is not bytes or len(nonce) != NONCE_LENGTH:
                raise InvalidValueError(f"nonce must be {NONCE_LENGTH} bytes")
            pre = b"\x61n\x50" + nonce + self._pre
            pairs += 1
        else:
            pre = self._pre
        if encoded is None:
            if not codec.is_shallow(payload):
                codec.check_depth(payload)
            encoded = codec.encode_checked(payload)
        post = b"".join(
            (
                b"\x64next",
                _head(4, len(parents)),
                *[_link(p._bytes) for p in parents],
                b"\x65clock",
                _head(0, clock),
                self._writer_pair,
                b"\x67payload",
                encoded,
            )
        )
        sig = self._sign(b"".join((_MAP_HEADS[pairs], pre, post)))
        block = b"".join((_MAP_HEADS[pairs + 1], pre, _SIG_PAIR_HEAD, sig, post))
        if len(block) > self._max_bytes:
            raise PayloadTooLargeError(
                f"entry would be {len(block)} bytes; the limit is {self._max_bytes}",
                size=len(block),
                limit=self._max_bytes,
            )
        entry = object.__new__(Entry)
        _SET_CID(entry, Cid._trusted(_PREFIX_DAG_CBOR + hashlib.sha256(block).digest()))
        _SET_BLOCK(entry, block)
        _SET_DB(entry, self._db)
        _SET_CLOCK(entry, clock)
        _SET_NEXT(entry, parents)
        _SET_REFS(entry, ())
        _SET_PAYLOAD(entry, payload)
        _SET_WRITER(entry, self._writer)
        _SET_SIG(entry, sig)
        _SET_TS(entry, self._ts)
        _SET_NONCE(entry, nonce)
        return entry


_MAP_HEADS: Final = tuple(bytes((0xA0 + n,)) for n in range(24))


_head = codec.cbor_head


def _link(raw: bytes) -> bytes:
    """A DAG-CBOR link: tag 42 around the CID's bytes behind the identity multibase 0x00."""
    return b"\xd8\x2a" + _head(2, len(raw) + 1) + b"\x00" + raw


def _setter(name: str) -> Any:
    return Entry.__dict__[name].__set__


_SET_CID = _setter("cid")
_SET_BLOCK = _setter("block")
_SET_DB = _setter("db")
_SET_CLOCK = _setter("clock")
_SET_NEXT = _setter("next")
_SET_REFS = _setter("refs")
_SET_PAYLOAD = _setter("payload")
_SET_WRITER = _setter("writer")
_SET_SIG = _setter("sig")
_SET_TS = _setter("ts")
_SET_NONCE = _setter("nonce")


def _uint_length(n: int) -> int:
    """Bytes of the canonical encoding of the unsigned integer ``n`` (< 2**64)."""
    return 1 if n < 24 else 2 if n < 0x100 else 3 if n < 0x10000 else 5 if n < 2**32 else 9


# The pairs that sort before "sig" (keys length-first, then bytewise: n, v, db, ts) have
# fixed sizes but for ts: "n" 61 6e + 50 + 16 bytes; "v" 61 76 01; "db" 62 64 62 + the
# link d8 2a 58 25 00 + 36 CID bytes (db is checked to be CIDv1 dag-cbor sha2-256 first).
_N_PAIR: Final = 2 + 1 + NONCE_LENGTH
_V_DB_PAIRS: Final = 3 + 3 + 2 + 2 + 1 + 36
_SIG_PAIR_HEAD: Final = b"\x63sig\x58\x40"  # key "sig", then a 64-byte string


def _sig_offset(fields: dict[str, Any]) -> int:
    """Where the ``sig`` pair starts in the encoding of the checked entry map ``fields``
    (with or without it): after the header byte and the fixed pairs that sort first."""
    at = 1 + _V_DB_PAIRS
    if "n" in fields:
        at += _N_PAIR
    ts = fields.get("ts")
    if ts is not None:
        at += 3 + _uint_length(ts)
    return at


def signed_bytes(unsigned: bytes, fields: dict[str, Any], sig: bytes) -> bytes:
    """The encoding of ``fields`` with ``sig``, from ``unsigned`` (its encoding without
    it): the inverse of :func:`unsigned_bytes`, with no second encode. The sig pair goes
    in at the offset the preceding pairs give and the header's pair count goes one up;
    a signature of another length takes the encoding path. A differential test holds
    this to :func:`~orbitstore.core.codec.encode_checked`."""
    if len(sig) != SIGNATURE_LENGTH or unsigned[0] >= 0xB7:  # not a one-byte map header
        return codec.encode_checked(fields)
    at = _sig_offset(fields)
    return b"".join((bytes((unsigned[0] + 1,)), unsigned[1:at], _SIG_PAIR_HEAD, sig, unsigned[at:]))


def unsigned_bytes(block: bytes, fields: dict[str, Any]) -> bytes:
    """What the writer signed: the canonical encoding of ``fields`` without ``sig``.

    ``block`` is the canonical encoding of ``fields`` (a checked entry map of at most 23
    pairs, so a one-byte header), so that encoding is the block with the ``sig`` pair cut
    out and the header's pair count one lower: no second encode. The cut is made at the
    offset the preceding pairs give and only after checking that the sig pair is there;
    anything else (a signature of the wrong length) takes the re-encoding path, which a
    differential test holds this to."""
    sig = fields["sig"]
    if len(sig) == SIGNATURE_LENGTH:
        at = _sig_offset(fields)
        end = at + len(_SIG_PAIR_HEAD) + SIGNATURE_LENGTH
        if (
            block[at : at + len(_SIG_PAIR_HEAD)] == _SIG_PAIR_HEAD
            and block[end - SIGNATURE_LENGTH : end] == sig
        ):
            return b"".join((bytes((block[0] - 1,)), block[1:at], block[end:]))
    return codec.encode_checked({k: v for k, v in fields.items() if k != "sig"})
