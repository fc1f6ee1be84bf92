"""Storage interfaces: a content-addressed block store and a node store of logs.

Every implementation passes the conformance battery in
:mod:`orbitstore.testing.storage_conformance`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from orbitstore.core.capability_log import AclStore
from orbitstore.core.cid import Cid
from orbitstore.core.oplog import LogStore


class BlockStore(Protocol):
    """Blocks by CID. ``put`` checks that the bytes hash to the CID."""

    def get(self, cid: Cid) -> bytes | None: ...

    def has(self, cid: Cid) -> bool: ...

    def put(self, cid: Cid, data: bytes) -> None: ...

    def put_many(self, blocks: Iterable[tuple[Cid, bytes]]) -> None: ...

    def delete(self, cid: Cid) -> None: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Cid]: ...


class SeqLogStore(LogStore, AclStore, Protocol):
    """A log store that also numbers entries in local arrival order (``seq`` from 1),
    and keeps the ACL frontiers of capabilities logs."""

    def last_seq(self) -> int:
        """The arrival number of the newest entry (0 when empty)."""
        ...

    def iter_since(self, seq: int) -> Iterator[tuple[int, Cid, bytes]]:
        """Entries that arrived after ``seq``, in arrival order (a causal order)."""
        ...

    def missing_blocks(self) -> list[Cid]:
        """Entries whose block is gone (``orbitstore check``)."""
        ...

    def remove_entries(self, cids: Iterable[Cid]) -> int:
        """Forget these entries (repair: the caller then sets heads and rebuilds views)."""
        ...


@runtime_checkable
class EntryRows(Protocol):
    """A log store that hands out its entries raw, for readers of a whole history (AS OF
    snapshots): no :class:`Cid` per row, no decoding."""

    def iter_entry_rows(self, *, max_clock: int | None = None) -> list[tuple[bytes, bytes]]:
        """``(cid bytes, block)`` of every stored entry in total order ``(clock, writer,
        cid)``; with ``max_clock``, only those whose clock is at most that."""
        ...


class NodeStore(Protocol):
    """All a node keeps: blocks, and per database its entries, heads and local name."""

    @property
    def blocks(self) -> BlockStore: ...

    def log_store(self, db: Cid) -> SeqLogStore: ...

    def transaction(self) -> AbstractContextManager[None]:
        """Group writes: all of them are committed together, or none is. Nestable."""
        ...

    def set_name(self, name: str, db: Cid) -> None: ...

    def get_name(self, name: str) -> Cid | None: ...

    def names(self) -> dict[str, Cid]: ...

    def get_checkpoint(self, db: Cid, view: str) -> int:
        """The ``seq`` up to which ``view`` of ``db`` reflects the log (0: nothing)."""
        ...

    def set_checkpoint(self, db: Cid, view: str, seq: int) -> None: ...

    def databases(self) -> list[Cid]:
        """Every database that has a log here."""
        ...

    def close(self) -> None: ...
