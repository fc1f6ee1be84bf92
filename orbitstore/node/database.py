"""A database handle: one op-log, its manifest, and the node's storage around it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import trio

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.manifest import Manifest, format_address
from orbitstore.core.oplog import OpLog, ReceiveResult
from orbitstore.errors import ClosedError
from orbitstore.node.verify import MIN_BLOCKS_FOR_THREADS, verify_blocks
from orbitstore.storage.base import NodeStore


class Database:
    """An append-only log database (``type="log"``); the base of the typed databases.

    Writes are ``async`` and durable when they return. Reads are plain methods: they
    read the local SQLite file and never wait on the network.
    """

    def __init__(
        self,
        *,
        manifest: Manifest,
        db: Cid,
        log: OpLog,
        store: NodeStore,
        timestamps: bool = True,
        verify_threads: int = 1,
    ) -> None:
        self.manifest = manifest
        self.cid = db
        self._log = log
        self._store = store
        self._timestamps = timestamps
        self._verify_threads = verify_threads
        self._lock = trio.Lock()
        self._closed = False

    # -- identity -------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``/orbitstore/<manifest cid>``: give this to peers to open the same database."""
        return format_address(self.cid)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def type(self) -> str:
        return self.manifest.type

    @property
    def log(self) -> OpLog:
        return self._log

    # -- writing --------------------------------------------------------------------------

    def _ts(self) -> int | None:
        return int(time.time() * 1000) if self._timestamps else None

    async def append(self, payload: Any) -> Entry:
        """Append one entry; returns it once it is committed."""
        return (await self.append_many([payload]))[0]

    async def append_many(self, payloads: Iterable[Any]) -> list[Entry]:
        """Append several entries in one transaction (one commit for all)."""
        self._check()
        async with self._lock:
            with self._transaction():
                return self._log.append_many(payloads, ts=self._ts())

    async def receive(self, blocks: Iterable[tuple[Cid, bytes]]) -> ReceiveResult:
        """Verify and apply entry blocks from elsewhere (a peer, a file).

        Batches of :data:`~orbitstore.node.verify.MIN_BLOCKS_FOR_THREADS` or more are
        verified on ``NodeConfig.verify_threads`` worker threads; the result is the same
        as verifying them one by one.
        """
        self._check()
        blocks = list(blocks)
        async with self._lock:
            if len(blocks) < MIN_BLOCKS_FOR_THREADS:
                with self._transaction():
                    return self._log.receive(blocks)
            log = self._log
            fresh = [(cid, block) for cid, block in blocks if not log.has(cid)]
            entries, rejected = await verify_blocks(
                fresh, threads=self._verify_threads, limits=log.limits
            )
            with self._transaction():
                result = log.receive_entries(entries)
        if not rejected:
            return result
        return ReceiveResult(
            added=result.added,
            rejected=tuple(rejected) + result.rejected,
            needed=result.needed,
            dropped=result.dropped,
        )

    async def receive_entries(self, entries: Iterable[Entry]) -> ReceiveResult:
        """Apply entries already verified by :meth:`Entry.from_block`."""
        self._check()
        async with self._lock:
            with self._transaction():
                return self._log.receive_entries(entries)

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Group many writes into one transaction, committed when the block exits."""
        self._check()
        with self._store.transaction():
            yield

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            with self._store.transaction():
                yield
        except BaseException:
            self._log.reload()  # the rollback undid what the log thinks it stored
            raise

    # -- reading --------------------------------------------------------------------------

    @property
    def heads(self) -> frozenset[Cid]:
        return self._log.heads

    def __len__(self) -> int:
        return len(self._log)

    def get(self, cid: Cid | str) -> Entry | None:
        """The entry with this CID, if this log holds it."""
        return self._log.get(Cid.parse(cid) if isinstance(cid, str) else cid)

    def entries(self, *, reverse: bool = False, limit: int | None = None) -> Iterator[Entry]:
        """Entries in total order (oldest first; newest first with ``reverse``)."""
        self._check()
        return self._log.traverse(reverse=reverse, limit=limit)

    def __iter__(self) -> Iterator[Entry]:
        return self.entries()

    # -- lifecycle ------------------------------------------------------------------------

    async def close(self) -> None:
        self._closed = True

    def _check(self) -> None:
        if self._closed:
            raise ClosedError(f"database {self.name!r} is closed")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.address}>"
