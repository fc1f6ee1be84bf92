"""In-memory storage, for tests and conformance checks. Nothing survives the process."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.errors import ClosedError, HashMismatchError


def check_block(cid: Cid, data: bytes) -> None:
    if Cid.for_block(data, cid.codec) != cid:
        raise HashMismatchError(f"block does not hash to {cid}")


class MemoryBlockStore:
    def __init__(self) -> None:
        self._blocks: dict[Cid, bytes] = {}

    def get(self, cid: Cid) -> bytes | None:
        return self._blocks.get(cid)

    def has(self, cid: Cid) -> bool:
        return cid in self._blocks

    def put(self, cid: Cid, data: bytes) -> None:
        check_block(cid, data)
        self._blocks[cid] = bytes(data)

    def put_many(self, blocks: Iterable[tuple[Cid, bytes]]) -> None:
        items = list(blocks)
        for cid, data in items:
            check_block(cid, data)
        for cid, data in items:
            self._blocks[cid] = bytes(data)

    def delete(self, cid: Cid) -> None:
        self._blocks.pop(cid, None)

    def __len__(self) -> int:
        return len(self._blocks)

    def __iter__(self) -> Iterator[Cid]:
        return iter(list(self._blocks))


class MemoryLogStore:
    def __init__(self, blocks: MemoryBlockStore) -> None:
        self._blocks = blocks
        self._clocks: dict[Cid, int] = {}
        self._order: list[tuple[int, str, bytes]] = []
        self._heads: dict[Cid, int] = {}
        self._arrivals: list[Cid | None] = []  # index + 1 = seq; None: removed

    def get_clock(self, cid: Cid) -> int | None:
        return self._clocks.get(cid)

    def get_clocks(self, cids: Iterable[Cid]) -> dict[Cid, int]:
        clocks = self._clocks
        return {c: clocks[c] for c in cids if c in clocks}

    def get_block(self, cid: Cid) -> bytes | None:
        return self._blocks.get(cid) if cid in self._clocks else None

    def get_heads(self) -> dict[Cid, int]:
        return dict(self._heads)

    def add_entries(self, entries: Sequence[Entry]) -> None:
        for e in entries:
            if e.cid in self._clocks:
                continue
            self._blocks._blocks[e.cid] = e.block
            self._clocks[e.cid] = e.clock
            self._arrivals.append(e.cid)
            bisect.insort(self._order, e.order_key)

    def set_heads(self, heads: Mapping[Cid, int]) -> None:
        self._heads = dict(heads)

    def count(self) -> int:
        return len(self._clocks)

    def last_seq(self) -> int:
        return len(self._arrivals)

    def iter_since(self, seq: int) -> Iterator[tuple[int, Cid, bytes]]:
        for n in range(seq, len(self._arrivals)):
            cid = self._arrivals[n]
            if cid is None:
                continue
            block = self._blocks.get(cid)
            assert block is not None
            yield n + 1, cid, block

    def missing_blocks(self) -> list[Cid]:
        return [c for c in self._arrivals if c is not None and c not in self._blocks._blocks]

    def remove_entries(self, cids: Iterable[Cid]) -> int:
        gone = set(cids) & self._clocks.keys()
        for cid in gone:
            del self._clocks[cid]
            self._blocks._blocks.pop(cid, None)
        self._order = [k for k in self._order if Cid(k[2]) not in gone]
        # Arrival numbers stay: a removed entry leaves a hole, as in SQLite.
        self._arrivals = [None if c in gone else c for c in self._arrivals]
        return len(gone)

    def iter_entries(
        self, *, reverse: bool = False, limit: int | None = None
    ) -> Iterator[tuple[Cid, bytes]]:
        keys = reversed(self._order) if reverse else iter(list(self._order))
        for n, (_, _, raw) in enumerate(keys):
            if limit is not None and n >= limit:
                return
            cid = Cid(raw)
            block = self._blocks.get(cid)
            assert block is not None
            yield cid, block


class MemoryStore:
    """A :class:`~orbitstore.storage.base.NodeStore` in memory. Transactions are no-ops
    beyond nesting bookkeeping: there is nothing to make durable."""

    def __init__(self) -> None:
        self._blocks = MemoryBlockStore()
        self._logs: dict[Cid, MemoryLogStore] = {}
        self._names: dict[str, Cid] = {}
        self._checkpoints: dict[tuple[Cid, str], int] = {}
        #: View states by (kind, db), kept for nodes reopened on this store.
        self.view_states: dict[tuple[str, Cid], object] = {}
        self._closed = False

    @property
    def blocks(self) -> MemoryBlockStore:
        return self._blocks

    def log_store(self, db: Cid) -> MemoryLogStore:
        self._check()
        log = self._logs.get(db)
        if log is None:
            log = self._logs[db] = MemoryLogStore(self._blocks)
        return log

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._check()
        yield

    def set_name(self, name: str, db: Cid) -> None:
        self._names[name] = db

    def get_name(self, name: str) -> Cid | None:
        return self._names.get(name)

    def names(self) -> dict[str, Cid]:
        return dict(self._names)

    def get_checkpoint(self, db: Cid, view: str) -> int:
        return self._checkpoints.get((db, view), 0)

    def set_checkpoint(self, db: Cid, view: str, seq: int) -> None:
        self._checkpoints[(db, view)] = seq

    def databases(self) -> list[Cid]:
        return list(self._logs)

    def close(self) -> None:
        self._closed = True

    def _check(self) -> None:
        if self._closed:
            raise ClosedError("the store is closed")
