"""Attachments as UnixFS files: the DAG an IPFS node reads, built and read without I/O.

How it works
------------

**Writing** (:class:`FileBuilder`). Bytes are cut into fixed-size chunks
(``chunk_size``, 256 KiB by default); each chunk is a *raw* block (codec ``0x55``). The
leaves are gathered into dag-pb nodes of at most ``max_links`` children (174 by default)
level by level, the balanced layout of kubo and Helia: every node but the last of a level
is full, and a level of one node is the root. Each dag-pb node carries a UnixFS ``Data``
of type File with the total ``filesize`` and one ``blocksizes`` entry per child; each
link has an empty name and the child's cumulative ``Tsize``. A file of one chunk is that
raw block itself. All CIDs are CIDv1 sha2-256, so the root CID is what
``ipfs add --cid-version=1 --raw-leaves --chunker=size-262144`` (or Helia's
``addBytes`` with a fixed 256 KiB chunker, raw leaves and a 174-link balanced layout)
gives for the same bytes. The builder is fed incrementally and hands blocks out as soon
as they are final, so attaching a large file never holds more than one level of links
and one chunk in memory.

**Reading** (:class:`FileReader`), sans-IO in the style of h11: the reader says which
blocks it needs (:meth:`FileReader.wants`), is handed blocks (:meth:`FileReader.receive`:
each is checked against its CID's sha2-256 before anything else looks at it) and gives
file bytes back in order (:meth:`FileReader.read`). It never fetches: the node decides
where blocks come from (its store, orbitstore peers, IPFS peers). Links are followed
depth first; ``wants(n)`` looks ``n`` links ahead so a fetch can keep many blocks in
flight.

Everything here may be a peer's bytes, so each rule is checked as the block arrives
(:class:`AttachmentLimits`): a block over ``max_block_size`` is refused before it is
hashed; a node with more than ``max_links`` links, a path deeper than ``max_depth``, a
root whose ``filesize`` is over ``max_size`` are refused before any child is asked for.
Sizes must agree: a node's ``filesize`` is its own data plus its ``blocksizes``, one per
link, and every child must turn out exactly as large as its parent said, so the bytes
handed out are exactly the ``filesize`` the root promised and the work is bounded by it
(a child declared empty is refused, so no DAG of empty nodes can make the reader spin).
Links to the same child are allowed (a file with repeated chunks); a cycle cannot be
built with hashes. Every failure is an :class:`~orbitstore.errors.InvalidAttachmentError`
(or :class:`~orbitstore.errors.HashMismatchError`), never another exception.
"""

from __future__ import annotations

import hashlib
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Final

from orbitstore.core.cid import DAG_PB, RAW, SHA2_256, Cid
from orbitstore.core.dagpb import (
    UNIXFS_FILE,
    UNIXFS_RAW,
    PBLink,
    PBNode,
    UnixfsData,
    decode_node,
    decode_unixfs,
    encode_node,
    encode_unixfs,
)
from orbitstore.errors import (
    AttachmentLimitError,
    AttachmentTooLargeError,
    HashMismatchError,
    InvalidAttachmentError,
    InvalidValueError,
)

DEFAULT_CHUNK_SIZE: Final = 256 * 1024
"""kubo's default chunker (``size-262144``)."""
DEFAULT_MAX_LINKS: Final = 174
"""kubo's default links per node (a node of 174 links fits in 8 KiB)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FileLayout:
    """How :class:`FileBuilder` cuts and links a file. Change it and the CIDs change."""

    # kubo's classic defaults, so our CIDs match `ipfs add --raw-leaves --cid-version=1`.
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_links: int = DEFAULT_MAX_LINKS

    def __post_init__(self) -> None:
        if not isinstance(self.chunk_size, int) or not 1 <= self.chunk_size <= 1024 * 1024:
            raise InvalidValueError("FileLayout.chunk_size must be 1 B to 1 MiB")
        if not isinstance(self.max_links, int) or not 2 <= self.max_links <= 1024:
            raise InvalidValueError("FileLayout.max_links must be 2 to 1024")


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentLimits:
    """What a reader accepts from a peer (and what ``attach`` accepts from a caller)."""

    # 1 GiB: far past an image or a document; stored as blocks in the node's SQLite file.
    max_size: int = 1024**3
    # 2 MiB: the largest block IPFS implementations exchange over Bitswap (kubo's limit);
    # our chunks are 256 KiB, Helia's newer default 1 MiB.
    max_block_size: int = 2 * 1024 * 1024
    # kubo makes 174 links per node, Helia's newer profile 1024; 2048 leaves room.
    max_links: int = 2048
    # A 174-link tree of 256 KiB chunks holds 1.3 TB at depth 4; 8 is generous.
    max_depth: int = 8

    def __post_init__(self) -> None:
        for name in ("max_size", "max_block_size", "max_links", "max_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidValueError(f"AttachmentLimits.{name} must be a positive int")


DEFAULT_ATTACHMENT_LIMITS: Final = AttachmentLimits()


# --- writing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Child:
    cid: Cid
    filesize: int  # file bytes under it
    tsize: int  # encoded bytes of its whole DAG


def _raw_leaf(chunk: bytes) -> tuple[_Child, bytes]:
    return _Child(Cid.for_block(chunk, RAW), len(chunk), len(chunk)), chunk


def _file_node(children: list[_Child]) -> tuple[_Child, bytes]:
    filesize = sum(c.filesize for c in children)
    data = encode_unixfs(
        UnixfsData(
            type=UNIXFS_FILE, filesize=filesize, blocksizes=tuple(c.filesize for c in children)
        )
    )
    links = tuple(PBLink(cid=c.cid, name="", tsize=c.tsize) for c in children)
    block = encode_node(PBNode(links=links, data=data))
    tsize = len(block) + sum(c.tsize for c in children)
    return _Child(Cid.for_block(block, DAG_PB), filesize, tsize), block


class FileBuilder:
    """Builds the UnixFS DAG of a file fed in pieces. ``feed`` and ``finish`` return the
    blocks that became final (children before parents); ``finish`` also the root CID."""

    def __init__(self, layout: FileLayout | None = None) -> None:
        self._layout = layout or FileLayout()
        self._buffer = bytearray()
        self._levels: list[list[_Child]] = [[]]
        self._size = 0
        self._finished = False

    @property
    def size(self) -> int:
        """File bytes fed so far."""
        return self._size

    def feed(self, data: bytes) -> list[tuple[Cid, bytes]]:
        if self._finished:
            raise InvalidValueError("FileBuilder.feed after finish")
        self._size += len(data)
        self._buffer += data
        out: list[tuple[Cid, bytes]] = []
        chunk = self._layout.chunk_size
        # Keep the last chunk back: only finish() knows whether it is the whole file.
        while len(self._buffer) > chunk:
            self._add_leaf(bytes(self._buffer[:chunk]), out)
            del self._buffer[:chunk]
        return out

    def finish(self) -> tuple[Cid, list[tuple[Cid, bytes]]]:
        if self._finished:
            raise InvalidValueError("FileBuilder.finish called twice")
        self._finished = True
        out: list[tuple[Cid, bytes]] = []
        if self._buffer or not self._levels[0]:  # an empty file is one empty raw block
            self._add_leaf(bytes(self._buffer), out)
            self._buffer.clear()
        level = 0
        while True:
            items = self._levels[level]
            higher = any(self._levels[level + 1 :])
            if not higher and len(items) == 1:
                return items[0].cid, out
            if items:
                self._levels[level] = []
                self._push(level + 1, _file_node(items), out)
            level += 1

    def _add_leaf(self, chunk: bytes, out: list[tuple[Cid, bytes]]) -> None:
        self._push(0, _raw_leaf(chunk), out)

    def _push(self, level: int, made: tuple[_Child, bytes], out: list[tuple[Cid, bytes]]) -> None:
        child, block = made
        out.append((child.cid, block))
        if level == len(self._levels):
            self._levels.append([])
        items = self._levels[level]
        if len(items) == self._layout.max_links:  # full, and not the last: it has a parent
            self._levels[level] = []
            self._push(level + 1, _file_node(items), out)
            items = self._levels[level]
        items.append(child)


def build_file(
    data: bytes, layout: FileLayout | None = None
) -> tuple[Cid, list[tuple[Cid, bytes]]]:
    """The root CID and all blocks of ``data`` as a UnixFS file (children first)."""
    builder = FileBuilder(layout)
    blocks = builder.feed(data)
    root, rest = builder.finish()
    return root, blocks + rest


# --- reading ------------------------------------------------------------------------------


def block_cid(cid: Cid) -> Cid:
    """The CID a block of an attachment is stored and asked for under: CIDv0 links (kubo's
    default) become the CIDv1 dag-pb of the same digest. InvalidAttachmentError for
    anything we cannot verify (another hash) or read as part of a file (another codec)."""
    cid = cid.to_v1()
    if cid.hash_function != SHA2_256 or len(cid.digest) != 32:
        raise InvalidAttachmentError(f"unsupported block CID in an attachment ({cid.kind})")
    if cid.codec not in (RAW, DAG_PB):
        raise InvalidAttachmentError(
            f"an attachment is raw and dag-pb blocks, not {cid.kind} ({cid})"
        )
    return cid


@dataclass(slots=True)
class _Pending:
    cid: Cid
    depth: int
    size: int | None  # what the parent said this child holds; None for the root


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadProgress:
    """How far a read got: file bytes handed out, blocks verified, and the file's size
    (from the root's UnixFS ``filesize``; None until the root is in)."""

    bytes_read: int
    blocks_received: int
    total_bytes: int | None


@dataclass(slots=True)
class _Stats:
    bytes_read: int = 0
    blocks: int = 0
    total: int | None = None
    received: dict[Cid, bytes] = field(default_factory=dict)


class FileReader:
    """Reads one UnixFS file from blocks handed to it (see the module docstring)."""

    def __init__(self, root: Cid, limits: AttachmentLimits = DEFAULT_ATTACHMENT_LIMITS) -> None:
        self.root = root
        self._limits = limits
        first = block_cid(root)
        self._pending: deque[_Pending] = deque([_Pending(first, 0, None)])
        self._needed: Counter[Cid] = Counter([first])  # how often each pending CID occurs
        self._s = _Stats()

    @property
    def done(self) -> bool:
        """Whether every byte of the file has been handed out by :meth:`read`."""
        return not self._pending

    @property
    def total_bytes(self) -> int | None:
        """The file's size, once the root block has been read."""
        return self._s.total

    def progress(self) -> ReadProgress:
        s = self._s
        return ReadProgress(bytes_read=s.bytes_read, blocks_received=s.blocks, total_bytes=s.total)

    def wants(self, n: int = 1) -> list[Cid]:
        """Up to ``n`` blocks the reader needs next, in file order, none of them already
        handed in. Empty only when :attr:`done`."""
        out: list[Cid] = []
        seen: set[Cid] = set()
        for item in islice(self._pending, 0, 4 * n + 1):
            if len(out) >= n:
                break
            if item.cid not in self._s.received and item.cid not in seen:
                seen.add(item.cid)
                out.append(item.cid)
        return out

    def receive(self, cid: Cid, block: bytes) -> None:
        """Hand in a block (from anywhere). It is checked against ``cid`` before anything
        else; blocks the reader does not need are ignored."""
        cid = block_cid(cid)
        if len(block) > self._limits.max_block_size:
            raise AttachmentLimitError(
                f"block {cid} of {len(block)} bytes (limit {self._limits.max_block_size})"
            )
        if hashlib.sha256(block).digest() != cid.digest:
            raise HashMismatchError(f"block does not hash to {cid}")
        if cid not in self._s.received and self._needed[cid] > 0:
            self._s.received[cid] = bytes(block)
            self._s.blocks += 1

    def read(self) -> list[bytes]:
        """File bytes that can be handed out now, in order (possibly none: then give it
        the blocks of :meth:`wants`)."""
        out: list[bytes] = []
        received = self._s.received
        while self._pending and self._pending[0].cid in received:
            item = self._pending.popleft()
            block = received[item.cid]
            self._needed[item.cid] -= 1
            if not self._needed[item.cid]:
                del self._needed[item.cid], received[item.cid]
            self._expand(item, block, out)
        return out

    def _expand(self, item: _Pending, block: bytes, out: list[bytes]) -> None:
        if item.cid.codec == RAW:
            self._check_size(item, len(block))
            self._emit(block, out)
            return
        data, children = self._decode(item, block)
        if data:
            self._emit(data, out)
        self._pending.extendleft(reversed(children))
        self._needed.update(c.cid for c in children)

    def _decode(self, item: _Pending, block: bytes) -> tuple[bytes, list[_Pending]]:
        node = decode_node(block)
        if node.data is None:
            raise InvalidAttachmentError(f"dag-pb node {item.cid} has no UnixFS data")
        fs = decode_unixfs(node.data)
        if fs.type not in (UNIXFS_FILE, UNIXFS_RAW):
            raise InvalidAttachmentError(
                f"{item.cid} is a UnixFS {fs.type_name}, not a file"
                + (": name a file inside it" if fs.type_name == "directory" else "")
            )
        limits = self._limits
        if len(node.links) > limits.max_links:
            raise AttachmentLimitError(
                f"dag-pb node {item.cid} has {len(node.links)} links (limit {limits.max_links})"
            )
        if node.links and item.depth + 1 > limits.max_depth:
            raise AttachmentLimitError(f"attachment deeper than {limits.max_depth} levels")
        if len(fs.blocksizes) != len(node.links):
            raise InvalidAttachmentError(
                f"dag-pb node {item.cid}: {len(node.links)} links but"
                f" {len(fs.blocksizes)} blocksizes"
            )
        own = len(fs.data or b"")
        size = own + sum(fs.blocksizes)
        if fs.filesize is not None and fs.filesize != size:
            raise InvalidAttachmentError(
                f"dag-pb node {item.cid}: filesize {fs.filesize} but its parts hold {size}"
            )
        self._check_size(item, size)  # the root's filesize is checked before any child
        children = []
        for link, child_size in zip(node.links, fs.blocksizes, strict=True):
            if child_size == 0:
                raise InvalidAttachmentError(f"dag-pb node {item.cid} links an empty child")
            children.append(_Pending(block_cid(link.cid), item.depth + 1, child_size))
        return fs.data or b"", children

    def _check_size(self, item: _Pending, size: int) -> None:
        if item.size is None:
            if size > self._limits.max_size:
                raise AttachmentTooLargeError(
                    f"attachment {self.root} is {size} bytes (limit {self._limits.max_size})"
                )
            self._s.total = size
        elif size != item.size:
            raise InvalidAttachmentError(
                f"block {item.cid} holds {size} bytes of the file, its parent said {item.size}"
            )

    def _emit(self, data: bytes, out: list[bytes]) -> None:
        self._s.bytes_read += len(data)
        out.append(data)


def file_size(root: Cid, block: bytes) -> int:
    """The size of the file whose root block is ``block`` (its UnixFS ``filesize``, or the
    length of a raw root); InvalidAttachmentError if it is not a file's root."""
    reader = FileReader(root, AttachmentLimits(max_size=2**64 - 1))
    reader.receive(root, block)
    reader.read()
    total = reader.total_bytes
    assert total is not None  # read() decoded the root, or raised
    return total


def read_all(root: Cid, blocks: dict[Cid, bytes], limits: AttachmentLimits | None = None) -> bytes:
    """The file under ``root`` from blocks in hand (tests, small files);
    InvalidAttachmentError if one is missing."""
    reader = FileReader(root, limits or DEFAULT_ATTACHMENT_LIMITS)
    parts: list[bytes] = []
    while not reader.done:
        for cid in reader.wants(64):
            block = blocks.get(cid)
            if block is None:
                raise InvalidAttachmentError(f"block {cid} of attachment {root} is missing")
            reader.receive(cid, block)
        parts.extend(reader.read())
    return b"".join(parts)


def iter_chunks(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in pieces of ``size`` bytes (the last may be shorter)."""
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])
