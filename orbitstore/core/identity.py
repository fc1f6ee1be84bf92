"""Ed25519 identities and their ``did:key`` names.

A writer *is* its public key: the writer id is ``did:key:z<base58btc(0xed 0x01 ‖ key)>``
(the W3C did:key method with the ed25519-pub multicodec), so the key that verifies an
entry is derived from the very field that names its writer. There is no separate
``identity`` block to bind, and so nothing to forge (OrbitDB's defect).

Signing and verification use libsodium through PyNaCl (measured: verify 64 µs vs 124 µs
with ``cryptography``; Ed25519 is deterministic so both give identical signatures, which
a test checks). Key generation needs randomness, which this pure module does not have:
callers pass a 32-byte seed (the keystore draws it from the OS).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

import nacl.bindings
import nacl.exceptions

from orbitstore.core.describe import describe as _describe
from orbitstore.errors import BadSignatureError, InvalidValueError, InvalidWriterError

DID_KEY_PREFIX: Final = "did:key:z"
_ED25519_MULTICODEC: Final = b"\xed\x01"
_B58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX: Final = {c: i for i, c in enumerate(_B58)}
SIGNATURE_LENGTH: Final = 64
SEED_LENGTH: Final = 32


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        i = _B58_INDEX.get(ch)
        if i is None:
            raise ValueError(f"invalid base58 character {ch!r}")
        n = n * 58 + i
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


def did_from_public_key(public_key: bytes) -> str:
    if len(public_key) != 32:
        raise InvalidValueError("an Ed25519 public key has 32 bytes")
    return DID_KEY_PREFIX + b58encode(_ED25519_MULTICODEC + public_key)


@lru_cache(maxsize=4096)
def public_key_from_did(did: str) -> bytes:
    """The 32-byte Ed25519 key a ``did:key`` names, or InvalidWriterError."""
    if not isinstance(did, str) or not did.startswith(DID_KEY_PREFIX) or len(did) > 64:
        raise InvalidWriterError(f"writer is not an Ed25519 did:key: {_describe(did)}")
    try:
        raw = b58decode(did[len(DID_KEY_PREFIX) :])
    except ValueError as exc:
        raise InvalidWriterError(f"writer is not valid base58btc: {_describe(did)}") from exc
    if len(raw) != 34 or raw[:2] != _ED25519_MULTICODEC or did_from_public_key(raw[2:]) != did:
        raise InvalidWriterError(f"writer is not an Ed25519 did:key: {_describe(did)}")
    return raw[2:]


def verify(did: str, signature: bytes, message: bytes) -> None:
    """Check ``signature`` over ``message`` under the key ``did`` names, or raise."""
    public_key = signature_key(did, signature)
    if not signature_valid(public_key, signature, message):
        raise bad_signature(did)


def signature_key(did: str, signature: bytes) -> bytes:
    """The public key to check ``signature`` with: every check of :func:`verify` but the
    Ed25519 equation itself (InvalidWriterError, or BadSignatureError for a signature
    that is not 64 bytes)."""
    public_key = public_key_from_did(did)
    if len(signature) != SIGNATURE_LENGTH:
        raise BadSignatureError("an Ed25519 signature has 64 bytes")
    return public_key


def signature_valid(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` (64 bytes) signs ``message`` under ``public_key`` (32 bytes).

    libsodium's ``crypto_sign_open``: the one Ed25519 rule every node applies (the
    verification worker, node/verify_worker.py, calls the same function)."""
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


def bad_signature(did: str) -> BadSignatureError:
    """The error for a signature that does not verify under ``did``'s key."""
    return BadSignatureError(f"signature does not verify under the writer's key ({did[:24]}...)")


class Identity:
    """An Ed25519 key pair. ``id`` is the public ``did:key``; ``sign`` signs bytes."""

    __slots__ = ("_secret", "id", "public_key")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != SEED_LENGTH:
            raise InvalidValueError("an Ed25519 seed has 32 bytes")
        public_key, secret = nacl.bindings.crypto_sign_seed_keypair(seed)
        self._secret: bytes = secret
        self.public_key: bytes = public_key
        self.id: str = did_from_public_key(public_key)

    @property
    def seed(self) -> bytes:
        return self._secret[:32]

    def sign(self, message: bytes) -> bytes:
        signed: bytes = nacl.bindings.crypto_sign(message, self._secret)
        return signed[:SIGNATURE_LENGTH]

    def __repr__(self) -> str:
        return f"Identity({self.id!r})"
