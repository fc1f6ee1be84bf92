"""Structure-aware fuzzing of every decoder of remote bytes (orbitstore.testing.fuzz).

The invariant, after h11's fuzz harness: whatever the bytes, a decoder returns a valid
value or raises our typed :class:`~orbitstore.errors.InvalidDataError` (the peer's
fault), never another exception (no KeyError, TypeError, RecursionError, MemoryError,
and no UsageError either: that would blame our own caller). Inputs start from valid
entries, frames, announcements, manifests and Bitswap messages and are then mutated
(see the docstring of :mod:`orbitstore.testing.fuzz`).

``make test`` runs the ``ci`` Hypothesis profile (few examples); ``HYPOTHESIS_PROFILE=
nightly`` runs many more.
"""

from __future__ import annotations

import os
from typing import Any, cast

import pytest
import trio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from libp2p.bitswap.pb.bitswap_pb2 import Message as BitswapMessage

from orbitstore.core import codec
from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.errors import InvalidDataError, ProtocolError
from orbitstore.net._bitswap_wire import FrameReader, reply_messages
from orbitstore.net._libp2p_bitswap import (
    BITSWAP_V100,
    BITSWAP_V120,
    BitswapServer,
    TokenBucket,
    _Peer,
)
from orbitstore.net.libp2p_config import BitswapConfig
from orbitstore.sync.frames import FrameDecoder, FrameLimits, decode_body, encode_frame
from orbitstore.testing import fuzz
from orbitstore.testing.strategies import strict_equal, values

WRITER = Identity(b"\x07" * 32)
MANIFEST = Manifest(name="fuzz", type="feed", access=StaticAccess.of([WRITER.id]))
DB, MANIFEST_BLOCK = MANIFEST.to_block()
CHAIN = fuzz.signed_chain(WRITER, DB, 4)
SEEDS = [
    *CHAIN,
    Entry.create(WRITER, db=DB, clock=5, next=[CHAIN[-1].cid], refs=[CHAIN[0].cid], payload=[]),
    Entry.create(
        WRITER, db=DB, clock=2, next=[CHAIN[0].cid], payload={"t": DB, "n": -3, "f": 0.5}, ts=9
    ),
]
BODIES = fuzz.frame_bodies(DB, CHAIN[:3], MANIFEST_BLOCK)
# A failing example can be a megabyte of bytes: Hypothesis warns when it prints one.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
NIGHTLY = os.environ.get("HYPOTHESIS_PROFILE") == "nightly"
# CI reports a failing example as found: shrinking a node scenario can take minutes.
CI_PHASES = (Phase.explicit, Phase.reuse, Phase.generate)
# CI: a fixed, small sample (derandomized, so main is green or red for a reason);
# nightly: the profile's many random examples.
FUZZ = settings(
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    **(
        {}
        if NIGHTLY
        else {"max_examples": 50, "derandomize": True, "database": None, "phases": CI_PHASES}
    ),
)


def _decode(data: bytes) -> Any:
    try:
        return codec.decode(data)
    except InvalidDataError:
        return None


# --- the kit itself -----------------------------------------------------------------


@given(values())
def test_encode_raw_writes_canonical_dag_cbor(value: Any) -> None:
    assert fuzz.encode_raw(value) == codec.encode(value)


def test_encode_raw_writes_what_dag_cbor_forbids() -> None:
    dup = fuzz.RawMap((("a", 1), ("a", 2)))
    assert fuzz.encode_raw(dup) == b"\xa2\x61a\x01\x61a\x02"
    assert fuzz.encode_raw(fuzz.RawArray((1,), declared=3)) == b"\x83\x01"
    assert len(fuzz.encode_raw(fuzz.nest(0, 100_000))) == 100_001


# --- codec --------------------------------------------------------------------------


@FUZZ
@given(st.data())
def test_codec_decode_is_typed_and_canonical(data: st.DataObject) -> None:
    value = data.draw(st.sampled_from([e.block for e in SEEDS] + [MANIFEST_BLOCK]))
    raw = data.draw(fuzz.mutated_encodings(codec.decode(value)))
    try:
        decoded = codec.decode(raw)
    except InvalidDataError:
        return
    assert codec.encode(decoded) == raw  # only canonical bytes decode
    assert strict_equal(codec.decode(codec.encode(decoded)), decoded)


# --- entries --------------------------------------------------------------------------


def _check_entry(cid: Cid, block: bytes) -> None:
    try:
        entry = Entry.from_block(cid, block)
    except InvalidDataError:
        return
    assert entry.cid == cid and entry.block == block
    # (the payload may nest MAX_DEPTH deep, so the whole block one level more)
    assert codec.encode_checked(codec.decode(block, max_depth=codec.MAX_DEPTH + 1)) == block
    assert entry.db == DB or isinstance(entry.db, Cid)
    assert 1 <= entry.clock < 2**53 and len(entry.next) <= 64
    assert list(entry.next) == sorted(set(entry.next))
    codec.check_depth(entry.payload)
    repr(entry)  # a verified entry prints


@FUZZ
@given(fuzz.mutated_entry_blocks(SEEDS, WRITER))
def test_entry_from_block_on_mutated_entries(item: tuple[Cid, bytes]) -> None:
    _check_entry(*item)


def test_entry_version_nested_deep_is_refused() -> None:
    block = fuzz.sign_raw({**fuzz.entry_fields(CHAIN[0]), "v": fuzz.nest(0, 20_000)}, WRITER)
    with pytest.raises(InvalidDataError):
        Entry.from_block(Cid.for_block(block), block)


def test_entry_nested_deep_elsewhere_is_refused() -> None:
    fields = fuzz.entry_fields(CHAIN[0])
    for name in ("db", "next", "refs", "clock", "writer", "sig", "ts", "payload", "extra"):
        for kind in ("list", "map"):
            value = {**fields, name: fuzz.nest(0, 5_000, kind=kind)}
            block = fuzz.encode_raw(value) if name == "sig" else fuzz.sign_raw(value, WRITER)
            with pytest.raises(InvalidDataError):
                Entry.from_block(Cid.for_block(block), block)


# --- sync frames ----------------------------------------------------------------------


def _feed_all(chunks: list[bytes], limits: FrameLimits) -> tuple[list[Any], bool]:
    decoder = FrameDecoder(limits)
    out: list[Any] = []
    try:
        for chunk in chunks:
            out.extend(decoder.feed(chunk))
    except ProtocolError:
        return out, True
    return out, False


@FUZZ
@given(st.lists(fuzz.mutated_frames(BODIES), min_size=1, max_size=4), st.data())
def test_frame_decoder_on_mutated_frames(frames: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(frames)
    limits = FrameLimits(max_frame_bytes=1024 * 1024, max_total_bytes=8 * 1024 * 1024)
    whole, failed = _feed_all([stream], limits)
    # However the bytes are cut into reads, the decoder says the same.
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=6)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    pieces, failed_pieces = _feed_all(chunks, limits)
    assert failed_pieces == failed
    assert pieces == whole
    for message in whole:  # every message decoded is one we could have sent
        assert FrameDecoder(limits).feed(encode_frame(message)) == [message]


@FUZZ
@given(st.sampled_from(BODIES).flatmap(fuzz.mutated_encodings))
def test_decode_body_on_mutated_bodies(body: bytes) -> None:
    try:
        message = decode_body(body)
    except ProtocolError:
        return
    frame = encode_frame(message)
    assert FrameDecoder().feed(frame) == [message]


# --- announcements --------------------------------------------------------------------


def _decode_announcement(data: bytes) -> tuple[frozenset[Cid], list[tuple[Cid, bytes]]]:
    """What a receiver does with an announcement's bytes: the node's own decoder (the
    topic validator runs it before the message is delivered or forwarded)."""
    from orbitstore.sync.announce import decode_announcement

    decoded = decode_announcement(data, db=DB, frame_limits=FrameLimits())
    return frozenset(decoded.heads), [(e.cid, e.block) for e in decoded.entries]


@FUZZ
@given(fuzz.mutated_encodings(fuzz.announcement(DB, [CHAIN[-1].cid], CHAIN)))
def test_announcement_decoder_on_mutated_announcements(data: bytes) -> None:
    try:
        heads, blocks = _decode_announcement(data)
    except InvalidDataError:
        return
    assert all(isinstance(h, Cid) for h in heads)
    for cid, block in blocks:
        _check_entry(cid, block)


# --- manifests ------------------------------------------------------------------------

_MANIFESTS = [
    fuzz.manifest_value("fuzz", "feed", [WRITER.id]),
    fuzz.manifest_value("kv", "keyvalue", ["*"]),
    fuzz.manifest_value("d", "documents", [WRITER.id, Identity(b"\x08" * 32).id]),
]


@FUZZ
@given(st.sampled_from(_MANIFESTS).flatmap(fuzz.mutated_encodings), st.booleans())
def test_manifest_from_block_on_mutated_manifests(block: bytes, own_cid: bool) -> None:
    cid = Cid.for_block(block) if own_cid else DB
    try:
        manifest = Manifest.from_block(cid, block)
    except InvalidDataError:
        return
    assert manifest.to_block() == (cid, block)
    repr(manifest)


# --- Bitswap --------------------------------------------------------------------------


def _wantlist(cids: list[bytes]) -> bytes:
    message = BitswapMessage()
    for i, raw in enumerate(cids):
        entry = message.wantlist.entries.add()
        entry.block = raw
        entry.priority = i
        entry.wantType = i % 2
        entry.sendDontHave = bool(i % 3)
    message.wantlist.full = True
    block = message.blocks.add() if False else None
    assert block is None
    return cast(bytes, message.SerializeToString())


_BLOCKS = {e.cid: e.block for e in CHAIN}
_BITSWAP_SEEDS = [
    _wantlist([bytes(c) for c in _BLOCKS]),
    _wantlist([bytes(DB), bytes(fuzz.ODD_CIDS[1]), b"\x12\x20" + bytes(32)]),
]


class _Source:
    def get(self, cid: Cid) -> bytes | None:
        return _BLOCKS.get(cid)


def _server() -> BitswapServer:
    return BitswapServer(cast(Any, None), BitswapConfig(enabled=True), cast(Any, None), _Source())


@FUZZ
@given(st.sampled_from(_BITSWAP_SEEDS).flatmap(fuzz.mutated_bytes), st.booleans())
def test_bitswap_parser_on_mutated_want_lists(frame: bytes, v120: bool) -> None:
    async def main() -> None:
        server = _server()
        peer = _Peer(bucket=TokenBucket(rate=1000.0, burst=256.0, now=trio.current_time()))
        protocol = BITSWAP_V120 if v120 else BITSWAP_V100
        try:
            reply = server._answer(frame, peer, protocol)
        except InvalidDataError:
            return
        for cid, block in reply.blocks:
            assert _BLOCKS[cid] == block
        for message in reply_messages(
            reply.blocks, reply.presences, v100=not v120, batch_bytes=256 * 1024
        ):
            message.SerializeToString()

    trio.run(main)


class _ByteStream:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def receive_some(self, max_bytes: int) -> bytes:
        await trio.lowlevel.checkpoint()
        return self._chunks.pop(0) if self._chunks else b""


@FUZZ
@given(
    st.lists(st.sampled_from(_BITSWAP_SEEDS), min_size=1, max_size=3)
    .map(lambda ms: b"".join(fuzz.varint(len(m)) + m for m in ms))
    .flatmap(fuzz.mutated_bytes),
    st.integers(1, 64),
)
def test_bitswap_frame_reader_on_mutated_streams(stream: bytes, step: int) -> None:
    async def main() -> None:
        chunks = [stream[i : i + step] for i in range(0, len(stream), step)]
        reader = FrameReader(cast(Any, _ByteStream(chunks)), 4096)
        try:
            while (message := await reader.next()) is not None:
                assert len(message) <= 4096
        except InvalidDataError:
            return

    trio.run(main)
