"""Decoder fuzz invariant: any bytes either make an Entry or raise InvalidDataError.

In the spirit of h11's AFL harness: whatever a peer sends, ``Entry.from_block`` never
raises anything but our typed error (no KeyError, TypeError, RecursionError...).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.errors import InvalidDataError
from orbitstore.testing.strategies import cids, payloads, values

WRITER = Identity(bytes(range(32)))
DB = Cid.for_block(b"fuzz manifest")
PARENT = Cid.for_block(b"fuzz parent")
SEED_ENTRIES = [
    Entry.create(WRITER, db=DB, clock=1, next=[], payload={"k": "v", "n": [1, 2.5, None]}),
    Entry.create(WRITER, db=DB, clock=2, next=[PARENT], payload=b"\x00" * 40, ts=1234),
    Entry.create(WRITER, db=DB, clock=5, next=[PARENT], refs=[DB], payload=[True, DB]),
    Entry.create(WRITER, db=DB, clock=2, next=[PARENT], payload=None, nonce=bytes(range(16))),
]


def parse(data: bytes) -> Entry | None:
    """The invariant itself."""
    try:
        entry = Entry.from_block(Cid.for_block(data), data)
    except InvalidDataError:
        return None
    assert entry.block == data
    assert codec.encode(codec.decode(data)) == data
    return entry


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_arbitrary_bytes(data: bytes) -> None:
    parse(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEED_ENTRIES)).block)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[i] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete" and data:
            del data[i : i + draw(st.integers(1, 4))]
        elif kind == "truncate":
            del data[i:]
    return bytes(data)


@settings(max_examples=500)
@given(mutated())
def test_mutated_entry_blocks(data: bytes) -> None:
    entry = parse(data)
    if entry is not None:  # a mutation that still verifies cannot have changed the bytes
        assert data in {e.block for e in SEED_ENTRIES}


_SMALL = values(max_leaves=3)
# Each field: its valid shape or any value at all.
_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "v": st.one_of(st.just(1), _SMALL),
    "db": st.one_of(st.just(DB), cids(), _SMALL),
    "next": st.one_of(st.lists(cids(), max_size=3), _SMALL),
    "refs": st.one_of(st.lists(cids(), max_size=3), _SMALL),
    "clock": st.one_of(st.integers(-3, 2**60), _SMALL),
    "writer": st.one_of(st.just(WRITER.id), st.text(max_size=70), _SMALL),
    "sig": st.one_of(st.binary(min_size=64, max_size=64), _SMALL),
    "ts": st.one_of(st.integers(-3, 2**60), _SMALL),
    "n": st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20), _SMALL),
    "payload": payloads(),
    "extra": _SMALL,
}


@st.composite
def entry_like_maps(draw: st.DrawFn) -> dict[str, Any]:
    """Maps shaped almost like entries, with fields of arbitrary type."""
    names = draw(st.sets(st.sampled_from(sorted(_FIELD_VALUES)), min_size=1))
    return {name: draw(_FIELD_VALUES[name]) for name in sorted(names)}


@settings(max_examples=200)
@given(entry_like_maps(), st.booleans())
def test_entry_shaped_maps(fields: dict[str, Any], resign: bool) -> None:
    if resign and "sig" in fields:
        unsigned = {k: v for k, v in fields.items() if k != "sig"}
        fields["sig"] = WRITER.sign(codec.encode(unsigned))
    parse(codec.encode(fields))
