"""Bitswap on the wire: varint-length framing and the want-list decoder.

Everything here handles bytes from a remote peer, so every function either returns a
valid value or raises :class:`~orbitstore.errors.ProtocolError` (an
:class:`~orbitstore.errors.InvalidDataError`); nothing else escapes, whatever the input
(``tests/test_bitswap_fuzz.py`` holds it to that). The server in
:mod:`orbitstore.net._libp2p_bitswap` only ever sees a :class:`BitswapRequest`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from google.protobuf.message import DecodeError as ProtobufDecodeError
from libp2p.bitswap.pb.bitswap_pb2 import Message

from orbitstore.core.cid import Cid
from orbitstore.errors import InvalidCidError, InvalidValueError, ProtocolError
from orbitstore.net.transport import Stream

_WANT_HAVE: Final = 1  # Message.Wantlist.WantType.Have
_MAX_VARINT_BYTES: Final = 10
# What the protobuf runtime raises on bad input besides DecodeError (nesting too deep for
# the C parser, values out of range for the pure-Python one).
_PARSE_ERRORS: Final = (ProtobufDecodeError, RecursionError, ValueError, OverflowError)


@dataclass(frozen=True, kw_only=True)
class Want:
    """One want-list entry that is not a cancel."""

    cid: bytes  # as sent: it may not be a CID at all
    want_have: bool  # WANT_HAVE (1.2.0) rather than WANT_BLOCK
    send_dont_have: bool

    def __post_init__(self) -> None:
        if not isinstance(self.cid, bytes):
            raise InvalidValueError("Want.cid must be bytes")


@dataclass(frozen=True, kw_only=True)
class BitswapRequest:
    """What a peer asked for in one message, the blocks it sent (answers to our wants, or
    pushed uninvited), and the CIDs it said it does not have (DONT_HAVE, 1.2.0)."""

    wants: tuple[Want, ...]
    cancels: int = 0
    # (prefix, data): the prefix (CID version, codec, hash, length) of a 1.1.0+ payload
    # block, None for a 1.0.0 block. Nothing here is verified yet.
    blocks: tuple[tuple[bytes | None, bytes], ...] = ()
    dont_haves: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if self.cancels < 0:
            raise InvalidValueError("BitswapRequest counts must not be negative")

    @property
    def pushed_blocks(self) -> int:
        return len(self.blocks)


def decode_request(frame: bytes) -> BitswapRequest:
    """The want-list in one Bitswap message; ProtocolError if it is not one."""
    message = Message()
    try:
        message.ParseFromString(frame)
        entries = list(message.wantlist.entries)
        blocks: list[tuple[bytes | None, bytes]] = [(None, bytes(b)) for b in message.blocks]
        blocks += [(bytes(p.prefix), bytes(p.data)) for p in message.payload]
        dont_haves = tuple(
            bytes(p.cid) for p in message.blockPresences if p.type == Message.DontHave
        )
    except _PARSE_ERRORS as exc:
        raise ProtocolError(f"not a Bitswap message: {exc or type(exc).__name__}") from exc
    wants = []
    cancels = 0
    for entry in entries:
        if entry.cancel:
            cancels += 1
            continue
        wants.append(
            Want(
                cid=bytes(entry.block),
                want_have=entry.wantType == _WANT_HAVE,
                send_dont_have=bool(entry.sendDontHave),
            )
        )
    return BitswapRequest(
        wants=tuple(wants), cancels=cancels, blocks=tuple(blocks), dont_haves=dont_haves
    )


def want_message(cids: list[Cid], *, cancel: bool = False, v120: bool = True) -> Message:
    """A want-list update: WANT_BLOCK for each CID (asking for DONT_HAVE where the
    protocol has it), or cancels."""
    message = Message()
    message.wantlist.full = False
    for cid in cids:
        entry = message.wantlist.entries.add()
        entry.block = bytes(cid)
        entry.priority = 1
        entry.cancel = cancel
        if v120 and not cancel:
            entry.wantType = Message.Wantlist.Block
            entry.sendDontHave = True
    return message


def block_cid(prefix: bytes, data: bytes) -> Cid | None:
    """The CID a 1.1.0+ payload block claims with its prefix, from the hash of its data,
    if that is a CID we can verify (CIDv1 sha2-256, or CIDv0); None otherwise."""
    if prefix == b"\x00\x70\x12\x20":  # CIDv0 (version 0 written out)
        return Cid(b"\x01\x70\x12\x20" + hashlib.sha256(data).digest())
    if len(prefix) != 4 or prefix[0] != 1 or prefix[2:] != b"\x12\x20":
        return None  # multi-byte codecs, other hashes: nothing we hold or want
    try:
        return Cid(prefix + hashlib.sha256(data).digest())
    except InvalidCidError:
        return None


def reply_messages(
    blocks: list[tuple[Cid, bytes]],
    presences: list[tuple[bytes, bool]],
    *,
    v100: bool,
    batch_bytes: int,
) -> list[Message]:
    """Blocks and HAVE/DONT_HAVE presences as messages of ~``batch_bytes`` of blocks each
    (1.0.0 has no prefixes and no presences)."""
    messages: list[Message] = []
    current = Message()
    size = 0
    for cid, block in blocks:
        if size and size + len(block) > batch_bytes:
            messages.append(current)
            current, size = Message(), 0
        if v100:
            current.blocks.append(block)
        else:
            item = current.payload.add()
            item.prefix = bytes(cid)[:4]  # version, codec, hash function, digest length
            item.data = block
        size += len(block)
    for raw_cid, have in presences:
        presence = current.blockPresences.add()
        presence.cid = raw_cid
        presence.type = Message.Have if have else Message.DontHave
    messages.append(current)
    return messages


def frame(payload: bytes) -> bytes:
    """An unsigned-varint length prefix, then the payload."""
    n = len(payload)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + payload


class FrameReader:
    """Varint-length-prefixed messages from a stream, each at most ``max_size`` bytes."""

    def __init__(self, stream: Stream, max_size: int | Callable[[], int]) -> None:
        self._stream = stream
        # A callable is asked at each message: the server allows larger messages from a
        # peer while we wait for blocks from it.
        self._max = max_size if callable(max_size) else (lambda: max_size)
        self._buffer = bytearray()

    async def next(self) -> bytes | None:
        """The next message; None at a clean end of stream."""
        length, start = 0, 0
        while True:  # the varint
            for i in range(start, min(len(self._buffer), _MAX_VARINT_BYTES)):
                byte = self._buffer[i]
                length |= (byte & 0x7F) << (7 * i)
                if not byte & 0x80:
                    return await self._body(length, i + 1)
            start = len(self._buffer)
            if start >= _MAX_VARINT_BYTES:
                raise ProtocolError("Bitswap length prefix longer than 10 bytes")
            if not await self._fill():
                if self._buffer:
                    raise ProtocolError("Bitswap stream ended inside a length prefix")
                return None

    async def _body(self, length: int, offset: int) -> bytes:
        limit = self._max()
        if length > limit:
            raise ProtocolError(f"Bitswap message of {length} bytes is over {limit}")
        while len(self._buffer) < offset + length:
            if not await self._fill():
                raise ProtocolError("Bitswap stream ended inside a message")
        body = bytes(self._buffer[offset : offset + length])
        del self._buffer[: offset + length]
        return body

    async def _fill(self) -> bool:
        data = await self._stream.receive_some(65536)
        self._buffer += data
        return bool(data)
