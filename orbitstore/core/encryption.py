"""Sealed payloads for encrypted databases: the pure part (no randomness, no I/O).

How it works
============

A database is encrypted when its manifest's ``meta`` holds
``{"encryption": {"v": 1, "aead": "xchacha20poly1305-ietf", "owner": <did>}}``. Its
entries keep every field in the clear (``db``, ``clock``, ``next``, ``refs``,
``writer``, ``sig``) so any replica orders and verifies them; only the payload changes.
A payload in an encrypted database is one of four shapes:

- **sealed data** ``{"enc": {"e": <epoch CID>, "n": <24 bytes>, "c": <bytes>}}``: the
  DAG-CBOR encoding of the application payload, sealed with XChaCha20-Poly1305 (IETF)
  under the key of epoch ``e`` with nonce ``n``. The AAD binds the ciphertext to the
  entry that carries it: the database CID, the epoch, the writer, the clock and the
  parents (see :func:`aad`). Moved to any other entry, it no longer opens.
- **key announcement** ``{"keys": {"member": <did>, "x25519": <32 bytes>, "sig": <64>}}``:
  a member's X25519 public key for key exchange, self-signed by the member's Ed25519 key
  (over :func:`announcement_message`), so whoever posts it cannot substitute a key.
- **key epoch** ``{"epoch": {"keys": {<did>: <sealed box>}, "prior": <sealed> | None}}``:
  a new database key, sealed (``crypto_box_seal``) to each member's announced X25519 key;
  ``prior`` holds the keys of the earlier epochs the writer knew, sealed under the new key
  (so a member added later reads the history). An epoch is named by its entry's CID; it
  is valid only when written by the owner named in the manifest (or, under capabilities
  access, by an admin: see :mod:`orbitstore.node.encryption`).
- **access op** ``{"acl": ...}`` (capabilities databases): in the clear, as elsewhere.

The member's X25519 key is not the Ed25519 signing key: it is derived from the identity
seed with keyed BLAKE2b under its own personalization label (:func:`exchange_keypair`),
so the two keys are independent and one is never used for the other's purpose.

Nonces are 192 random bits, drawn by the caller (this module has no random source) —
see docs/encryption.md for why random nonces under XChaCha20 and not a counter or
AES-GCM-SIV. Every failure to open is :class:`~orbitstore.errors.DecryptionError`,
never garbage.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import nacl.bindings
import nacl.exceptions
from nacl._sodium import ffi as _ffi
from nacl._sodium import lib as _lib

from orbitstore.core import codec
from orbitstore.core.cid import DAG_CBOR, Cid
from orbitstore.core.identity import Identity, public_key_from_did, verify
from orbitstore.errors import (
    DecodeError,
    DecryptionError,
    InvalidDataError,
    InvalidEncryptedPayloadError,
    InvalidValueError,
)

META_KEY: Final = "encryption"
AEAD_NAME: Final = "xchacha20poly1305-ietf"
VERSION: Final = 1
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 24
EXCHANGE_KEY_BYTES: Final = 32
SEALED_KEY_BYTES: Final = KEY_BYTES + 48  # ephemeral public key (32) + MAC (16)
SEALED: Final = "enc"
ANNOUNCE: Final = "keys"
EPOCH: Final = "epoch"
RESERVED: Final = frozenset({SEALED, ANNOUNCE, EPOCH})
_PERSON: Final = b"orbitstore.kx.v1"  # BLAKE2b personalization: 16 bytes
_STATE_PERSON: Final = b"orbitstore.ks.v1"  # the node's own sealing of learned keys
_STATE_AAD: Final = b"orbitstore/keystate/v1"
_ANNOUNCE_PURPOSE: Final = "orbitstore/key-announcement/v1"
_AAD_TAG: Final = b"orbitstore/aad/v1"
_AAD_KINDS: Final = frozenset({"data", "prior"})
# Members per epoch entry: 2048 sealed keys of ~80 bytes plus dids stay under 512 KiB.
MAX_MEMBERS: Final = 2048


@dataclass(frozen=True, slots=True, kw_only=True)
class EncryptionSpec:
    """The ``encryption`` part of a manifest's meta."""

    owner: str
    aead: str = AEAD_NAME
    v: int = VERSION

    def __post_init__(self) -> None:
        if self.v != VERSION or self.aead != AEAD_NAME:
            raise InvalidValueError(
                f"unsupported encryption {self.aead!r:.40} v{self.v!r:.10}; "
                f"this version knows {AEAD_NAME} v{VERSION}"
            )
        try:
            public_key_from_did(self.owner)
        except InvalidDataError as exc:
            raise InvalidValueError(f"the encryption owner is not a did:key: {exc}") from exc

    def to_meta(self) -> dict[str, Any]:
        return {"aead": self.aead, "owner": self.owner, "v": self.v}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> EncryptionSpec | None:
        """The spec a manifest's meta declares; None for a database in the clear."""
        desc = meta.get(META_KEY)
        if desc is None:
            return None
        if not isinstance(desc, dict) or set(desc) != {"aead", "owner", "v"}:
            raise InvalidValueError("meta 'encryption' is a map of aead, owner and v")
        return cls(owner=desc["owner"], aead=desc["aead"], v=desc["v"])


# Meta keys the node reserves (encryption here, read control in core/privacy.py): never
# view options.
_RESERVED_META: Final = frozenset({META_KEY, "read"})


def strip_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` without the keys the node reserves (encryption, read control): what a
    view's options are read from."""
    return {k: v for k, v in meta.items() if k not in _RESERVED_META}


# -- keys -------------------------------------------------------------------------------


def exchange_keypair(identity: Identity) -> tuple[bytes, bytes]:
    """``(public, secret)`` X25519 keys derived from the identity seed for key exchange
    only: BLAKE2b keyed with the seed, personalized ``orbitstore.kx.v1``."""
    secret: bytes = nacl.bindings.crypto_generichash_blake2b_salt_personal(
        b"", digest_size=EXCHANGE_KEY_BYTES, key=identity.seed, person=_PERSON
    )
    public: bytes = nacl.bindings.crypto_scalarmult_base(secret)
    return public, secret


def state_key(identity: Identity) -> bytes:
    """The key a node seals its own learned epoch keys under at rest (never sent):
    BLAKE2b keyed with the identity seed, personalized ``orbitstore.ks.v1``."""
    key: bytes = nacl.bindings.crypto_generichash_blake2b_salt_personal(
        b"", digest_size=KEY_BYTES, key=identity.seed, person=_STATE_PERSON
    )
    return key


def state_aad(db: Cid) -> bytes:
    """The associated data of a sealed key state: it opens for this database only."""
    return _STATE_AAD + bytes(db)


def open_sealed_key(sealed: bytes, public: bytes, secret: bytes) -> bytes:
    """The epoch key in a ``crypto_box_seal`` box addressed to ``public``."""
    try:
        key: bytes = nacl.bindings.crypto_box_seal_open(sealed, public, secret)
    except (nacl.exceptions.CryptoError, TypeError, ValueError) as exc:
        raise DecryptionError("a sealed epoch key does not open with our key", kind="key") from exc
    if len(key) != KEY_BYTES:
        raise DecryptionError("a sealed epoch key has the wrong length", kind="key")
    return key


def announcement_message(db: Cid, member: str, public: bytes) -> bytes:
    """The bytes a member signs to announce its X25519 key for ``db``."""
    return codec.encode(
        {"db": db, "member": member, "purpose": _ANNOUNCE_PURPOSE, "x25519": public}
    )


def announcement(identity: Identity, db: Cid) -> dict[str, Any]:
    """The key-announcement payload of ``identity`` for ``db``."""
    public, _ = exchange_keypair(identity)
    sig = identity.sign(announcement_message(db, identity.id, public))
    return {ANNOUNCE: {"member": identity.id, "sig": sig, "x25519": public}}


def parse_announcement(db: Cid, body: object) -> tuple[str, bytes]:
    """``(member, x25519 public key)`` of a verified announcement body, or
    InvalidEncryptedPayloadError / BadSignatureError."""
    if not isinstance(body, dict) or set(body) != {"member", "sig", "x25519"}:
        raise InvalidEncryptedPayloadError("a key announcement is {member, sig, x25519}")
    member, public, sig = body["member"], body["x25519"], body["sig"]
    if not isinstance(public, bytes) or len(public) != EXCHANGE_KEY_BYTES:
        raise InvalidEncryptedPayloadError("an announced X25519 key has 32 bytes")
    if not isinstance(member, str) or not isinstance(sig, bytes):
        raise InvalidEncryptedPayloadError("a key announcement names a did and a signature")
    public_key_from_did(member)
    verify(member, sig, announcement_message(db, member, public))
    return member, public


# -- the AAD and sealed payloads ---------------------------------------------------------


def aad(
    *,
    db: Cid,
    epoch: Cid | None,
    writer: str,
    clock: int,
    next: Sequence[Cid],
    kind: str,
    entry_nonce: bytes | None = None,
) -> bytes:
    """Associated data of a sealed payload: everything that places it in one entry.

    ``kind`` is ``"data"`` (an application payload) or ``"prior"`` (the earlier keys in
    an epoch entry), so one can never be opened as the other. The layout is a sequence
    of length-prefixed parts (2-byte big-endian length, then the bytes): the tag
    ``orbitstore/aad/v1``, ``kind``, the binary database CID, the binary epoch CID (empty
    for ``prior``), the writer id (UTF-8), the clock (8 bytes big-endian), the entry's
    own nonce ``n`` (empty without one), then each parent's binary CID in ascending byte
    order. Every part is prefixed, so no two
    different entries have the same AAD.
    """
    return _aad_prefix(kind, db, epoch, writer) + _aad_tail(clock, next, entry_nonce)


def _part(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


# The fixed-width middle of an AAD: the clock's part (length 8, then the clock) and the
# length of the entry-nonce part; one ``pack`` instead of three ``to_bytes``.
_CLOCK_AND_NONCE_LENGTH: Final = struct.Struct(">HQH")


def _aad_tail(clock: int, next: Sequence[Cid], entry_nonce: bytes | None) -> bytes:
    """The parts of an AAD after the writer's (see :func:`aad`): the clock, the entry
    nonce, the parents. One parent (a chain of appends) skips the sort."""
    if len(next) == 1:
        parent = next[0]._bytes  # a slot read, not a call of __bytes__
        parents = b"\x00\x24" + parent if len(parent) == 36 else _part(parent)
    else:
        parents = b"".join(
            b"\x00\x24" + p if len(p) == 36 else _part(p) for p in sorted({c._bytes for c in next})
        )
    nonce = entry_nonce or b""
    return _CLOCK_AND_NONCE_LENGTH.pack(8, clock, len(nonce)) + nonce + parents


@lru_cache(maxsize=256)
def _aad_prefix(kind: str, db: Cid, epoch: Cid | None, writer: str) -> bytes:
    """The parts of an AAD that one writer repeats for every entry of an epoch."""
    if kind not in _AAD_KINDS:
        raise InvalidValueError(f"an AAD kind is one of {sorted(_AAD_KINDS)}")
    parts = [_AAD_TAG, kind.encode(), bytes(db), b"" if epoch is None else bytes(epoch)]
    return b"".join(_part(p) for p in [*parts, writer.encode()])


# PyNaCl's own cffi binding of libsodium. Its public wrapper
# (nacl.bindings.crypto_aead_xchacha20poly1305_ietf_*) spends about ten times the cipher's
# own time on argument checks for a small payload; these two calls check the lengths once
# here and call libsodium directly. tests/test_encryption.py holds them to the wrapper.
_ABYTES: Final = 16
_ENCRYPT: Final = _lib.crypto_aead_xchacha20poly1305_ietf_encrypt
_NULL: Final = _ffi.NULL
_from_buffer: Final = _ffi.from_buffer


def seal(key: bytes, plaintext: bytes, *, nonce: bytes, aad: bytes) -> bytes:
    """XChaCha20-Poly1305 (IETF) of ``plaintext``; ``nonce`` must be 24 fresh random bytes."""
    if (
        type(key) is not bytes
        or len(key) != KEY_BYTES
        or type(nonce) is not bytes
        or len(nonce) != NONCE_BYTES
    ):
        raise InvalidValueError("XChaCha20-Poly1305 takes a 32-byte key and a 24-byte nonce")
    out = bytearray(len(plaintext) + _ABYTES)
    # The ciphertext's length is always len(plaintext) + 16: libsodium takes NULL for it.
    rc = _ENCRYPT(
        _from_buffer(out), _NULL, plaintext, len(plaintext), aad, len(aad), _NULL, nonce, key
    )
    if rc != 0:  # pragma: no cover - libsodium does not fail to encrypt
        raise InvalidValueError("libsodium refused to encrypt")
    return bytes(out)


def unseal(key: bytes, ciphertext: bytes, *, nonce: bytes, aad: bytes) -> bytes:
    """The plaintext, or DecryptionError (wrong key, changed ciphertext, AAD or nonce)."""
    if type(nonce) is not bytes or len(nonce) != NONCE_BYTES:
        raise DecryptionError("a sealed payload's nonce has 24 bytes", kind="payload")
    if (
        type(key) is not bytes
        or len(key) != KEY_BYTES
        or type(ciphertext) is not bytes
        or len(ciphertext) < _ABYTES
    ):
        raise DecryptionError("a sealed payload needs a 32-byte key and a tag", kind="payload")
    out = _ffi.new("unsigned char[]", max(1, len(ciphertext) - _ABYTES))
    out_len = _ffi.new("unsigned long long *")
    rc = _lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
        out, out_len, _ffi.NULL, ciphertext, len(ciphertext), aad, len(aad), nonce, key
    )
    if rc != 0:
        raise DecryptionError(
            "a sealed payload does not open: wrong key, or the ciphertext or the entry"
            " fields it is bound to were changed",
            kind="payload",
        )
    return bytes(_ffi.buffer(out, out_len[0]))


def seal_payload(
    key: bytes,
    payload: Any,
    *,
    nonce: bytes,
    db: Cid,
    epoch: Cid,
    writer: str,
    clock: int,
    next: Sequence[Cid],
    entry_nonce: bytes | None = None,
) -> dict[str, Any]:
    """The sealed-data payload that carries ``payload`` in the entry these fields describe."""
    plaintext = codec.encode(payload)
    bound = aad(
        db=db,
        epoch=epoch,
        writer=writer,
        clock=clock,
        next=next,
        kind="data",
        entry_nonce=entry_nonce,
    )
    return {SEALED: {"c": seal(key, plaintext, nonce=nonce, aad=bound), "e": epoch, "n": nonce}}


_cbor_head = codec.cbor_head


# {"enc": {"c": ... — a map of one pair, the key, a map of three pairs, the key "c".
_SEALED_MAP_HEAD: Final = b"\xa1" + _cbor_head(3, len(SEALED)) + SEALED.encode() + b"\xa3\x61c"
_NONCE_PAIR_HEAD: Final = b"\x61n" + _cbor_head(2, NONCE_BYTES)


class DataSealer:
    """Seals the application payloads of one writer under one epoch key: what
    :func:`seal_payload` does, with the parts of the AAD that every entry of the epoch
    repeats (tag, kind, database, epoch, writer) encoded once, and one output buffer
    reused. Byte for byte the same result as :func:`seal_payload`
    (tests/test_encryption.py holds them together). Not for use from two threads at
    once (the buffer): a node seals under its write lock.
    """

    __slots__ = ("_buffer", "_epoch_pair", "_key", "_pointer", "_prefix", "epoch")

    def __init__(self, key: bytes, *, db: Cid, epoch: Cid, writer: str) -> None:
        if type(key) is not bytes or len(key) != KEY_BYTES:
            raise InvalidValueError("XChaCha20-Poly1305 takes a 32-byte key")
        self._key = key
        self.epoch = epoch
        raw = bytes(epoch)
        # '"e": <link>' of the sealed map: tag 42 around 0x00 and the epoch's CID bytes.
        self._epoch_pair = b"\x61e\xd8\x2a" + _cbor_head(2, len(raw) + 1) + b"\x00" + raw
        self._prefix = _aad_prefix("data", db, epoch, writer)
        self._buffer = bytearray(0)
        self._pointer: Any = _NULL

    def seal(
        self,
        payload: Any,
        *,
        nonce: bytes,
        clock: int,
        next: Sequence[Cid],
        entry_nonce: bytes | None,
    ) -> dict[str, Any]:
        """The sealed-data payload of ``payload`` in the entry ``(clock, next,
        entry_nonce)``; ``nonce`` must be 24 fresh random bytes."""
        if type(nonce) is not bytes or len(nonce) != NONCE_BYTES:
            raise InvalidValueError("XChaCha20-Poly1305 takes a 24-byte nonce")
        plaintext = codec.encode(payload)
        bound = self._prefix + _aad_tail(clock, next, entry_nonce)
        size = len(plaintext) + _ABYTES
        if size > len(self._buffer):
            self._buffer = bytearray(max(size, 2 * len(self._buffer), 256))
            self._pointer = _from_buffer(self._buffer)
        rc = _ENCRYPT(
            self._pointer,
            _NULL,
            plaintext,
            len(plaintext),
            bound,
            len(bound),
            _NULL,
            nonce,
            self._key,
        )
        if rc != 0:  # pragma: no cover - libsodium does not fail to encrypt
            raise InvalidValueError("libsodium refused to encrypt")
        return {SEALED: {"c": bytes(self._buffer[:size]), "e": self.epoch, "n": nonce}}

    def seal_encoded(
        self,
        payload: Any,
        *,
        nonce: bytes,
        clock: int,
        next: Sequence[Cid],
        entry_nonce: bytes | None,
    ) -> codec.Encoded:
        """:meth:`seal`, with the sealed payload's canonical DAG-CBOR encoding laid out
        by hand (its shape is fixed: ``{"enc": {"c": bytes, "e": link, "n": bytes}}``,
        keys in canonical order), so the entry need not walk and encode it again."""
        value = self.seal(payload, nonce=nonce, clock=clock, next=next, entry_nonce=entry_nonce)
        ciphertext = value[SEALED]["c"]
        data = b"".join(
            (
                _SEALED_MAP_HEAD,
                _cbor_head(2, len(ciphertext)),
                ciphertext,
                self._epoch_pair,
                _NONCE_PAIR_HEAD,
                nonce,
            )
        )
        return codec.Encoded(value, data)


@dataclass(frozen=True, slots=True, kw_only=True)
class SealedPayload:
    """A parsed sealed-data payload."""

    epoch: Cid
    nonce: bytes
    ciphertext: bytes


def parse_sealed(body: object) -> SealedPayload:
    if not isinstance(body, dict) or set(body) != {"c", "e", "n"}:
        raise InvalidEncryptedPayloadError("a sealed payload is {c, e, n}")
    epoch, nonce, ct = body["e"], body["n"], body["c"]
    if not isinstance(epoch, Cid) or epoch.codec != DAG_CBOR:
        raise InvalidEncryptedPayloadError("a sealed payload's epoch is an entry CID")
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
        raise InvalidEncryptedPayloadError("a sealed payload's nonce has 24 bytes")
    if not isinstance(ct, bytes) or len(ct) < 16:
        raise InvalidEncryptedPayloadError("a sealed payload's ciphertext is bytes with a tag")
    return SealedPayload(epoch=epoch, nonce=nonce, ciphertext=ct)


def open_payload(
    key: bytes,
    sealed: SealedPayload,
    *,
    db: Cid,
    writer: str,
    clock: int,
    next: Sequence[Cid],
    entry_nonce: bytes | None = None,
) -> Any:
    """The application payload of a sealed payload found in the entry these fields
    describe; DecryptionError if it does not open there."""
    bound = aad(
        db=db,
        epoch=sealed.epoch,
        writer=writer,
        clock=clock,
        next=next,
        kind="data",
        entry_nonce=entry_nonce,
    )
    plaintext = unseal(key, sealed.ciphertext, nonce=sealed.nonce, aad=bound)
    try:
        return codec.decode(plaintext)
    except DecodeError as exc:  # only a member holding the key could have sealed this
        raise InvalidEncryptedPayloadError("a sealed payload opens to invalid DAG-CBOR") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class EpochPayload:
    """A parsed key-epoch payload: the new key sealed to each member, and the earlier
    keys sealed under it (``prior``: nonce and ciphertext, or None)."""

    keys: Mapping[str, bytes]
    prior: tuple[bytes, bytes] | None


def epoch_payload(
    sealed_keys: Mapping[str, bytes], prior: tuple[bytes, bytes] | None
) -> dict[str, Any]:
    if not sealed_keys or len(sealed_keys) > MAX_MEMBERS:
        raise InvalidValueError(f"a key epoch has 1 to {MAX_MEMBERS} members")
    body: dict[str, Any] = {"keys": dict(sealed_keys), "prior": None}
    if prior is not None:
        body["prior"] = {"c": prior[1], "n": prior[0]}
    return {EPOCH: body}


def parse_epoch(body: object) -> EpochPayload:
    if not isinstance(body, dict) or set(body) != {"keys", "prior"}:
        raise InvalidEncryptedPayloadError("a key epoch is {keys, prior}")
    keys, prior = body["keys"], body["prior"]
    if not isinstance(keys, dict) or not 0 < len(keys) <= MAX_MEMBERS:
        raise InvalidEncryptedPayloadError(f"a key epoch seals its key to 1-{MAX_MEMBERS} members")
    for did, sealed in keys.items():
        public_key_from_did(did)
        if not isinstance(sealed, bytes) or len(sealed) != SEALED_KEY_BYTES:
            raise InvalidEncryptedPayloadError("a sealed epoch key has 80 bytes")
    if prior is None:
        return EpochPayload(keys=keys, prior=None)
    if not isinstance(prior, dict) or set(prior) != {"c", "n"}:
        raise InvalidEncryptedPayloadError("a key epoch's prior keys are {c, n}")
    nonce, ct = prior["n"], prior["c"]
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES or not isinstance(ct, bytes):
        raise InvalidEncryptedPayloadError("a key epoch's prior keys are sealed bytes")
    return EpochPayload(keys=keys, prior=(nonce, ct))


def seal_prior(
    key: bytes,
    prior: Mapping[Cid, bytes],
    *,
    nonce: bytes,
    db: Cid,
    writer: str,
    clock: int,
    next: Sequence[Cid],
    entry_nonce: bytes | None = None,
) -> tuple[bytes, bytes]:
    """``(nonce, ciphertext)`` of the earlier epoch keys, sealed under the new ``key``."""
    plaintext = codec.encode(
        [[cid, k] for cid, k in sorted(prior.items(), key=lambda i: bytes(i[0]))]
    )
    bound = aad(
        db=db,
        epoch=None,
        writer=writer,
        clock=clock,
        next=next,
        kind="prior",
        entry_nonce=entry_nonce,
    )
    return nonce, seal(key, plaintext, nonce=nonce, aad=bound)


def open_prior(
    key: bytes,
    prior: tuple[bytes, bytes],
    *,
    db: Cid,
    writer: str,
    clock: int,
    next: Sequence[Cid],
    entry_nonce: bytes | None = None,
) -> dict[Cid, bytes]:
    bound = aad(
        db=db,
        epoch=None,
        writer=writer,
        clock=clock,
        next=next,
        kind="prior",
        entry_nonce=entry_nonce,
    )
    plaintext = unseal(key, prior[1], nonce=prior[0], aad=bound)
    try:
        pairs = codec.decode(plaintext)
    except DecodeError as exc:
        raise InvalidEncryptedPayloadError("prior epoch keys open to invalid DAG-CBOR") from exc
    out: dict[Cid, bytes] = {}
    if not isinstance(pairs, list):
        raise InvalidEncryptedPayloadError("prior epoch keys are a list of [epoch, key]")
    for pair in pairs:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not isinstance(pair[0], Cid)
            or not isinstance(pair[1], bytes)
            or len(pair[1]) != KEY_BYTES
        ):
            raise InvalidEncryptedPayloadError("prior epoch keys are a list of [epoch, key]")
        out[pair[0]] = pair[1]
    return out


def classify(payload: object) -> str | None:
    """Which reserved shape ``payload`` has (``enc``, ``keys``, ``epoch``), else None."""
    if isinstance(payload, dict) and len(payload) == 1:
        (name,) = payload
        if name in RESERVED:
            return str(name)
    return None


__all__ = [
    "AEAD_NAME",
    "ANNOUNCE",
    "EPOCH",
    "KEY_BYTES",
    "META_KEY",
    "NONCE_BYTES",
    "SEALED",
    "DataSealer",
    "EncryptionSpec",
    "EpochPayload",
    "SealedPayload",
    "aad",
    "announcement",
    "classify",
    "epoch_payload",
    "exchange_keypair",
    "open_payload",
    "open_prior",
    "open_sealed_key",
    "parse_announcement",
    "parse_epoch",
    "parse_sealed",
    "seal",
    "seal_payload",
    "seal_prior",
    "strip_meta",
    "unseal",
]
