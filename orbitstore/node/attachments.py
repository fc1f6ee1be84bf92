"""Attachments: large binary values stored as UnixFS blocks, read and fetched lazily.

The I/O side of :mod:`orbitstore.core.unixfs`. :meth:`Attachments.attach` reads bytes,
a path or a binary file object in pieces, builds the file's DAG and stores its blocks
in the node's block store (one transaction per ~16 MiB, so a crash leaves whole blocks
and no half-written one; the root is written last, so a root that is present is a file
whose blocks all are). It returns the root CID, which an entry's payload links.

:meth:`Attachments.open` streams a file back: every block comes from the store when it
is there, and otherwise from peers through the node's :class:`BlockFetcher`
(Bitswap over libp2p: other orbitstore nodes and IPFS nodes alike), ``window`` blocks at
a time. Fetched blocks are checked (hash, size, structure, limits) before they are
stored, and kept, so a second read is local and this node serves them on. Nothing is
fetched until an attachment is read or pinned: replicas hold the entries that link
attachments, not the attachments.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

import trio

from orbitstore.core.cid import Cid
from orbitstore.core.unixfs import (
    DEFAULT_ATTACHMENT_LIMITS,
    AttachmentLimits,
    FileBuilder,
    FileLayout,
    FileReader,
    ReadProgress,
    block_cid,
    file_size,
)
from orbitstore.errors import (
    AttachmentUnavailableError,
    HashMismatchError,
    InvalidValueError,
    PayloadTooLargeError,
    StorageCorruptedError,
)
from orbitstore.net.transport import BlockFetcher, FetchOptions
from orbitstore.storage.base import NodeStore

_READ_BYTES: Final = 1024 * 1024
_COMMIT_BYTES: Final = 16 * 1024 * 1024

AttachmentSource = (
    bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO | AsyncIterable[bytes]
)
"""What :meth:`Attachments.attach` takes: the bytes, a path, a binary file object, or
an async iterable of bytes (an HTTP request body)."""
ProgressCallback = Callable[[ReadProgress], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentsConfig:
    limits: AttachmentLimits = DEFAULT_ATTACHMENT_LIMITS
    # kubo's classic layout (256 KiB chunks, 174 links): our CIDs equal `ipfs add
    # --cid-version=1 --raw-leaves` for the same bytes.
    layout: FileLayout = field(default_factory=FileLayout)
    # Blocks asked for at once when fetching: 8 x 256 KiB = 2 MiB, under the 4 MiB a
    # Bitswap server (ours, kubo's) sends a peer before it is read.
    window: int = 8
    fetch: FetchOptions = field(default_factory=FetchOptions)

    def __post_init__(self) -> None:
        if not isinstance(self.window, int) or not 1 <= self.window <= 256:
            raise InvalidValueError("AttachmentsConfig.window must be 1 to 256")


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentStats:
    """What reading or pinning one attachment did."""

    cid: Cid
    size: int
    blocks_local: int
    blocks_fetched: int
    bytes_fetched: int


class Attachments:
    """A node's attachments (see the module docstring). ``fetcher`` None: local only."""

    def __init__(
        self,
        store: NodeStore,
        config: AttachmentsConfig | None = None,
        fetcher: BlockFetcher | None = None,
    ) -> None:
        self._store = store
        self.config = config or AttachmentsConfig()
        self.fetcher = fetcher

    # --- writing ----------------------------------------------------------------------------

    async def attach(self, source: AttachmentSource) -> Cid:
        """Store ``source`` as a UnixFS file; returns its root CID. PayloadTooLargeError
        over ``limits.max_size`` (then the root is never written; chunks already stored
        stay as blocks nothing links)."""
        builder = FileBuilder(self.config.layout)
        pending: list[tuple[Cid, bytes]] = []
        async with aclosing(_pieces(source)) as pieces:
            async for piece in pieces:
                self._take(builder, piece, pending)
                if sum(len(b) for _c, b in pending) >= _COMMIT_BYTES:
                    self._put(pending)
                    pending = []
                    await trio.lowlevel.checkpoint()
        root, rest = builder.finish()
        self._put(pending + rest)  # the root is the last block of the last batch
        return root

    def _take(self, builder: FileBuilder, piece: bytes, pending: list[tuple[Cid, bytes]]) -> None:
        if builder.size + len(piece) > self.config.limits.max_size:
            raise PayloadTooLargeError(
                f"attachment over {self.config.limits.max_size} bytes (AttachmentLimits.max_size)"
            )
        pending.extend(builder.feed(piece))

    def _put(self, blocks: list[tuple[Cid, bytes]]) -> None:
        if blocks:
            with self._store.transaction():
                self._store.blocks.put_many(blocks)

    # --- reading ----------------------------------------------------------------------------

    def open(
        self, cid: Cid | str, *, progress: ProgressCallback | None = None
    ) -> AsyncIterator[bytes]:
        """The file's bytes in order, fetched as needed (see the module docstring).
        Raises InvalidAttachmentError (and its limit errors) for blocks that are not a
        file we accept, AttachmentUnavailableError when no peer gives a missing block."""
        return self._read(as_cid(cid), progress, None)

    async def read(self, cid: Cid | str, *, progress: ProgressCallback | None = None) -> bytes:
        """The whole file (see :meth:`open`)."""
        return b"".join([chunk async for chunk in self.open(cid, progress=progress)])

    async def pin(
        self, cid: Cid | str, *, progress: ProgressCallback | None = None
    ) -> AttachmentStats:
        """Make sure every block of the file is in this node's store (fetching what is
        missing), without keeping the bytes in memory."""
        stats: list[AttachmentStats] = []
        async for _chunk in self._read(as_cid(cid), progress, stats):
            pass
        return stats[0]

    def size_hint(self, cid: Cid | str) -> int | None:
        """The file's size from its root block, if the root is here (None otherwise)."""
        root = as_cid(cid)
        block = self._store.blocks.get(block_cid(root))
        return None if block is None else file_size(root, block)

    def is_complete(self, cid: Cid | str) -> bool:
        """Whether every block of the file is here (walks the DAG in the store)."""
        reader = FileReader(as_cid(cid), self.config.limits)
        blocks = self._store.blocks
        while not reader.done:
            wants = reader.wants(self.config.window)
            for want in wants:
                block = blocks.get(want)
                if block is None:
                    return False
                self._receive_local(reader, want, block)
            reader.read()
        return True

    async def _read(
        self,
        cid: Cid,
        progress: ProgressCallback | None,
        stats_out: list[AttachmentStats] | None,
    ) -> AsyncIterator[bytes]:
        reader = FileReader(cid, self.config.limits)
        blocks = self._store.blocks
        local = fetched = fetched_bytes = 0
        while not reader.done:
            wants = reader.wants(self.config.window)
            missing = []
            for want in wants:
                block = blocks.get(want)
                if block is None:
                    missing.append(want)
                else:
                    self._receive_local(reader, want, block)
                    local += 1
            got: dict[Cid, bytes] = {}
            if missing:
                got = await self._fetch(cid, missing)
                for want in missing:
                    reader.receive(want, got[want])
            chunks = reader.read()  # checks structure and limits before anything is kept
            if got:
                self._put(list(got.items()))
                fetched += len(got)
                fetched_bytes += sum(len(b) for b in got.values())
            if progress is not None:
                progress(reader.progress())
            for chunk in chunks:
                yield chunk
            await trio.lowlevel.checkpoint()
        if stats_out is not None:
            stats_out.append(
                AttachmentStats(
                    cid=cid,
                    size=reader.total_bytes or 0,
                    blocks_local=local,
                    blocks_fetched=fetched,
                    bytes_fetched=fetched_bytes,
                )
            )

    @staticmethod
    def _receive_local(reader: FileReader, cid: Cid, block: bytes) -> None:
        try:
            reader.receive(cid, block)
        except HashMismatchError as exc:
            raise StorageCorruptedError(f"stored block {cid} no longer matches its CID") from exc

    async def _fetch(self, root: Cid, missing: list[Cid]) -> dict[Cid, bytes]:
        if self.fetcher is None:
            raise AttachmentUnavailableError(
                f"block {missing[0]} of attachment {root} is not in this node's store, and"
                " the node has no network to fetch it from",
                cid=root,
                missing=missing[0],
            )
        got = await self.fetcher.fetch_blocks(missing, options=self.config.fetch)
        for want in missing:
            if want not in got:
                raise AttachmentUnavailableError(
                    f"no connected peer gave block {want} of attachment {root}"
                    f" ({len(missing) - len(got)} of {len(missing)} blocks asked for are"
                    " missing); connect to a peer that holds it (with Bitswap on) and read"
                    " again",
                    cid=root,
                    missing=want,
                )
        return got


def as_cid(cid: Cid | str) -> Cid:
    """A CID given as a Cid or its text form (InvalidCidError otherwise)."""
    return cid if isinstance(cid, Cid) else Cid.parse(cid)


async def _pieces(source: AttachmentSource) -> AsyncGenerator[bytes, None]:
    """``source`` in pieces of at most 1 MiB."""
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source).cast("B")
        for start in range(0, len(view), _READ_BYTES):
            yield bytes(view[start : start + _READ_BYTES])
        return
    if isinstance(source, AsyncIterable):
        iterator = aiter(source)
        try:
            async for piece in iterator:
                if not isinstance(piece, bytes | bytearray | memoryview):
                    raise InvalidValueError("an attachment stream must yield bytes")
                yield bytes(piece)
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:  # an async generator left early (too large): close it
                await close()
        return
    if isinstance(source, str | os.PathLike):
        path = Path(source)

        def open_file() -> BinaryIO:
            return path.open("rb")

        try:
            handle = await trio.to_thread.run_sync(open_file)
        except OSError as exc:
            raise InvalidValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
        with handle:
            while piece := await _read_piece(handle):
                yield piece
        return
    if not callable(getattr(source, "read", None)):
        raise InvalidValueError(
            f"attach takes bytes, a path or a binary file object, not {type(source).__name__}"
        )
    while piece := await _read_piece(source):
        yield piece


async def _read_piece(handle: BinaryIO) -> bytes:
    try:
        piece = await trio.to_thread.run_sync(handle.read, _READ_BYTES)
    except OSError as exc:
        raise InvalidValueError(f"cannot read the attachment: {exc}") from exc
    if not isinstance(piece, bytes | bytearray):
        raise InvalidValueError("attach needs a file opened in binary mode ('rb')")
    return bytes(piece)
