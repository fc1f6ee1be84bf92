"""Announcements: the frozen value, its codec, and the decoder's promise (it returns a
fully verified announcement or raises ProtocolError, nothing else)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core import codec
from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.errors import InvalidValueError, ProtocolError
from orbitstore.sync.announce import Announcement, decode_announcement, encode_announcement
from orbitstore.sync.frames import FrameLimits

WRITER = Identity(b"\x07" * 32)
DB, _ = Manifest(name="a", type="log", access=StaticAccess.of(["*"]), meta={}).to_block()
OTHER, _ = Manifest(name="b", type="log", access=StaticAccess.of(["*"]), meta={}).to_block()


def chain(n: int, db: Cid = DB) -> list[Entry]:
    out: list[Entry] = []
    for i in range(n):
        parents = [out[-1].cid] if out else []
        out.append(Entry.create(WRITER, db=db, clock=i + 1, next=parents, payload=i))
    return out


def test_round_trip() -> None:
    entries = chain(3)
    message = Announcement(db=DB, heads=(entries[-1].cid,), entries=tuple(entries))
    decoded = decode_announcement(encode_announcement(message), db=DB)
    assert decoded == message


def test_held_entries_are_hash_checked_and_left_out() -> None:
    entries = chain(3)
    data = encode_announcement(
        Announcement(db=DB, heads=(entries[-1].cid,), entries=tuple(entries))
    )
    held = {entries[0].cid, entries[1].cid}
    decoded = decode_announcement(data, db=DB, held=held.__contains__)
    assert decoded.entries == (entries[2],)
    lying = codec.encode({"db": DB, "heads": [], "entries": [[entries[0].cid, entries[1].block]]})
    with pytest.raises(ProtocolError, match="does not hash"):
        decode_announcement(lying, db=DB, held=held.__contains__)


def test_every_check() -> None:
    (entry,) = chain(1)
    (foreign,) = chain(1, OTHER)
    forged = bytearray(entry.block)
    forged[-5] ^= 1

    def msg(**fields: object) -> bytes:
        base: dict[str, object] = {"db": DB, "heads": [], "entries": []}
        return codec.encode({**base, **fields})

    bad = [
        msg(db=OTHER),  # the topic's database, not another
        msg(heads=[entry.cid] * 5),  # over the head limit (below)
        msg(entries=[[entry.cid, entry.block]] * 3),  # over the entry limit (below)
        msg(entries=[[foreign.cid, foreign.block]]),  # an entry of another database
        msg(entries=[[Cid.for_block(bytes(forged)), bytes(forged)]]),  # bad signature
        msg(entries=[[entry.cid, entry.block, 1]]),  # not a pair
        msg(heads=["x"]),  # not CIDs
        codec.encode({"db": DB, "heads": []}),  # missing key
        b"\xff",
    ]
    limits = FrameLimits(max_cids_per_message=4, max_blocks_per_frame=2)
    for data in bad:
        with pytest.raises(ProtocolError):
            decode_announcement(data, db=DB, frame_limits=limits)


def test_invalid_values_cannot_be_built() -> None:
    (foreign,) = chain(1, OTHER)
    with pytest.raises(InvalidValueError):
        Announcement(db=DB, heads=(), entries=(foreign,))
    with pytest.raises(InvalidValueError):
        Announcement(db=DB, heads=("x",))  # type: ignore[arg-type]


cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.text(max_size=8)
    | st.binary(max_size=16),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.binary(max_size=256))
def test_decoding_arbitrary_bytes_raises_only_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_announcement(data, db=DB)


@given(heads=cbor_values, entries=cbor_values)
def test_decoding_arbitrary_shapes_raises_only_protocol_errors(
    heads: object, entries: object
) -> None:
    with contextlib.suppress(ProtocolError):
        decode_announcement(codec.encode({"db": DB, "heads": heads, "entries": entries}), db=DB)
