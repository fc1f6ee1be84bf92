from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core.cid import Cid
from orbitstore.errors import InvalidValueError, ProtocolError
from orbitstore.sync.frames import (
    Done,
    Entries,
    Error,
    FrameDecoder,
    FrameLimits,
    GetManifest,
    Hello,
    ManifestBlock,
    Message,
    NotFound,
    Want,
    encode_frame,
    encode_varint,
)

cids = st.binary(min_size=1, max_size=8).map(
    lambda b: Cid(b"\x01\x71\x12\x20" + hashlib.sha256(b).digest())
)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(
        Hello,
        db=cids,
        heads=st.lists(cids, max_size=5).map(tuple),
        have=st.lists(cids, max_size=5).map(tuple),
    ),
    st.builds(
        Entries,
        blocks=st.lists(st.tuples(cids, st.binary(max_size=64)), max_size=5).map(tuple),
    ),
    st.builds(Want, cids=st.lists(cids, max_size=5).map(tuple)),
    st.just(Done()),
    st.builds(Error, code=st.text(min_size=1, max_size=10), message=st.text(max_size=20)),
    st.builds(GetManifest, v=st.integers(min_value=0, max_value=3), db=cids),
    st.builds(ManifestBlock, db=cids, block=st.binary(max_size=64)),
    st.builds(NotFound, db=cids),
)
MESSAGE_TYPES = (Hello, Entries, Want, Done, Error, GetManifest, ManifestBlock, NotFound)


@given(st.lists(messages, max_size=6), st.integers(min_value=1, max_value=50))
def test_round_trip_in_any_chunking(msgs: list[Message], chunk: int) -> None:
    data = b"".join(encode_frame(m) for m in msgs)
    decoder = FrameDecoder()
    got: list[Message] = []
    for i in range(0, len(data), chunk):
        got.extend(decoder.feed(data[i : i + chunk]))
    assert got == msgs
    assert decoder.buffered == 0


@given(st.binary(max_size=300))
def test_fuzz_bytes_give_messages_or_protocol_error(data: bytes) -> None:
    decoder = FrameDecoder(FrameLimits(max_frame_bytes=256))
    try:
        out = decoder.feed(data)
    except ProtocolError:
        return
    assert all(isinstance(m, MESSAGE_TYPES) for m in out)


@given(messages, st.integers(min_value=0, max_value=200), st.binary(min_size=1, max_size=4))
def test_fuzz_mutated_frames(msg: Message, pos: int, junk: bytes) -> None:
    frame = bytearray(encode_frame(msg))
    pos %= len(frame)
    frame[pos : pos + len(junk)] = junk
    with contextlib.suppress(ProtocolError):
        FrameDecoder().feed(bytes(frame))


def test_frame_size_limit_is_enforced_from_the_header() -> None:
    decoder = FrameDecoder(FrameLimits(max_frame_bytes=1000))
    with pytest.raises(ProtocolError, match="over the limit"):
        decoder.feed(encode_varint(1001))
    with pytest.raises(ProtocolError, match="already failed"):
        decoder.feed(b"")
    # A partial varint that already exceeds the limit is refused without waiting.
    with pytest.raises(ProtocolError):
        FrameDecoder(FrameLimits(max_frame_bytes=1000)).feed(b"\xff\xff")


def test_non_minimal_and_overlong_varints() -> None:
    with pytest.raises(ProtocolError, match="minimal"):
        FrameDecoder().feed(b"\x81\x00")
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(b"\x80\x80\x80\x80\x01")
    with pytest.raises(ProtocolError, match="empty"):
        FrameDecoder().feed(b"\x00")


def test_blocks_per_frame_and_total_budget() -> None:
    cid = Cid.for_block(b"x")
    frame = encode_frame(Entries(blocks=tuple((cid, b"x") for _ in range(5))))
    with pytest.raises(ProtocolError, match="blocks"):
        FrameDecoder(FrameLimits(max_blocks_per_frame=4)).feed(frame)
    decoder = FrameDecoder(FrameLimits(max_total_bytes=len(frame) * 2))
    decoder.feed(frame)
    decoder.feed(frame)
    with pytest.raises(ProtocolError, match="more than"):
        decoder.feed(frame)


def test_unknown_type_and_extra_keys() -> None:
    from orbitstore.core import codec

    for body in ({"t": "nope"}, {"t": "done", "x": 1}, {"t": "want"}, [1], {"t": 5}):
        data = codec.encode(body)
        with pytest.raises(ProtocolError):
            FrameDecoder().feed(encode_varint(len(data)) + data)


def test_messages_validate() -> None:
    with pytest.raises(InvalidValueError):
        Want(cids=("x",))  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError):
        Error(code="")
    with pytest.raises(InvalidValueError):
        Entries(blocks=((Cid.for_block(b"x"), "str"),))  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError):
        FrameLimits(max_frame_bytes=0)


def test_manifest_messages_bytes() -> None:
    """The frames of docs/sync-protocol.md, byte for byte."""
    db = Cid(b"\x01\x71\x12\x20" + bytes(32))
    link = b"\xd8\x2a\x58\x25\x00" + bytes(db)  # tag 42, bytes(37): 0x00 ‖ CID
    assert encode_frame(NotFound(db=db)) == (b"\x39\xa2\x61t\x69not_found\x62db" + link)
    assert encode_frame(GetManifest(db=db)) == (
        b"\x3f\xa3\x61t\x6cget_manifest\x61v\x01\x62db" + link
    )
    assert encode_frame(ManifestBlock(db=db, block=b"\xa0")) == (
        b"\x40\xa3\x61t\x68manifest\x62db" + link + b"\x65block\x41\xa0"
    )


def test_manifest_messages_validate_and_limit() -> None:
    from orbitstore.core import codec
    from orbitstore.core.manifest import MAX_MANIFEST_BYTES

    db = Cid.for_block(b"x")
    with pytest.raises(InvalidValueError):
        ManifestBlock(db=db, block=b"x" * (MAX_MANIFEST_BYTES + 1))
    with pytest.raises(InvalidValueError):
        GetManifest(db=db, v=-1)
    with pytest.raises(InvalidValueError):
        NotFound(db="x")  # type: ignore[arg-type]
    for body in (
        {"t": "manifest", "db": db, "block": b"x" * (MAX_MANIFEST_BYTES + 1)},
        {"t": "manifest", "db": db, "block": "text"},
        {"t": "get_manifest", "db": db},
        {"t": "get_manifest", "v": True, "db": db},
        {"t": "not_found", "db": db, "x": 1},
        {"t": "not_found", "db": b"raw"},
    ):
        data = codec.encode(body)
        with pytest.raises(ProtocolError):
            FrameDecoder().feed(encode_varint(len(data)) + data)
