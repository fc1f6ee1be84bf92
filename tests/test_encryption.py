"""Sealed payloads, key announcements and key epochs (orbitstore.core.encryption)."""

from __future__ import annotations

import os
from typing import Any

import nacl.bindings
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core import codec
from orbitstore.core import encryption as enc
from orbitstore.core.cid import Cid
from orbitstore.core.identity import Identity
from orbitstore.errors import (
    BadSignatureError,
    DecryptionError,
    InvalidDataError,
    InvalidEncryptedPayloadError,
    InvalidValueError,
)
from orbitstore.testing.strategies import payloads

ALICE, BOB = Identity(bytes([1]) * 32), Identity(bytes([2]) * 32)
DB = Cid.for_block(codec.encode({"name": "db"}))
EPOCH = Cid.for_block(codec.encode({"epoch": 1}))
OTHER = Cid.for_block(codec.encode({"epoch": 2}))
KEY = bytes(range(32))
NEXT = [Cid.for_block(codec.encode({"parent": 1}))]


_DEFAULT: Any = {"x": 1}


def sealed(payload: Any = _DEFAULT, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "nonce": os.urandom(24),
        "db": DB,
        "epoch": EPOCH,
        "writer": ALICE.id,
        "clock": 2,
        "next": NEXT,
    }
    fields.update(overrides)
    return enc.seal_payload(KEY, payload, **fields)


def open_(body: dict[str, Any], key: bytes = KEY, **overrides: Any) -> Any:
    fields: dict[str, Any] = {"db": DB, "writer": ALICE.id, "clock": 2, "next": NEXT}
    fields.update(overrides)
    return enc.open_payload(key, enc.parse_sealed(body[enc.SEALED]), **fields)


@given(payloads())
def test_seal_open_round_trip(payload: Any) -> None:
    assert open_(sealed(payload)) == payload


@given(st.binary(max_size=64), st.binary(min_size=24, max_size=24), st.binary(max_size=80))
def test_raw_aead_round_trip_and_wrong_key(plaintext: bytes, nonce: bytes, ad: bytes) -> None:
    ct = enc.seal(KEY, plaintext, nonce=nonce, aad=ad)
    # the direct libsodium calls agree with PyNaCl's public wrapper, both ways
    assert ct == nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, nonce, KEY)
    assert enc.unseal(KEY, ct, nonce=nonce, aad=ad) == plaintext
    assert nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(ct, ad, nonce, KEY) == plaintext
    with pytest.raises(DecryptionError):
        enc.unseal(KEY, ct, nonce=nonce, aad=ad + b"x")
    with pytest.raises(DecryptionError):
        enc.unseal(KEY, ct[:15], nonce=nonce, aad=ad)
    with pytest.raises(DecryptionError):
        enc.unseal(bytes(32), ct, nonce=nonce, aad=ad)


def test_nonces_never_repeat_across_a_million_encryptions() -> None:
    # The node's nonce source (os.urandom, 192 bits) as the database handle uses it; each
    # nonce seals the same tiny plaintext. 1e6 draws collide with probability ~2^-153.
    plaintext, aad = b"\x00", b""
    seen: set[bytes] = set()
    encrypt = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt
    for _ in range(1_000_000):
        nonce = os.urandom(24)
        seen.add(nonce)
        if len(seen) % 100_000 == 0:  # spot-check that each is really used to seal
            assert enc.seal(KEY, plaintext, nonce=nonce, aad=aad) == encrypt(
                plaintext, aad, nonce, KEY
            )
    assert len(seen) == 1_000_000


def test_sealing_the_same_plaintext_twice_gives_different_ciphertexts() -> None:
    a, b = sealed({"x": 1}), sealed({"x": 1})
    assert a[enc.SEALED]["c"] != b[enc.SEALED]["c"]
    assert a[enc.SEALED]["n"] != b[enc.SEALED]["n"]


def test_every_flipped_byte_of_the_ciphertext_or_nonce_is_detected() -> None:
    body = sealed({"text": "secret"})
    for field in ("c", "n"):
        raw = body[enc.SEALED][field]
        for i in range(len(raw)):
            changed = bytearray(raw)
            changed[i] ^= 0x01
            bad = {enc.SEALED: {**body[enc.SEALED], field: bytes(changed)}}
            with pytest.raises(DecryptionError) as info:
                open_(bad)
            assert info.value.code == "decryption_failed"


@pytest.mark.parametrize(
    "change",
    [
        {"db": OTHER},
        {"writer": BOB.id},
        {"clock": 3},
        {"next": []},
        {"next": [*NEXT, EPOCH]},
        {"entry_nonce": bytes(16)},  # a twin entry of the same writer on another device
    ],
)
def test_a_ciphertext_moved_to_another_entry_does_not_open(change: dict[str, Any]) -> None:
    with pytest.raises(DecryptionError):
        open_(sealed(), **change)


def test_a_ciphertext_relabelled_with_another_epoch_does_not_open() -> None:
    body = sealed()
    moved = {enc.SEALED: {**body[enc.SEALED], "e": OTHER}}
    with pytest.raises(DecryptionError):
        open_(moved)


def test_wrong_key_is_a_typed_error_not_garbage() -> None:
    with pytest.raises(DecryptionError):
        open_(sealed(), key=bytes(32))


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        {"c": b"x" * 20, "e": EPOCH},
        {"c": b"x" * 20, "e": EPOCH, "n": b"short"},
        {"c": b"x" * 20, "e": "not a cid", "n": bytes(24)},
        {"c": b"x", "e": EPOCH, "n": bytes(24)},
        {"c": b"x" * 20, "e": EPOCH, "n": bytes(24), "extra": 1},
    ],
)
def test_malformed_sealed_payloads_are_typed_errors(body: object) -> None:
    with pytest.raises(InvalidEncryptedPayloadError):
        enc.parse_sealed(body)


def test_exchange_key_is_derived_not_the_signing_key() -> None:
    public, secret = enc.exchange_keypair(ALICE)
    assert public != ALICE.public_key and secret != ALICE.seed
    assert nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(ALICE.public_key) != public
    assert enc.exchange_keypair(Identity(ALICE.seed)) == (public, secret)  # deterministic
    assert enc.exchange_keypair(BOB)[0] != public


def test_sealed_key_opens_for_its_member_only_and_any_flipped_byte_is_detected() -> None:
    public, secret = enc.exchange_keypair(BOB)
    box = nacl.bindings.crypto_box_seal(KEY, public)
    assert enc.open_sealed_key(box, public, secret) == KEY
    other_public, other_secret = enc.exchange_keypair(ALICE)
    with pytest.raises(DecryptionError):
        enc.open_sealed_key(box, other_public, other_secret)
    for i in range(len(box)):
        changed = bytearray(box)
        changed[i] ^= 0x80
        with pytest.raises(DecryptionError) as info:
            enc.open_sealed_key(bytes(changed), public, secret)
        assert info.value.details["kind"] == "key"


def test_announcement_is_self_signed_and_bound_to_the_database() -> None:
    payload = enc.announcement(BOB, DB)
    member, public = enc.parse_announcement(DB, payload[enc.ANNOUNCE])
    assert member == BOB.id and public == enc.exchange_keypair(BOB)[0]
    with pytest.raises(BadSignatureError):  # replayed into another database
        enc.parse_announcement(OTHER, payload[enc.ANNOUNCE])
    forged = {**payload[enc.ANNOUNCE], "x25519": enc.exchange_keypair(ALICE)[0]}
    with pytest.raises(BadSignatureError):  # someone else's key under BOB's name
        enc.parse_announcement(DB, forged)
    with pytest.raises(InvalidDataError):
        enc.parse_announcement(DB, {"member": BOB.id})


def test_prior_keys_round_trip_and_are_bound() -> None:
    prior = {EPOCH: KEY, OTHER: bytes(32)}
    fields: dict[str, Any] = {"db": DB, "writer": ALICE.id, "clock": 5, "next": NEXT}
    boxed = enc.seal_prior(bytes([9]) * 32, prior, nonce=os.urandom(24), **fields)
    assert enc.open_prior(bytes([9]) * 32, boxed, **fields) == prior
    with pytest.raises(DecryptionError):
        enc.open_prior(bytes([9]) * 32, boxed, **{**fields, "clock": 6})
    payload = enc.epoch_payload({BOB.id: bytes(80)}, boxed)
    parsed = enc.parse_epoch(payload[enc.EPOCH])
    assert parsed.prior == boxed and dict(parsed.keys) == {BOB.id: bytes(80)}


@pytest.mark.parametrize(
    "body",
    [
        {"keys": {}, "prior": None},
        {"keys": {"not a did": bytes(80)}, "prior": None},
        {"keys": {ALICE.id: bytes(79)}, "prior": None},
        {"keys": {ALICE.id: bytes(80)}, "prior": {"c": b"", "n": b""}},
        {"keys": {ALICE.id: bytes(80)}},
    ],
)
def test_malformed_epochs_are_typed_errors(body: object) -> None:
    with pytest.raises(InvalidDataError):
        enc.parse_epoch(body)


def test_spec_from_meta() -> None:
    spec = enc.EncryptionSpec(owner=ALICE.id)
    assert enc.EncryptionSpec.from_meta({enc.META_KEY: spec.to_meta()}) == spec
    assert enc.EncryptionSpec.from_meta({}) is None
    with pytest.raises(InvalidValueError):
        enc.EncryptionSpec.from_meta({enc.META_KEY: {**spec.to_meta(), "aead": "rot13"}})
    with pytest.raises(InvalidValueError):
        enc.EncryptionSpec.from_meta({enc.META_KEY: {"owner": ALICE.id}})
