"""A database handle's write path: appends, received blocks and entries.

:class:`Database` keeps the public methods (``append``, ``append_many``, ``receive``,
``receive_entries``) with their documentation; this service does the work, each write
one frame of the node's write coordinator (node/writes.py): the write lock, a
transaction that memory follows, and changes published once it commits.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.oplog import PayloadSealer, ReceiveResult
from orbitstore.node.verify import MIN_BLOCKS_FOR_THREADS, Verifier, receive_pipelined

if TYPE_CHECKING:
    from orbitstore.node.database import Database


class DatabaseWrites:
    """What one handle writes: built by :class:`Database` with itself (the frame's
    participant, whose log, view and membership the writes go through)."""

    __slots__ = ("_db", "_timestamps", "verifier")

    def __init__(self, database: Database, *, verifier: Verifier, timestamps: bool) -> None:
        self._db = database
        self.verifier = verifier
        self._timestamps = timestamps

    def _ts(self) -> int | None:
        return int(time.time() * 1000) if self._timestamps else None

    async def append(self, payloads: Iterable[Any], seal: PayloadSealer | None) -> list[Entry]:
        db = self._db
        db._check()
        async with db._write() as frame:
            payloads = db._members.link_payloads(db, payloads)  # a linked device's first write
            entries = db.log.append_many(payloads, ts=self._ts(), seal=seal)
            frame.publish(db, db._apply(entries, local=True))
        return entries

    async def receive(self, blocks: Iterable[tuple[Cid, bytes]]) -> ReceiveResult:
        db = self._db
        db._check()
        blocks = list(blocks)
        if len(blocks) < MIN_BLOCKS_FOR_THREADS:
            async with db._write() as frame:
                result = db.log.receive(blocks)
                frame.publish(db, db._apply(result.added, local=False))
            return result
        # Under the lock: another context's open batch may hold some of these entries
        # uncommitted, and roll them back (this receive must then store them).
        async with db._lock:
            unknown = set(db.log.missing(cid for cid, _ in blocks))
        fresh = [(cid, block) for cid, block in blocks if cid in unknown]
        return await receive_pipelined(
            fresh, apply=self.receive_entries, verifier=self.verifier, limits=db.log.limits
        )

    async def receive_entries(
        self, entries: Iterable[Entry], *, all_or_nothing: bool = False
    ) -> ReceiveResult:
        db = self._db
        db._check()
        async with db._write() as frame:
            result = db.log.receive_entries(entries, all_or_nothing=all_or_nothing)
            frame.publish(db, db._apply(result.added, local=False))
        return result


__all__ = ["DatabaseWrites"]
