"""In-memory storage, for tests and conformance checks. Nothing survives the process."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.errors import ClosedError, HashMismatchError


def check_block(cid: Cid, data: bytes) -> None:
    if Cid.for_block(data, cid.codec) != cid:
        raise HashMismatchError(f"block does not hash to {cid}")


class _Journal:
    """Undo steps of the open transaction (and its savepoints), newest last. Recording
    costs one closure per change, so transactions roll back without copying the store."""

    def __init__(self) -> None:
        self.depth = 0
        self.steps: list[Callable[[], object]] = []

    def record(self, undo: Callable[[], object]) -> None:
        if self.depth:
            self.steps.append(undo)

    def undo_to(self, mark: int) -> None:
        while len(self.steps) > mark:
            self.steps.pop()()


class MemoryBlockStore:
    def __init__(self) -> None:
        self._blocks: dict[Cid, bytes] = {}
        self._journal = _Journal()

    def _set(self, cid: Cid, data: bytes) -> None:
        old = self._blocks.get(cid)
        self._blocks[cid] = data
        if old is None:
            self._journal.record(lambda: self._blocks.pop(cid, None))

    def get(self, cid: Cid) -> bytes | None:
        return self._blocks.get(cid)

    def has(self, cid: Cid) -> bool:
        return cid in self._blocks

    def put(self, cid: Cid, data: bytes) -> None:
        check_block(cid, data)
        self._set(cid, bytes(data))

    def put_many(self, blocks: Iterable[tuple[Cid, bytes]]) -> None:
        items = list(blocks)
        for cid, data in items:
            check_block(cid, data)
        for cid, data in items:
            self._set(cid, bytes(data))

    def delete(self, cid: Cid) -> None:
        old = self._blocks.pop(cid, None)
        if old is not None:
            self._journal.record(lambda: self._blocks.__setitem__(cid, old))

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
        #: Set when a rollback removed entries (the store then drops the log's views).
        self.rolled_back = False
        self._frontiers: dict[Cid, tuple[tuple[Cid, ...], bool]] = {}

    def get_frontiers(self, cids: Iterable[Cid]) -> dict[Cid, tuple[Cid, ...]]:
        got = self._frontiers
        return {c: got[c][0] for c in cids if c in got}

    def put_frontiers(self, rows: Iterable[tuple[Cid, tuple[Cid, ...], bool]]) -> None:
        added = [c for c, _, _ in rows if c not in self._frontiers]
        for cid, frontier, acl in rows:
            self._frontiers.setdefault(cid, (frontier, acl))
        if added:
            self._blocks._journal.record(lambda: [self._frontiers.pop(c, None) for c in added])

    def acl_entries(self) -> list[Cid]:
        return [c for c, (_, acl) in self._frontiers.items() if acl]

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
        arrived = len(self._arrivals)
        for e in entries:
            if e.cid in self._clocks:
                continue
            self._blocks._set(e.cid, e.block)
            self._clocks[e.cid] = e.clock
            self._arrivals.append(e.cid)
            bisect.insort(self._order, e.order_key)
        if len(self._arrivals) > arrived:
            self._blocks._journal.record(lambda: self._forget_since(arrived))

    def _forget_since(self, arrived: int) -> None:
        """Undo :meth:`add_entries` back to ``arrived`` entries (a rollback)."""
        added = [c for c in self._arrivals[arrived:] if c is not None]
        gone = {bytes(c) for c in added}
        for cid in added:
            del self._clocks[cid]
        del self._arrivals[arrived:]
        self._order = [k for k in self._order if k[2] not in gone]
        self.rolled_back = True

    def set_heads(self, heads: Mapping[Cid, int]) -> None:
        old, self._heads = self._heads, dict(heads)
        self._blocks._journal.record(lambda: setattr(self, "_heads", old))

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
        undo = (
            {c: self._clocks[c] for c in gone},
            {c: self._blocks._blocks[c] for c in gone if c in self._blocks._blocks},
            self._order,
            self._arrivals,
        )
        fronts = {c: self._frontiers.pop(c) for c in gone if c in self._frontiers}
        if fronts:
            self._blocks._journal.record(lambda: self._frontiers.update(fronts))
        for cid in gone:
            del self._clocks[cid]
            self._blocks._blocks.pop(cid, None)
        self._order = [k for k in self._order if Cid(k[2]) not in gone]
        # Arrival numbers stay: a removed entry leaves a hole, as in SQLite.
        self._arrivals = [None if c in gone else c for c in self._arrivals]
        if gone:
            self._blocks._journal.record(lambda: self._unremove(*undo))
        return len(gone)

    def _unremove(
        self,
        clocks: dict[Cid, int],
        blocks: dict[Cid, bytes],
        order: list[tuple[int, str, bytes]],
        arrivals: list[Cid | None],
    ) -> None:
        """Undo :meth:`remove_entries` (a rollback; later changes were undone first)."""
        self._clocks.update(clocks)
        self._blocks._blocks.update(blocks)
        self._order, self._arrivals = order, arrivals

    def iter_entries(
        self, *, reverse: bool = False, limit: int | None = None, max_clock: int | None = None
    ) -> Iterator[tuple[Cid, bytes]]:
        order = self._order
        if max_clock is not None:  # keys with clock <= max_clock: those before (max_clock+1,)
            order = order[: bisect.bisect_left(order, (max_clock + 1,))]
        keys = reversed(order) if reverse else iter(list(order))
        for n, (_, _, raw) in enumerate(keys):
            if limit is not None and n >= limit:
                return
            cid = Cid(raw)
            block = self._blocks.get(cid)
            assert block is not None
            yield cid, block

    def iter_entry_rows(self, *, max_clock: int | None = None) -> list[tuple[bytes, bytes]]:
        """:class:`~orbitstore.storage.base.EntryRows`: ``(cid bytes, block)`` of every
        stored entry in total order (clock at most ``max_clock``), no :class:`Cid` built."""
        order = self._order
        if max_clock is not None:
            order = order[: bisect.bisect_left(order, (max_clock + 1,))]
        blocks = self._blocks._blocks
        return [(raw, blocks[Cid._trusted(raw)]) for _, _, raw in order]


class MemoryStore:
    """A :class:`~orbitstore.storage.base.NodeStore` in memory.

    Transactions roll back (nested ones as savepoints) by undoing a journal of changes:
    blocks, entries, heads, names and checkpoints. View states are objects the views
    change in place, so they cannot be undone: a rollback that removes entries of a log
    drops that log's view states and checkpoints instead, and a view opened on it again
    replays the log (the database handle does so after a rolled-back write)."""

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
        journal = self._blocks._journal
        mark = len(journal.steps)
        journal.depth += 1
        try:
            yield
        except BaseException:
            journal.undo_to(mark)
            self._drop_rolled_back_views()
            raise
        finally:
            journal.depth -= 1
            if not journal.depth:
                journal.steps.clear()

    def _drop_rolled_back_views(self) -> None:
        for db, log in self._logs.items():
            if log.rolled_back:
                log.rolled_back = False
                for state in [k for k in self.view_states if k[1] == db]:
                    del self.view_states[state]
                for checkpoint in [k for k in self._checkpoints if k[0] == db]:
                    del self._checkpoints[checkpoint]

    def set_name(self, name: str, db: Cid) -> None:
        old = self._names.get(name)
        self._names[name] = db
        self._blocks._journal.record(
            lambda: self._names.pop(name) if old is None else self._names.__setitem__(name, old)
        )

    def get_name(self, name: str) -> Cid | None:
        return self._names.get(name)

    def names(self) -> dict[str, Cid]:
        return dict(self._names)

    def get_checkpoint(self, db: Cid, view: str) -> int:
        return self._checkpoints.get((db, view), 0)

    def set_checkpoint(self, db: Cid, view: str, seq: int) -> None:
        key = (db, view)
        old = self._checkpoints.get(key)
        self._checkpoints[key] = seq
        self._blocks._journal.record(
            lambda: (
                self._checkpoints.pop(key, None)
                if old is None
                else self._checkpoints.__setitem__(key, old)
            )
        )

    def databases(self) -> list[Cid]:
        return list(self._logs)

    def close(self) -> None:
        self._closed = True

    def _check(self) -> None:
        if self._closed:
            raise ClosedError("the store is closed")
