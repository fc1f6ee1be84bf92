"""Canonical DAG-CBOR and CIDs, held to the reference ``dag-cbor`` package byte for byte."""

from __future__ import annotations

import base64
from typing import Any

import dag_cbor
import multiformats
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.identity import Identity, verify
from orbitstore.errors import DecodeError, InvalidCidError, InvalidValueError
from orbitstore.testing.strategies import cids, strict_equal, values


def to_reference(value: Any) -> Any:
    """Our data model -> dag_cbor's (links become ``multiformats.CID``)."""
    if isinstance(value, Cid):
        return multiformats.CID.decode(bytes(value))
    if isinstance(value, list):
        return [to_reference(v) for v in value]
    if isinstance(value, dict):
        return {k: to_reference(v) for k, v in value.items()}
    return value


def from_reference(value: Any) -> Any:
    if isinstance(value, multiformats.CID):
        return Cid(bytes(value))
    if isinstance(value, list):
        return [from_reference(v) for v in value]
    if isinstance(value, dict):
        return {k: from_reference(v) for k, v in value.items()}
    return value


@given(values())
def test_encode_matches_reference_byte_for_byte(value: Any) -> None:
    assert codec.encode(value) == dag_cbor.encode(to_reference(value))


@given(values())
def test_decode_inverts_encode(value: Any) -> None:
    assert strict_equal(codec.decode(codec.encode(value)), value)


@given(values())
def test_decode_reads_reference_encoding(value: Any) -> None:
    data = dag_cbor.encode(to_reference(value))
    assert strict_equal(codec.decode(data), value)
    assert strict_equal(from_reference(dag_cbor.decode(codec.encode(value))), value)


def test_known_vector() -> None:
    cid = Cid.for_block(b"x")
    value = {"a": [1, -(2**64), 2**64 - 1, 1.5, b"x", "\u00e9", None, True, cid]}
    expected = (
        "a1616189013bffffffffffffffff1bfffffffffffffffffb3ff8000000000000417862c3a9f6f5"
        "d82a582500017112202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    )
    assert codec.encode(value).hex() == expected


@pytest.mark.parametrize(
    "value",
    [
        2**64,
        -(2**64) - 1,
        float("nan"),
        float("inf"),
        -float("inf"),
        {1: "non-string key"},
        {b"k": 1},
        (1, 2),
        {1, 2},
        object(),
        multiformats.CID.decode(bytes(Cid.for_block(b""))),
    ],
    ids=repr,
)
def test_encode_rejects_values_outside_the_data_model(value: Any) -> None:
    with pytest.raises(InvalidValueError):
        codec.encode(value)


def test_encode_rejects_cycles() -> None:
    # cbrrr alone grows its output buffer until the process runs out of memory.
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(InvalidValueError):
        codec.encode(cyclic)
    loop: dict[str, Any] = {"a": [1, {}]}
    loop["a"][1]["back"] = loop
    with pytest.raises(InvalidValueError):
        codec.encode({"x": loop})


def _nested(depth: int) -> Any:
    value: Any = 0
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def test_nesting_limit_is_the_same_both_ways() -> None:
    deepest = codec.encode(_nested(codec.MAX_DEPTH))
    assert codec.decode(deepest) == _nested(codec.MAX_DEPTH)
    with pytest.raises(InvalidValueError):
        codec.encode(_nested(codec.MAX_DEPTH + 1))
    too_deep = dag_cbor.encode(_nested(codec.MAX_DEPTH + 1))
    with pytest.raises(DecodeError):
        codec.decode(too_deep)


_CID_BODY = bytes(Cid.for_block(b"x"))

NON_CANONICAL = {
    "unsorted keys": "a2616201616102",
    "length-first key order broken": "a262616101616202",
    "duplicate keys": "a2616101616102",
    "non-minimal int 8-bit": "1801",
    "non-minimal int 16-bit": "190001",
    "non-minimal int 32-bit": "1a00000001",
    "non-minimal int 64-bit": "1b0000000000000001",
    "non-minimal negative int": "3800",
    "non-minimal string length": "780161",
    "non-minimal list length": "9800",
    "indefinite list": "9f01ff",
    "indefinite map": "bf616101ff",
    "indefinite text": "7f616161ff",
    "indefinite bytes": "5f4100ff",
    "tag 1 (date)": "c11a00000000",
    "tag 2 (bignum)": "c24101",
    "tag 43": "d82b4100",
    "float16": "f93c00",
    "float32": "fa3f800000",
    "NaN": "fb7ff8000000000000",
    "infinity": "fb7ff0000000000000",
    "negative infinity": "fbfff0000000000000",
    "undefined": "f7",
    "simple value 16": "f0",
    "simple value 32": "f820",
    "integer key": "a10101",
    "bytes key": "a1410001",
    "invalid UTF-8 text": "62c328",
    "invalid UTF-8 key": "a161ff01",
    "trailing bytes": "0100",
    "empty input": "",
    "truncated text": "6261",
    "truncated map": "a16161",
    "CID: empty": "d82a4100",
    "CID: no bytes at all": "d82a40",
    "CID: tag on text": "d82a6161",
    "CID: missing 0x00 multibase prefix": "d82a5824" + _CID_BODY.hex(),
    "CID: truncated digest": "d82a5824" + "00" + _CID_BODY[:-1].hex(),
    "CID: truncated CIDv0": "d82a5822" + "00" + _CID_BODY[2:-1].hex(),
    "CID: sha2-512 with a short digest": "d82a5844" + "0001711340" + "ab" * 63,
    "CID: version 2": "d82a5825" + "00027112" + _CID_BODY[3:].hex(),
    "CID: non-minimal codec varint": "d82a5826" + "0001f10012" + _CID_BODY[3:].hex(),
    "CID: truncated body": "d82a5825000171",
}


@pytest.mark.parametrize("hex_data", NON_CANONICAL.values(), ids=NON_CANONICAL.keys())
def test_decode_rejects_non_canonical(hex_data: str) -> None:
    with pytest.raises(DecodeError):
        codec.decode(bytes.fromhex(hex_data))


def test_decode_rejects_deep_nesting() -> None:
    with pytest.raises(DecodeError):
        codec.decode(b"\x81" * 100_000 + b"\x00")


@given(st.binary(max_size=200))
def test_decode_arbitrary_bytes_raises_only_decode_error(data: bytes) -> None:
    try:
        value = codec.decode(data)
    except DecodeError:
        return
    assert codec.encode(value) == data  # whatever decodes is canonical


# -- CIDs -------------------------------------------------------------------------------


@given(cids())
def test_cid_text_round_trip(cid: Cid) -> None:
    text = str(cid)
    assert text.startswith("b")
    assert Cid.parse(text) == cid
    assert str(Cid.parse(text)) == text
    assert text == multiformats.CID.decode(bytes(cid)).encode("base32")


def _b32(raw: bytes) -> str:
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


BAD_CID_STRINGS = {
    "empty": "",
    "prefix only": "b",
    "upper-case multibase": str(Cid.for_block(b"")).upper(),
    "mixed case": "bafyREI" + str(Cid.for_block(b""))[7:],
    "base58btc": multiformats.CID.decode(bytes(Cid.for_block(b""))).encode("base58btc"),
    "CIDv0 written in base32": _b32(bytes.fromhex("1220") + bytes(32)),
    "CIDv0 of the wrong length": "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbd",
    "not base32": "bafy!!!",
    "digit 1 is not base32": "b1" + str(Cid.for_block(b""))[2:],
    "truncated": str(Cid.for_block(b""))[:-4],
    "non-canonical padding bits": str(Cid.for_block(b""))[:-1] + "r",
    "sha2-512 with a short digest": _b32(b"\x01\x71\x13\x40" + bytes(63)),
    "CID version 2": _b32(b"\x02\x71\x12\x20" + bytes(32)),
    "too long": _b32(bytes(Cid.for_block(b"")) + b"\x00"),
    "non-ASCII": "b\u00e9\u00e9\u00e9",
}


@pytest.mark.parametrize("text", BAD_CID_STRINGS.values(), ids=BAD_CID_STRINGS.keys())
def test_bad_cid_strings(text: str) -> None:
    with pytest.raises(InvalidCidError):
        Cid.parse(text)


@pytest.mark.parametrize("raw", [b"", bytes(36), bytes(Cid.for_block(b""))[:-1]], ids=repr)
def test_bad_cid_bytes(raw: bytes) -> None:
    with pytest.raises(InvalidCidError):
        Cid(raw)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(InvalidCidError):
        Cid.parse(bytes(Cid.for_block(b"")))  # type: ignore[arg-type]


@given(st.lists(cids(), min_size=2, max_size=10))
def test_cids_order_by_their_bytes(items: list[Cid]) -> None:
    assert [bytes(c) for c in sorted(items)] == sorted(bytes(c) for c in items)
    a, b = items[0], items[1]
    assert (a < b) == (bytes(a) < bytes(b))
    assert (a <= b) == (bytes(a) <= bytes(b))
    assert (a > b) == (bytes(a) > bytes(b))
    assert (a >= b) == (bytes(a) >= bytes(b))
    assert (a == b) == (hash(a) == hash(b) and bytes(a) == bytes(b))


def test_cid_for_block_and_immutability() -> None:
    cid = Cid.for_block(b"hello")
    assert cid.codec == 0x71
    assert Cid.for_block(b"hello", 0x55).digest == cid.digest
    assert Cid.for_block(b"hello", 0x55) != cid
    with pytest.raises(AttributeError):
        cid.foo = 1  # type: ignore[attr-defined]
    with pytest.raises(InvalidCidError):
        Cid.for_block(b"hello", 0x0129)


# -- Ed25519: the PyNaCl hot path agrees with `cryptography` --------------------------------


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300))
def test_identity_signatures_match_cryptography(seed: bytes, message: bytes) -> None:
    ours = Identity(seed)
    reference = Ed25519PrivateKey.from_private_bytes(seed)
    public = reference.public_key()
    assert public.public_bytes_raw() == ours.public_key
    signature = ours.sign(message)
    assert signature == reference.sign(message)
    public.verify(signature, message)  # raises if it does not verify
    verify(ours.id, reference.sign(message), message)
    Ed25519PublicKey.from_public_bytes(ours.public_key).verify(signature, message)


@given(values())
def test_the_shallow_fast_path_agrees_with_the_depth_walk(value: Any) -> None:
    """check_depth skips its walk for two-level values (Cids are leaves): such a value
    is always within MAX_DEPTH, and the walk would have said so."""
    if codec.is_shallow(value):
        assert codec._within_depth(value, codec.MAX_DEPTH)
    codec.check_depth(value)  # generated values are within the limit either way


def test_a_shallow_looking_value_with_a_subclass_or_a_cycle_is_still_walked() -> None:
    class Sub(dict):  # type: ignore[type-arg]
        pass

    cyclic: list[Any] = []
    cyclic.append(cyclic)
    assert not codec.is_shallow([Sub()]) and not codec.is_shallow(cyclic)
    with pytest.raises(InvalidValueError, match="deeper"):
        codec.check_depth(cyclic)
    link = Cid.parse("bafyreieozoobevsb5s26uxwcbbtgnhyckjoy4cf3q6pvdbyqxmqpuzgiw4")
    assert codec.is_shallow({"sealed": {"e": link, "n": b"\x00" * 24}})
