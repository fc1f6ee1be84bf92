"""CAR v1 (Content Addressable aRchive): a database's blocks in one file IPFS tools read.

Layout (https://ipld.io/specs/transport/car/carv1/)::

    varint(len(header)) header        header = DAG-CBOR {"roots": [<link>, ...], "version": 1}
    varint(len(cid) + len(block)) cid block     one section per block, raw binary CIDs

Pure code: :func:`encode_header` and :func:`encode_section` build bytes, and
:class:`CarReader` is fed bytes and hands out ``(cid, block)`` pairs. Every hash is checked
(a block whose bytes do not hash to its CID is refused with HashMismatchError); limits bound
the header and every section, so a hostile file costs at most one section of memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Final

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.errors import DecodeError, HashMismatchError, InvalidCidError, InvalidDataError

MAX_HEADER_BYTES: Final = 64 * 1024
# An entry is at most 512 KiB (EntryLimits); IPFS tools cap blocks at 1-2 MiB.
MAX_SECTION_BYTES: Final = 2 * 1024 * 1024


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """``(value, new position)``, or None when ``data`` ends inside the varint."""
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and shift:
                raise DecodeError("CAR: varint is not minimal")
            return value, pos
        shift += 7
        if shift > 63:
            raise DecodeError("CAR: varint longer than 9 bytes")
    return None


def encode_header(roots: Sequence[Cid]) -> bytes:
    header = codec.encode({"roots": list(roots), "version": 1})
    return _varint(len(header)) + header


def encode_section(cid: Cid, block: bytes) -> bytes:
    raw = bytes(cid)
    return _varint(len(raw) + len(block)) + raw + block


def _cid_length(section: bytes) -> int:
    """How many bytes the binary CID at the start of ``section`` takes (v1, or v0)."""
    if section[:2] == b"\x12\x20":  # CIDv0: a bare sha2-256 multihash
        return 34
    pos = 0
    for _ in range(3):  # version, codec, multihash code
        got = _read_varint(section, pos)
        if got is None:
            raise InvalidCidError("CAR: section ends inside its CID")
        _, pos = got
    got = _read_varint(section, pos)
    if got is None:
        raise InvalidCidError("CAR: section ends inside its CID")
    length, pos = got
    return pos + length


class CarReader:
    """Feed bytes with :meth:`feed`; it yields the blocks whose sections are complete.

    ``roots`` is set once the header is read. Blocks whose CID this implementation cannot
    hold (another codec or hash) are counted in ``skipped``, not returned."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.roots: tuple[Cid, ...] | None = None
        self.skipped = 0

    def feed(self, data: bytes) -> Iterator[tuple[Cid, bytes]]:
        self._buffer += data
        buffer = self._buffer
        pos = 0
        try:
            while True:
                got = _read_varint(buffer, pos)
                if got is None:
                    break
                length, start = got
                limit = MAX_HEADER_BYTES if self.roots is None else MAX_SECTION_BYTES
                if length > limit:
                    raise DecodeError(f"CAR: a {length}-byte section is over the {limit} limit")
                if len(buffer) - start < length:
                    break
                chunk = bytes(buffer[start : start + length])
                pos = start + length
                if self.roots is None:
                    self.roots = _parse_header(chunk)
                    continue
                block = self._section(chunk)
                if block is not None:
                    yield block
        finally:
            del buffer[:pos]

    def finish(self) -> None:
        """Call at end of input: raise if it stopped inside a section or had no header."""
        if self.roots is None:
            raise DecodeError("CAR: the file has no header")
        if self._buffer:
            raise DecodeError(f"CAR: the file ends inside a section ({len(self._buffer)} bytes)")

    def _section(self, chunk: bytes) -> tuple[Cid, bytes] | None:
        n = _cid_length(chunk)
        if n > len(chunk):
            raise InvalidCidError("CAR: section ends inside its CID")
        raw, block = chunk[:n], chunk[n:]
        try:
            cid = Cid(raw)
        except InvalidDataError:
            self.skipped += 1
            return None
        if not cid.is_block_cid:  # well-formed, but not CIDv1 dag-cbor/raw/dag-pb sha2-256
            self.skipped += 1
            return None
        if hashlib.sha256(block).digest() != cid.digest:
            raise HashMismatchError(f"CAR: block does not hash to {cid}")
        return cid, block


def _parse_header(chunk: bytes) -> tuple[Cid, ...]:
    header = codec.decode(chunk)
    if not isinstance(header, dict) or header.get("version") != 1:
        raise DecodeError("CAR: the header is not a version 1 CAR header")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, Cid) for r in roots):
        raise DecodeError("CAR: the header's roots must be a list of CIDs")
    return tuple(roots)
