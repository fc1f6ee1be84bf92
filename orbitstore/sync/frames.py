"""Sync protocol frames: ``varint length ‖ DAG-CBOR map``, and a sans-IO decoder.

Every frame is an unsigned LEB128 varint (minimal, at most 4 bytes) giving the length of
the body, then the body: one canonical DAG-CBOR map whose ``"t"`` key names the message::

    {"t": "hello",   "v": 1, "db": <link>, "heads": [<link>...], "have": [<link>...],
                     "n": <uint>}               "n" optional: entries the sender holds
    {"t": "entries", "blocks": [[<link>, <bytes>], ...]}
    {"t": "want",    "cids": [<link>...]}          an empty list means "I want nothing more"
    {"t": "done"}                                   end of our sending for this round
    {"t": "error",   "code": <str>, "message": <str>}

    {"t": "get_manifest", "v": 1, "db": <link>}     first and only message of a fetch
    {"t": "manifest",  "db": <link>, "block": <bytes>}   the answer: the manifest block
    {"t": "not_found", "db": <link>}                 the answer: "I do not hold it"

    {"t": "challenge", "v": 1, "db": <link>, "nonce": <32 bytes>}    private databases:
    {"t": "proof", "db": <link>, "id": <did>, "nonce": <32 bytes>, "sig": <64 bytes>}
                                                     prove a reader identity first
                                                     (see orbitstore.sync.auth); a
                                                     linked device adds
                                                     "delegation": <its delegation map>

Messages are frozen values with keyword-only validating constructors, so an invalid one
cannot be built; :class:`FrameDecoder` turns bytes into messages and raises
:class:`~orbitstore.errors.ProtocolError` for anything malformed or over a limit.
See ``docs/sync-protocol.md`` for the byte-by-byte description.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.devices import Delegation
from orbitstore.core.manifest import MAX_MANIFEST_BYTES
from orbitstore.errors import DecodeError, InvalidDataError, InvalidValueError, ProtocolError

PROTOCOL_VERSION: Final = 1
_MAX_VARINT_BYTES: Final = 4  # 2**28 - 1: far above any frame limit we accept
# A Hello's entry count fits a CBOR unsigned integer of 64 bits.
MAX_ENTRY_COUNT: Final = 2**64 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameLimits:
    """What a peer may send us. Defaults with the reason for each."""

    # One frame must hold at least one entry of the largest allowed size (512 KiB) plus
    # its framing; 2 MiB also lets several large entries share a frame.
    max_frame_bytes: int = 2 * 1024 * 1024
    # Bounds the work (hash + signature checks) one frame can cause before we look again.
    max_blocks_per_frame: int = 4096
    # heads, have and want lists: far more than any honest peer's concurrent heads.
    max_cids_per_message: int = 4096
    # Per session: a peer that keeps sending is cut off here (1 GiB).
    max_total_bytes: int = 1024 * 1024 * 1024
    # Entries frames we write aim at this size: large writes amortise per-frame costs
    # (the libp2p notes measure throughput flat above 64 KiB).
    target_frame_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        for name in (
            "max_frame_bytes",
            "max_blocks_per_frame",
            "max_cids_per_message",
            "max_total_bytes",
            "target_frame_bytes",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidValueError(f"{name} must be a positive integer")
        if self.max_frame_bytes >= 1 << (7 * _MAX_VARINT_BYTES):
            raise InvalidValueError("max_frame_bytes must be below 2**28")


DEFAULT_FRAME_LIMITS: Final = FrameLimits()


def _check_cids(name: str, value: object) -> tuple[Cid, ...]:
    if not isinstance(value, (list, tuple)):
        raise InvalidValueError(f"{name} must be a sequence of CIDs")
    out = tuple(value)
    for cid in out:
        if not isinstance(cid, Cid):
            raise InvalidValueError(f"{name} must hold only CIDs, not {type(cid).__name__}")
        if not cid.is_entry_link:
            raise InvalidValueError(
                f"{name} must hold CIDv1 dag-cbor sha2-256 CIDs; {cid.kind} is unsupported"
            )
    return out


# --- messages --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """First message of each side: protocol version, database, our heads, and a sample
    of older entries we hold (``have``) so the peer can find common ancestry.

    ``entries`` (wire key ``"n"``, optional) is how many entries of the database the
    sender holds: the receiver's progress can then count entries ("received N of M")
    instead of heads. None: the sender did not say (a node from before the field); a
    Hello without it is encoded exactly as before."""

    v: int = PROTOCOL_VERSION
    db: Cid
    heads: tuple[Cid, ...] = ()
    have: tuple[Cid, ...] = ()
    entries: int | None = None

    def __post_init__(self) -> None:
        _check_version("hello", self.v)
        _check_db("hello", self.db)
        object.__setattr__(self, "heads", _check_cids("hello.heads", self.heads))
        object.__setattr__(self, "have", _check_cids("hello.have", self.have))
        n = self.entries
        if n is not None and (
            not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_ENTRY_COUNT
        ):
            raise InvalidValueError("hello.n must be an unsigned integer (entries held)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Entries:
    """Entry blocks, parents before children, many per frame."""

    blocks: tuple[tuple[Cid, bytes], ...]

    def __post_init__(self) -> None:
        if not isinstance(self.blocks, (list, tuple)):
            raise InvalidValueError("entries.blocks must be a sequence of (cid, bytes)")
        out: list[tuple[Cid, bytes]] = []
        for item in self.blocks:
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise InvalidValueError("entries.blocks items are (cid, bytes) pairs")
            cid, block = item
            if not isinstance(cid, Cid) or not cid.is_entry_link:
                raise InvalidValueError(
                    "entries.blocks: the first item must be a CIDv1 dag-cbor sha2-256 CID"
                )
            if not isinstance(block, bytes):
                raise InvalidValueError("entries.blocks: the second item must be bytes")
            out.append((cid, block))
        object.__setattr__(self, "blocks", tuple(out))

    @property
    def size(self) -> int:
        return sum(len(b) for _, b in self.blocks)


@dataclass(frozen=True, slots=True, kw_only=True)
class Want:
    """Entries we still miss after the peer's round; empty: we want nothing more."""

    cids: tuple[Cid, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "cids", _check_cids("want.cids", self.cids))


@dataclass(frozen=True, slots=True, kw_only=True)
class Done:
    """The sender finished a round: everything it had to send has been sent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Error:
    """The sender aborts the exchange; ``code`` is an orbitstore error code."""

    code: str
    message: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not 0 < len(self.code) <= 64:
            raise InvalidValueError("error.code must be a string of 1 to 64 characters")
        if not isinstance(self.message, str) or len(self.message) > 1024:
            raise InvalidValueError("error.message must be a string of at most 1024 characters")


def _check_version(name: str, v: object) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise InvalidValueError(f"{name}.v must be a non-negative integer")


def _check_db(name: str, db: object) -> None:
    if not isinstance(db, Cid) or not db.is_entry_link:
        raise InvalidValueError(f"{name}.db must be a CIDv1 dag-cbor sha2-256 CID")


@dataclass(frozen=True, slots=True, kw_only=True)
class GetManifest:
    """First and only message of a manifest fetch: send me the manifest of ``db``."""

    v: int = PROTOCOL_VERSION
    db: Cid

    def __post_init__(self) -> None:
        _check_version("get_manifest", self.v)
        _check_db("get_manifest", self.db)


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestBlock:
    """The answer to :class:`GetManifest`: the manifest block of ``db`` (at most
    ``MAX_MANIFEST_BYTES``). The asker verifies that it hashes to ``db``."""

    db: Cid
    block: bytes

    def __post_init__(self) -> None:
        _check_db("manifest", self.db)
        if not isinstance(self.block, bytes):
            raise InvalidValueError("manifest.block must be bytes")
        if len(self.block) > MAX_MANIFEST_BYTES:
            raise InvalidValueError(
                f"manifest.block has {len(self.block)} bytes (limit {MAX_MANIFEST_BYTES})"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class NotFound:
    """The answer to :class:`GetManifest` from a peer that does not hold ``db``."""

    db: Cid

    def __post_init__(self) -> None:
        _check_db("not_found", self.db)


AUTH_NONCE_BYTES: Final = 32
_MAX_DID_CHARS: Final = 128  # a did:key of an Ed25519 key has 56


def _check_nonce(name: str, nonce: object) -> None:
    if not isinstance(nonce, bytes) or len(nonce) != AUTH_NONCE_BYTES:
        raise InvalidValueError(f"{name}.nonce must be {AUTH_NONCE_BYTES} bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    """Private databases: "prove to me that you are a reader of ``db``". ``nonce`` is
    fresh randomness of the sender's; the answer is a :class:`Proof` signed over it."""

    v: int = PROTOCOL_VERSION
    db: Cid
    nonce: bytes

    def __post_init__(self) -> None:
        _check_version("challenge", self.v)
        _check_db("challenge", self.db)
        _check_nonce("challenge", self.nonce)


@dataclass(frozen=True, slots=True, kw_only=True)
class Proof:
    """The answer to a :class:`Challenge`: identity ``id`` signed the session
    transcript (:func:`orbitstore.sync.auth.transcript`) with ``sig``; ``nonce`` is the
    prover's own fresh randomness, bound into what it signed. A linked device adds its
    ``delegation`` (signed by its user's root key, naming ``id`` as the device): it says
    which user the device reads for, before any link op of it reached the verifier."""

    db: Cid
    id: str
    nonce: bytes
    sig: bytes
    delegation: Delegation | None = None

    def __post_init__(self) -> None:
        _check_db("proof", self.db)
        if not isinstance(self.id, str) or not 0 < len(self.id) <= _MAX_DID_CHARS:
            raise InvalidValueError(f"proof.id must be a did of 1 to {_MAX_DID_CHARS} characters")
        _check_nonce("proof", self.nonce)
        if not isinstance(self.sig, bytes) or len(self.sig) != 64:
            raise InvalidValueError("proof.sig must be a 64-byte Ed25519 signature")
        if self.delegation is not None and (
            not isinstance(self.delegation, Delegation) or self.delegation.device != self.id
        ):
            raise InvalidValueError("proof.delegation must be a delegation to the proof's id")


Message: TypeAlias = (
    Hello
    | Entries
    | Want
    | Done
    | Error
    | GetManifest
    | ManifestBlock
    | NotFound
    | Challenge
    | Proof
)


# --- encoding --------------------------------------------------------------------------


def encode_varint(n: int) -> bytes:
    if n < 0:
        raise InvalidValueError("a varint is non-negative")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _to_map(message: Message) -> dict[str, Any]:
    if isinstance(message, Hello):
        hello: dict[str, Any] = {
            "t": "hello",
            "v": message.v,
            "db": message.db,
            "heads": list(message.heads),
            "have": list(message.have),
        }
        if message.entries is not None:
            hello["n"] = message.entries
        return hello
    if isinstance(message, Entries):
        return {"t": "entries", "blocks": [[c, b] for c, b in message.blocks]}
    if isinstance(message, Want):
        return {"t": "want", "cids": list(message.cids)}
    if isinstance(message, Done):
        return {"t": "done"}
    if isinstance(message, Error):
        return {"t": "error", "code": message.code, "message": message.message}
    if isinstance(message, GetManifest):
        return {"t": "get_manifest", "v": message.v, "db": message.db}
    if isinstance(message, ManifestBlock):
        return {"t": "manifest", "db": message.db, "block": message.block}
    if isinstance(message, NotFound):
        return {"t": "not_found", "db": message.db}
    if isinstance(message, Challenge):
        return {"t": "challenge", "v": message.v, "db": message.db, "nonce": message.nonce}
    if isinstance(message, Proof):
        proof = {
            "t": "proof",
            "db": message.db,
            "id": message.id,
            "nonce": message.nonce,
            "sig": message.sig,
        }
        if message.delegation is not None:
            proof["delegation"] = message.delegation.to_value()
        return proof
    raise InvalidValueError(f"not a sync message: {type(message).__name__}")


def encode_frame(message: Message) -> bytes:
    """One frame: varint length, then the message as a DAG-CBOR map."""
    body = codec.encode(_to_map(message))
    return encode_varint(len(body)) + body


def frame_size(body_len: int) -> int:
    """Bytes a frame with a body of ``body_len`` bytes takes on the wire."""
    return len(encode_varint(body_len)) + body_len


def entries_overhead(block_len: int) -> int:
    """Upper bound of what one block adds to an Entries body (CID link + headers)."""
    return block_len + 36 + 16


# --- decoding --------------------------------------------------------------------------


def _cids(msg: dict[str, Any], key: str, limit: int) -> tuple[Cid, ...]:
    value = msg.get(key)
    if not isinstance(value, list):
        raise ProtocolError(f"{msg['t']}.{key} must be a list of links")
    if len(value) > limit:
        raise ProtocolError(f"{msg['t']}.{key} has {len(value)} CIDs (limit {limit})")
    return tuple(value)


def _keys(msg: dict[str, Any], allowed: set[str] | frozenset[str]) -> None:
    if set(msg) != allowed:
        raise ProtocolError(
            f"{msg['t']} message must have exactly the keys {sorted(allowed)}, got {sorted(msg)}"
        )


_HELLO_KEYS: Final = frozenset({"t", "v", "db", "heads", "have"})

_PROOF_KEYS: Final = frozenset({"t", "db", "id", "nonce", "sig"})


def _proof(msg: dict[str, Any]) -> Proof:
    _keys(msg, set(_PROOF_KEYS | {"delegation"}) if "delegation" in msg else set(_PROOF_KEYS))
    delegation = None
    if "delegation" in msg:
        try:  # checks the root's signature too
            delegation = Delegation.from_value(msg["delegation"])
        except InvalidDataError as exc:
            raise ProtocolError(f"invalid proof message: {exc.message}") from exc
    return Proof(
        db=msg["db"], id=msg["id"], nonce=msg["nonce"], sig=msg["sig"], delegation=delegation
    )


def decode_body(body: bytes, limits: FrameLimits = DEFAULT_FRAME_LIMITS) -> Message:
    """Decode one frame body (without its length prefix)."""
    try:
        msg = codec.decode(body)
    except DecodeError as exc:
        raise ProtocolError(f"frame body is not canonical DAG-CBOR: {exc}") from exc
    if not isinstance(msg, dict) or not isinstance(msg.get("t"), str):
        raise ProtocolError('a frame body is a DAG-CBOR map with a string "t"')
    kind = msg["t"]
    try:
        if kind == "hello":
            _keys(msg, _HELLO_KEYS | {"n"} if "n" in msg else _HELLO_KEYS)
            if "n" in msg and msg["n"] is None:  # absent is fine, null is not a count
                raise InvalidValueError("hello.n must be an unsigned integer (entries held)")
            return Hello(
                v=msg["v"],
                db=msg["db"],
                heads=_cids(msg, "heads", limits.max_cids_per_message),
                have=_cids(msg, "have", limits.max_cids_per_message),
                entries=msg.get("n"),
            )
        if kind == "entries":
            _keys(msg, {"t", "blocks"})
            blocks = msg["blocks"]
            if not isinstance(blocks, list):
                raise ProtocolError("entries.blocks must be a list")
            if len(blocks) > limits.max_blocks_per_frame:
                raise ProtocolError(
                    f"entries frame holds {len(blocks)} blocks"
                    f" (limit {limits.max_blocks_per_frame})"
                )
            return Entries(blocks=tuple(tuple(b) if isinstance(b, list) else b for b in blocks))
        if kind == "want":
            _keys(msg, {"t", "cids"})
            return Want(cids=_cids(msg, "cids", limits.max_cids_per_message))
        if kind == "done":
            _keys(msg, {"t"})
            return Done()
        if kind == "error":
            _keys(msg, {"t", "code", "message"})
            return Error(code=msg["code"], message=msg["message"])
        if kind == "get_manifest":
            _keys(msg, {"t", "v", "db"})
            return GetManifest(v=msg["v"], db=msg["db"])
        if kind == "manifest":
            _keys(msg, {"t", "db", "block"})
            return ManifestBlock(db=msg["db"], block=msg["block"])
        if kind == "not_found":
            _keys(msg, {"t", "db"})
            return NotFound(db=msg["db"])
        if kind == "challenge":
            _keys(msg, {"t", "v", "db", "nonce"})
            return Challenge(v=msg["v"], db=msg["db"], nonce=msg["nonce"])
        if kind == "proof":
            return _proof(msg)
    except InvalidValueError as exc:
        raise ProtocolError(f"invalid {kind} message: {exc.message}") from exc
    raise ProtocolError(f"unknown message type ({codec.describe(kind)})")


class FrameDecoder:
    """Bytes in, messages out; never awaits.

    ``feed(data)`` returns every message completed by ``data``. Anything malformed —
    a non-minimal or overlong varint, a frame over ``max_frame_bytes``, a body that is
    not one of the messages above, more than ``max_total_bytes`` in all — raises
    :class:`ProtocolError`, after which the decoder refuses further input.
    """

    def __init__(self, limits: FrameLimits = DEFAULT_FRAME_LIMITS) -> None:
        self.limits = limits
        self._buffer = bytearray()
        self._total = 0
        self._failed: ProtocolError | None = None

    @property
    def total_bytes(self) -> int:
        """Bytes fed so far."""
        return self._total

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        if self._failed is not None:
            raise ProtocolError(f"decoder already failed: {self._failed.message}")
        try:
            return self._feed(data)
        except ProtocolError as exc:
            self._failed = exc
            raise

    def _feed(self, data: bytes) -> list[Message]:
        self._total += len(data)
        if self._total > self.limits.max_total_bytes:
            raise ProtocolError(
                f"peer sent more than {self.limits.max_total_bytes} bytes in one session"
            )
        self._buffer += data
        out: list[Message] = []
        while True:
            header = self._header()
            if header is None:
                return out
            length, used = header
            if len(self._buffer) < used + length:
                return out
            body = bytes(self._buffer[used : used + length])
            del self._buffer[: used + length]
            out.append(decode_body(body, self.limits))

    def _header(self) -> tuple[int, int] | None:
        buf = self._buffer
        value = 0
        for i in range(min(len(buf), _MAX_VARINT_BYTES)):
            byte = buf[i]
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if byte == 0 and i > 0:
                    raise ProtocolError("frame length varint is not minimal")
                if value > self.limits.max_frame_bytes:
                    raise ProtocolError(
                        f"frame of {value} bytes is over the limit of {self.limits.max_frame_bytes}"
                    )
                if value == 0:
                    raise ProtocolError("empty frame")
                return value, i + 1
        if len(buf) >= _MAX_VARINT_BYTES:
            raise ProtocolError(f"frame length varint longer than {_MAX_VARINT_BYTES} bytes")
        # Partial varint: its low bits may already exceed the limit.
        if value > self.limits.max_frame_bytes:
            raise ProtocolError(
                f"frame of at least {value} bytes is over the limit of"
                f" {self.limits.max_frame_bytes}"
            )
        return None


def batch_entries(
    blocks: Iterable[tuple[Cid, bytes]], limits: FrameLimits = DEFAULT_FRAME_LIMITS
) -> list[Entries]:
    """Group blocks into Entries messages of about ``target_frame_bytes`` each."""
    out: list[Entries] = []
    current: list[tuple[Cid, bytes]] = []
    size = 0
    for cid, block in blocks:
        cost = entries_overhead(len(block))
        if current and (
            size + cost > limits.target_frame_bytes
            or size + cost + 16 > limits.max_frame_bytes
            or len(current) >= limits.max_blocks_per_frame
        ):
            out.append(Entries(blocks=tuple(current)))
            current, size = [], 0
        current.append((cid, block))
        size += cost
    if current:
        out.append(Entries(blocks=tuple(current)))
    return out


__all__: Sequence[str] = [
    "AUTH_NONCE_BYTES",
    "DEFAULT_FRAME_LIMITS",
    "Challenge",
    "PROTOCOL_VERSION",
    "Done",
    "Entries",
    "Error",
    "FrameDecoder",
    "FrameLimits",
    "GetManifest",
    "Hello",
    "ManifestBlock",
    "Message",
    "NotFound",
    "Proof",
    "Want",
    "batch_entries",
    "decode_body",
    "encode_frame",
]
