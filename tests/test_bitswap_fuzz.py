"""Fuzzing what a Bitswap peer can send us: the message decoder, the framing, and a live
server on 127.0.0.1. Inputs start as valid want-lists and are then mutated (truncated,
bytes flipped, tags with the wrong wire type, huge lengths, duplicated fields, deep
nesting, garbage). Invariant: a valid value or a typed error (ProtocolError), never
anything else, and the server keeps serving."""

from __future__ import annotations

import contextlib

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from libp2p.bitswap.pb.bitswap_pb2 import Message
from test_bitswap import ENTRY, MISSING, blocks_of, our_store, raw_client, serving, wants

from orbitstore.core.cid import DAG_CBOR, RAW, Cid
from orbitstore.errors import ProtocolError
from orbitstore.net._bitswap_wire import BitswapRequest, FrameReader, decode_request, frame

MAX_MESSAGE = 4096


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, wire_type: int, body: bytes) -> bytes:
    return _varint(number << 3 | wire_type) + body


cids = st.one_of(
    st.just(bytes(ENTRY.cid)),
    st.just(bytes(MISSING)),
    st.builds(
        lambda d, c: bytes(Cid.for_block(d, c)),
        st.binary(max_size=8),
        st.sampled_from([RAW, DAG_CBOR]),
    ),
    st.binary(max_size=40),
)


@st.composite
def valid_messages(draw: st.DrawFn) -> bytes:
    message = Message()
    for _ in range(draw(st.integers(0, 6))):
        entry = message.wantlist.entries.add()
        entry.block = draw(cids)
        entry.priority = draw(st.integers(-(2**31), 2**31 - 1))
        entry.cancel = draw(st.booleans())
        entry.wantType = draw(st.sampled_from([0, 1]))  # type: ignore[assignment]
        entry.sendDontHave = draw(st.booleans())
    message.wantlist.full = draw(st.booleans())
    for block in draw(st.lists(st.binary(max_size=20), max_size=2)):
        message.blocks.append(block)
    for data in draw(st.lists(st.binary(max_size=20), max_size=2)):
        item = message.payload.add()
        item.prefix, item.data = bytes(ENTRY.cid)[:4], data
    return message.SerializeToString()


def _deep(depth: int, wire: str) -> bytes:
    if wire == "group":  # start-group tags nested `depth` deep, never ended
        return _varint(7 << 3 | 3) * depth
    body = b""
    for _ in range(depth):  # length-delimited field 1 (wantlist) inside itself
        body = _field(1, 2, _varint(len(body)) + body)
    return body


@st.composite
def almost_valid_messages(draw: st.DrawFn) -> bytes:
    data = draw(valid_messages())
    for _ in range(draw(st.integers(1, 3))):
        how = draw(
            st.sampled_from(
                ["truncate", "flip", "wire_type", "huge_length", "duplicate", "deep", "garbage"]
            )
        )
        at = draw(st.integers(0, len(data)))
        if how == "truncate":
            data = data[:at]
        elif how == "flip" and data:
            i = min(at, len(data) - 1)
            data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
        elif how == "wire_type":
            number = draw(st.integers(1, 5))
            data = (
                data[:at]
                + _field(number, draw(st.sampled_from([0, 1, 3, 4, 5, 6, 7])), b"\x01")
                + data[at:]
            )
        elif how == "huge_length":
            number = draw(st.integers(1, 5))
            data += _field(number, 2, _varint(draw(st.integers(2**20, 2**64 - 1))))
        elif how == "duplicate":
            data += data
        elif how == "deep":
            data += _deep(draw(st.integers(50, 2000)), draw(st.sampled_from(["group", "nested"])))
        else:
            data = data[:at] + draw(st.binary(max_size=64)) + data[at:]
    return data


@given(almost_valid_messages())
def test_decoder_returns_a_request_or_a_protocol_error(data: bytes) -> None:
    try:
        request = decode_request(data)
    except ProtocolError:
        return
    assert isinstance(request, BitswapRequest)
    assert all(isinstance(want.cid, bytes) for want in request.wants)


@given(valid_messages())
def test_valid_messages_decode(data: bytes) -> None:
    message = Message()
    message.ParseFromString(data)
    request = decode_request(data)
    assert len(request.wants) + request.cancels == len(message.wantlist.entries)
    assert request.pushed_blocks == len(message.blocks) + len(message.payload)


class _Chunks:
    """A stream that hands out ``data`` in the given chunk sizes, then EOF."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self._data = data
        self._sizes = sizes

    @property
    def remote_peer(self) -> str:
        return "fuzz"

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        await trio.lowlevel.checkpoint()
        size = min(self._sizes.pop(0) if self._sizes else len(self._data), max_bytes)
        out, self._data = self._data[: max(size, 1)], self._data[max(size, 1) :]
        return out

    async def send_all(self, data: bytes) -> None:
        raise AssertionError("the reader never writes")

    async def close(self) -> None:
        await trio.lowlevel.checkpoint()


wire_frames = st.one_of(
    valid_messages().map(frame),
    almost_valid_messages().map(frame),
    almost_valid_messages(),  # no length prefix at all: the bytes are read as one
    st.integers(0, 2**70).map(_varint),  # a length alone, maybe a huge one
    st.just(b"\xff" * 11),  # a varint that never ends
)


@given(st.lists(wire_frames, max_size=6), st.lists(st.integers(1, 300), max_size=20))
def test_frame_reader_returns_bounded_frames_or_a_protocol_error(
    parts: list[bytes], sizes: list[int]
) -> None:
    async def read_all() -> None:
        reader = FrameReader(_Chunks(b"".join(parts), sizes), MAX_MESSAGE)
        try:
            while (body := await reader.next()) is not None:
                assert len(body) <= MAX_MESSAGE
                with contextlib.suppress(ProtocolError):
                    decode_request(body)
        except ProtocolError:
            pass

    trio.run(read_all)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(wire_frames, min_size=4, max_size=10))
def test_live_server_survives_mutated_messages(payloads: list[bytes]) -> None:
    """Each payload goes on its own stream to a live server; afterwards the server still
    answers a plain want, and nothing reached its unexpected-error boundary."""

    async def run() -> None:
        async with serving(our_store()) as server, raw_client(server) as client:
            for payload in payloads:
                with trio.fail_after(10):
                    stream = await client.open()
                    try:
                        await stream.write(payload)
                        await stream.close()
                    except Exception:  # the server may reset the stream first: fine
                        pass
            async with raw_client(server) as fresh:
                replies = await fresh.exchange(wants(ENTRY.cid))
            assert blocks_of(replies) == [ENTRY.block]
            assert server.statistics().bitswap.internal_errors == 0

    trio.run(run)
