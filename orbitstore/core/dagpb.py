"""dag-pb nodes and their UnixFS ``Data``: the two protobuf messages IPFS files are made of.

dag-pb (multicodec ``0x70``, https://ipld.io/specs/codecs/dag-pb/spec/) is one protobuf
message::

    message PBLink { optional bytes Hash = 1; optional string Name = 2; optional uint64 Tsize = 3; }
    message PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }

and UnixFS (https://specs.ipfs.tech/unixfs/) puts another one in ``Data``::

    message Data {
        required DataType Type = 1;   // Raw 0, Directory 1, File 2, Metadata 3,
                                      // Symlink 4, HAMTShard 5
        optional bytes Data = 2;
        optional uint64 filesize = 3;
        repeated uint64 blocksizes = 4;   // not packed: one field per child
        optional uint64 hashType = 5; optional uint64 fanout = 6;
        optional uint32 mode = 7; optional UnixTime mtime = 8;
    }

Both are small enough to encode by hand, and doing so keeps the bytes canonical (the
dag-pb spec's strict form: ``Links`` before ``Data``, link fields in order, minimal
varints), which is what makes our CIDs equal to kubo's and Helia's for the same file.
The decoders take bytes from any peer: each returns a valid value or raises
:class:`~orbitstore.errors.InvalidAttachmentError`, nothing else, whatever the input
(``tests/test_attachments_fuzz.py``). They are strict where it costs nothing (dag-pb
field order, no unknown dag-pb fields, minimal varints) and lenient where other
implementations differ (UnixFS fields we do not use are skipped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from orbitstore.core.cid import Cid
from orbitstore.errors import InvalidAttachmentError, InvalidCidError, InvalidValueError

UNIXFS_RAW: Final = 0
UNIXFS_DIRECTORY: Final = 1
UNIXFS_FILE: Final = 2
UNIXFS_METADATA: Final = 3
UNIXFS_SYMLINK: Final = 4
UNIXFS_HAMT_SHARD: Final = 5
_TYPE_NAMES: Final = ("raw", "directory", "file", "metadata", "symlink", "HAMT shard")

_VARINT: Final = 0
_LEN: Final = 2
_MAX_U64: Final = 2**64 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class PBLink:
    """One link of a dag-pb node: the child's CID, an optional name, and the cumulative
    size (``Tsize``) of the child's DAG in bytes."""

    cid: Cid
    name: str | None = ""
    tsize: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.cid, Cid):
            raise InvalidValueError("PBLink.cid must be a Cid")
        if self.tsize is not None and not 0 <= self.tsize <= _MAX_U64:
            raise InvalidValueError("PBLink.tsize must be a uint64")


@dataclass(frozen=True, slots=True, kw_only=True)
class PBNode:
    """A dag-pb node: links (in order) and opaque data (for files: a UnixFS message)."""

    links: tuple[PBLink, ...] = ()
    data: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnixfsData:
    """The UnixFS fields a file needs. Others (mode, mtime, fanout) are not kept."""

    type: int
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = ()

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES[self.type] if 0 <= self.type < len(_TYPE_NAMES) else str(self.type)


# --- encoding ---------------------------------------------------------------------------


def _varint(n: int, out: bytearray) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _bytes_field(field: int, value: bytes, out: bytearray) -> None:
    out.append(field << 3 | _LEN)
    _varint(len(value), out)
    out += value


def encode_node(node: PBNode) -> bytes:
    """The canonical dag-pb bytes of ``node`` (Links first, then Data)."""
    out = bytearray()
    for link in node.links:
        body = bytearray()
        _bytes_field(1, bytes(link.cid), body)
        if link.name is not None:
            _bytes_field(2, link.name.encode("utf-8"), body)
        if link.tsize is not None:
            body.append(3 << 3 | _VARINT)
            _varint(link.tsize, body)
        _bytes_field(2, bytes(body), out)
    if node.data is not None:
        _bytes_field(1, node.data, out)
    return bytes(out)


def encode_unixfs(value: UnixfsData) -> bytes:
    """UnixFS ``Data`` bytes, fields in number order as go-unixfs and js-ipfs-unixfs write them."""
    out = bytearray([1 << 3 | _VARINT])
    _varint(value.type, out)
    if value.data is not None:
        _bytes_field(2, value.data, out)
    if value.filesize is not None:
        out.append(3 << 3 | _VARINT)
        _varint(value.filesize, out)
    for size in value.blocksizes:
        out.append(4 << 3 | _VARINT)
        _varint(size, out)
    return bytes(out)


# --- decoding (remote bytes) ----------------------------------------------------------------


def _read_varint(raw: bytes, pos: int, what: str) -> tuple[int, int]:
    value = 0
    for i in range(pos, min(len(raw), pos + 10)):
        byte = raw[i]
        value |= (byte & 0x7F) << (7 * (i - pos))
        if not byte & 0x80:
            if byte == 0 and i > pos:
                raise InvalidAttachmentError(f"{what}: a varint is not minimal")
            if value > _MAX_U64:
                raise InvalidAttachmentError(f"{what}: a varint is over 64 bits")
            return value, i + 1
    raise InvalidAttachmentError(f"{what}: a varint is truncated or too long")


def _fields(raw: bytes, what: str) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for every field; only varint and length-delimited."""
    fields: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(raw):
        key, pos = _read_varint(raw, pos, what)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _read_varint(raw, pos, what)
            fields.append((number, wire, value))
        elif wire == _LEN:
            length, pos = _read_varint(raw, pos, what)
            if length > len(raw) - pos:
                raise InvalidAttachmentError(f"{what}: a field runs past the end")
            fields.append((number, wire, raw[pos : pos + length]))
            pos += length
        else:
            raise InvalidAttachmentError(f"{what}: unsupported protobuf wire type {wire}")
    return fields


def decode_node(raw: bytes) -> PBNode:
    """A dag-pb node from its bytes (strict form); InvalidAttachmentError otherwise."""
    links: list[PBLink] = []
    data: bytes | None = None
    for number, wire, value in _fields(raw, "dag-pb node"):
        if number == 2 and wire == _LEN and data is None:
            assert isinstance(value, bytes)
            links.append(_decode_link(value))
        elif number == 1 and wire == _LEN and data is None:
            assert isinstance(value, bytes)
            data = value
        else:
            raise InvalidAttachmentError(
                f"dag-pb node: unexpected field {number} (wire type {wire}) or order"
            )
    return PBNode(links=tuple(links), data=data)


def _decode_link(raw: bytes) -> PBLink:
    cid: Cid | None = None
    name: str | None = None
    tsize: int | None = None
    last = 0
    for number, wire, value in _fields(raw, "dag-pb link"):
        if number <= last:
            raise InvalidAttachmentError("dag-pb link: fields repeated or out of order")
        last = number
        if number == 1 and wire == _LEN:
            assert isinstance(value, bytes)
            try:
                cid = Cid(value)
            except InvalidCidError as exc:
                raise InvalidAttachmentError(f"dag-pb link: {exc}") from exc
        elif number == 2 and wire == _LEN:
            assert isinstance(value, bytes)
            try:
                name = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidAttachmentError("dag-pb link: the name is not UTF-8") from exc
        elif number == 3 and wire == _VARINT:
            assert isinstance(value, int)
            tsize = value
        else:
            raise InvalidAttachmentError(f"dag-pb link: unexpected field {number}")
    if cid is None:
        raise InvalidAttachmentError("dag-pb link without a Hash")
    return PBLink(cid=cid, name=name, tsize=tsize)


def decode_unixfs(raw: bytes) -> UnixfsData:
    """The UnixFS message in a dag-pb node's ``Data``; InvalidAttachmentError otherwise."""
    kind: int | None = None
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: list[int] = []
    for number, wire, value in _fields(raw, "UnixFS data"):
        if number == 1 and wire == _VARINT:
            assert isinstance(value, int)
            kind = value
        elif number == 2 and wire == _LEN:
            assert isinstance(value, bytes)
            data = value
        elif number == 3 and wire == _VARINT:
            assert isinstance(value, int)
            filesize = value
        elif number == 4 and wire == _VARINT:
            assert isinstance(value, int)
            blocksizes.append(value)
        elif number == 4 and wire == _LEN:  # packed, as some writers do
            assert isinstance(value, bytes)
            pos = 0
            while pos < len(value):
                size, pos = _read_varint(value, pos, "UnixFS blocksizes")
                blocksizes.append(size)
        elif number in (1, 2, 3):
            raise InvalidAttachmentError(f"UnixFS data: field {number} has wire type {wire}")
        # 5 hashType, 6 fanout, 7 mode, 8 mtime and unknown fields: not needed for reading
    if kind is None:
        raise InvalidAttachmentError("UnixFS data without a Type")
    return UnixfsData(type=kind, data=data, filesize=filesize, blocksizes=tuple(blocksizes))
