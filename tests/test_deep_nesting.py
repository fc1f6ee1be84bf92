"""Values nested thousands deep, in any part of any block, give typed errors.

cbrrr decodes any depth iteratively, so a 4 KB block can hold a list nested 4,000 deep.
Every decoder bounds nesting for the whole value it decodes (``codec.MAX_DEPTH``), and no
error message formats an untrusted value with ``repr`` (which recurses): they describe it
with ``codec.describe``.
"""

from __future__ import annotations

import random
from typing import Any

import cbrrr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orbitstore.core import codec
from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.describe import describe as plain_describe
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.errors import DecodeError, InvalidDataError, ProtocolError, QueryError
from orbitstore.query.filters import compile_where
from orbitstore.sync.frames import FrameDecoder, encode_varint
from orbitstore.testing.strategies import values

ALICE = Identity(bytes([7]) * 32)
DB = Manifest(name="deep", type="log", access=StaticAccess.of([ALICE.id])).to_block()[0]
PARENT = Cid.for_block(b"deep parent")
DEEP = 3000
FIELDS = ["v", "db", "ts", "sig", "next", "refs", "clock", "writer", "payload", "zz"]


def deep(depth: int, leaf: Any = 0, *, maps: int = 0) -> Any:
    """``leaf`` inside ``depth`` lists or maps (bit i of ``maps`` set: level i is a map)."""
    value = leaf
    for i in range(depth):
        value = {"k": value} if maps >> (i % 64) & 1 else [value]
    return value


def raw_encode(value: Any) -> bytes:
    """Encode without our depth check, as a hostile peer would."""
    return bytes(cbrrr.encode_dag_cbor(value, cid_type=Cid))


def entry_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "v": 1,
        "db": DB,
        "ts": 5,
        "next": [PARENT],
        "clock": 2,
        "writer": ALICE.id,
        "payload": {"ok": True},
    }
    fields.update(changes)
    return fields


def signed_block(fields: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in fields.items() if k != "sig"}
    if "sig" not in fields:
        fields = {**fields, "sig": ALICE.sign(raw_encode(unsigned))}
    return raw_encode(fields)


def from_block(block: bytes) -> Entry:
    return Entry.from_block(Cid.for_block(block), block)


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("kind", ["lists", "maps"])
def test_deep_value_in_any_entry_field_is_a_decode_error(field: str, kind: str) -> None:
    value = deep(DEEP, maps=0 if kind == "lists" else -1)
    block = signed_block(entry_fields(**{field: value}))
    with pytest.raises(DecodeError) as info:
        from_block(block)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("field", [f for f in FIELDS if f != "payload"])
def test_non_payload_fields_just_inside_the_limit_get_typed_errors(field: str) -> None:
    # The whole entry may nest MAX_DEPTH + 1 levels (its payload MAX_DEPTH inside the
    # map); a field that deep is within the limit, so it fails the field's own checks.
    block = signed_block(entry_fields(**{field: deep(codec.MAX_DEPTH)}))
    with pytest.raises(InvalidDataError) as info:
        from_block(block)
    assert not isinstance(info.value, DecodeError)
    assert len(str(info.value)) < 200
    block = signed_block(entry_fields(**{field: deep(codec.MAX_DEPTH + 1)}))
    with pytest.raises(DecodeError):
        from_block(block)


def test_version_is_described_not_repred() -> None:
    huge = list(range(100_000))
    with pytest.raises(InvalidDataError, match=r"list of 100000 items"):
        from_block(signed_block(entry_fields(v=huge)))


@st.composite
def nested(draw: st.DrawFn) -> Any:
    depth = draw(
        st.one_of(
            st.integers(0, 4),
            st.sampled_from([codec.MAX_DEPTH - 1, codec.MAX_DEPTH, codec.MAX_DEPTH + 1]),
            st.integers(0, DEEP),
        )
    )
    return deep(depth, draw(values(max_leaves=3)), maps=draw(st.integers(0, 2**64 - 1)))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(FIELDS), nested(), st.booleans())
def test_arbitrary_nesting_in_any_field_gives_an_entry_or_a_typed_error(
    field: str, value: Any, resign: bool
) -> None:
    fields = entry_fields(**{field: value})
    if not resign:
        fields.setdefault("sig", b"\x00" * 64)
    block = signed_block(fields)
    try:
        entry = from_block(block)
    except InvalidDataError as exc:
        assert len(str(exc)) < 300
        return
    assert entry.block == block  # only a value that is valid for its field gets here


# --- frames and manifests --------------------------------------------------------------

FRAME_BODIES: dict[str, dict[str, Any]] = {
    "hello": {"t": "hello", "v": 1, "db": DB, "heads": [], "have": []},
    "entries": {"t": "entries", "blocks": []},
    "want": {"t": "want", "cids": []},
    "error": {"t": "error", "code": "x", "message": ""},
    "get_manifest": {"t": "get_manifest", "v": 1, "db": DB},
    "manifest": {"t": "manifest", "db": DB, "block": b""},
    "not_found": {"t": "not_found", "db": DB},
}


@pytest.mark.parametrize(
    ("kind", "key"),
    [(kind, key) for kind, body in FRAME_BODIES.items() for key in [*body, "extra"]],
)
def test_deep_value_in_any_frame_key_is_a_protocol_error(kind: str, key: str) -> None:
    body = raw_encode({**FRAME_BODIES[kind], key: deep(DEEP)})
    with pytest.raises(ProtocolError) as info:
        FrameDecoder().feed(encode_varint(len(body)) + body)
    assert len(str(info.value)) < 300


def test_deep_entry_block_inside_an_entries_frame() -> None:
    block = signed_block(entry_fields(payload=deep(DEEP)))
    body = raw_encode({"t": "entries", "blocks": [[Cid.for_block(block), block]]})
    (message,) = FrameDecoder().feed(encode_varint(len(body)) + body)
    ((cid, got),) = message.blocks  # type: ignore[union-attr]
    with pytest.raises(DecodeError):
        Entry.from_block(cid, got)


def test_unknown_frame_type_is_described() -> None:
    body = raw_encode({"t": "x" * 10_000})
    with pytest.raises(ProtocolError, match=r"str of 10000 chars") as info:
        FrameDecoder().feed(encode_varint(len(body)) + body)
    assert len(str(info.value)) < 200


MANIFEST = {"name": "m", "type": "log", "access": {"type": "static", "write": []}, "meta": {}}


@pytest.mark.parametrize("key", [*MANIFEST, "extra"])
def test_deep_value_in_any_manifest_key_is_a_decode_error(key: str) -> None:
    block = raw_encode({**MANIFEST, key: deep(DEEP)})
    with pytest.raises(DecodeError):
        Manifest.from_block(Cid.for_block(block), block)


@pytest.mark.parametrize("key", ["name", "type", "access"])
@pytest.mark.parametrize("value", [deep(codec.MAX_DEPTH - 1), list(range(10_000)), "t" * 9000])
def test_bad_manifest_values_are_described(key: str, value: Any) -> None:
    block = raw_encode({**MANIFEST, key: value})
    with pytest.raises(InvalidDataError) as info:
        Manifest.from_block(Cid.for_block(block), block)
    assert len(str(info.value)) < 300


# --- describe -------------------------------------------------------------------------


class _Hostile:
    def __repr__(self) -> str:  # pragma: no cover - must never run
        raise AssertionError("describe ran the value's __repr__")

    __str__ = __repr__


class _HostileStr(str):
    def __repr__(self) -> str:  # pragma: no cover - must never run
        raise AssertionError("describe ran the value's __repr__")


DESCRIBED = [
    (None, "None"),
    (True, "True"),
    (7, "int 7"),
    (2**70, "int of 71 bits"),
    (10**5000, "int of 16610 bits"),
    (1.5, "float 1.5"),
    ("abc", "str 'abc'"),
    ("x" * 50, "str of 50 chars '" + "x" * 40 + "'…"),
    (b"\x00\xff", "bytes of 2 bytes 00ff"),
    (bytes(40), "bytes of 40 bytes " + "00" * 16 + "…"),
    ([1, 2, 3], "list of 3 items"),
    ((1,), "tuple of 1 items"),
    ({"a": 1}, "map of 1 keys"),
    (deep(100_000), "list of 1 items"),
    (PARENT, f"link {PARENT}"),
    (_Hostile(), "a _Hostile object"),
    (_HostileStr("x"), "a _HostileStr object"),
]


@pytest.mark.parametrize(("value", "expected"), DESCRIBED, ids=[e for _, e in DESCRIBED])
def test_describe(value: Any, expected: str) -> None:
    assert codec.describe(value) == expected
    assert len(codec.describe(value)) <= 100
    if not isinstance(value, Cid):
        assert plain_describe(value) == expected


def test_describe_is_short_for_strings_that_repr_escapes() -> None:
    # Found by the property below: 14 characters, 101 characters of repr.
    text = "000000000\x1f\x1f\x1f\x1f\x1f\x1f\x1f\x1f\x08\U00018cd6\U00018d09\U00018d09\U0002ebe1"
    for value in (text, "\U0002ebe1" * 40, "\x00" * 41, "\U0002ebe1" * 5000):
        assert len(codec.describe(value)) <= 100 and len(plain_describe(value)) <= 100


@settings(max_examples=100)
@given(values(max_leaves=5), st.randoms(use_true_random=False))
def test_describe_is_short_for_any_value(value: Any, rnd: random.Random) -> None:
    assert len(codec.describe(deep(rnd.randrange(0, 3), value))) <= 100


@pytest.mark.parametrize(
    "spec",
    [
        {"a": {"$eq": deep(DEEP)}},
        {"a": {"$gt": deep(DEEP)}},
        deep(DEEP),
        {"$and": [deep(DEEP)]},
        {"a": {(0,) * 5000: 1}},
    ],
)
def test_query_filters_describe_bad_values(spec: Any) -> None:
    with pytest.raises(QueryError) as info:
        compile_where(spec)
    assert len(str(info.value)) < 300
