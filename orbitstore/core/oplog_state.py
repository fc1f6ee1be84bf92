"""The op-log's in-memory bookkeeping of held and refused entries (see
:mod:`orbitstore.core.oplog`, Rules 1, 2 and 5): drafts of the held, waiting and invalid
sets that one call changes copy-on-write, and the apply loop over them."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.order import next_clock
from orbitstore.errors import ClockError, InvalidDataError, InvalidParentsError

# CIDs remembered as invalid so their descendants are rejected without re-checking.
MAX_INVALID_REMEMBERED = 10_000


@dataclass(frozen=True, slots=True)
class Rejection:
    cid: Cid
    error: InvalidDataError


@dataclass(frozen=True, slots=True)
class LogSnapshot:
    """The in-memory state of an :class:`OpLog` at one moment (see
    :meth:`OpLog.snapshot`). Its containers are never mutated by the log."""

    heads: Mapping[Cid, int]
    pending: Mapping[Cid, Entry]
    waiting: Mapping[Cid, frozenset[Cid] | set[Cid]]
    invalid: Mapping[Cid, None]


class Draft:
    """The held, waiting and invalid sets as one call changes them: copied on the first
    change, so the log's own containers stay untouched until the call commits."""

    __slots__ = ("_copied", "_own_sets", "invalid", "max_pending", "pending", "waiting")

    def __init__(
        self,
        *,
        pending: dict[Cid, Entry],
        waiting: dict[Cid, set[Cid]],
        invalid: dict[Cid, None],
        max_pending: int,
    ) -> None:
        self.pending = pending
        self.waiting = waiting
        self.invalid = invalid
        self.max_pending = max_pending
        self._copied: set[str] = set()
        self._own_sets: set[Cid] = set()  # waiting sets already copied by this draft

    @property
    def changed(self) -> bool:
        return bool(self._copied)

    def _own(self, name: str) -> None:
        if name not in self._copied:
            self._copied.add(name)
            setattr(self, name, dict(getattr(self, name)))

    def hold(self, entry: Entry, missing: Sequence[Cid]) -> bool:
        """Hold ``entry`` until ``missing`` arrive; False if the pending set is full."""
        cid = entry.cid
        if cid not in self.pending:
            if len(self.pending) >= self.max_pending:
                return False
            self._own("pending")
            self.pending[cid] = entry
        self._own("waiting")
        for parent in missing:
            waiters = self.waiting.get(parent)
            if parent not in self._own_sets:
                waiters = self.waiting[parent] = set(waiters or ())
                self._own_sets.add(parent)
            assert waiters is not None
            waiters.add(cid)
        return True

    def release(self, cid: Cid) -> Iterable[Cid]:
        """Forget who waits on ``cid`` (it is applied or refused); return them."""
        if cid not in self.waiting:
            return ()
        self._own("waiting")
        return self.waiting.pop(cid)

    def drop_pending(self, cid: Cid) -> None:
        if cid in self.pending:
            self._own("pending")
            del self.pending[cid]

    def unhold(self, cid: Cid) -> None:
        """Drop a held entry, and its place in the lists of entries waiting on parents
        (else ``needed`` would keep asking for parents nobody needs any more)."""
        entry = self.pending.get(cid)
        if entry is None:
            return
        self.drop_pending(cid)
        for parent in entry.next:
            waiters = self.waiting.get(parent)
            if waiters is not None and cid in waiters:
                self._own("waiting")
                if parent not in self._own_sets:
                    waiters = self.waiting[parent] = set(waiters)
                    self._own_sets.add(parent)
                waiters.discard(cid)
                if not waiters:
                    del self.waiting[parent]

    def remember_invalid(self, cid: Cid) -> None:
        self._own("invalid")
        self.invalid[cid] = None
        if len(self.invalid) > MAX_INVALID_REMEMBERED:
            self.invalid.pop(next(iter(self.invalid)))

    def reject(self, cid: Cid, error: InvalidDataError, out: list[Rejection]) -> None:
        """Refuse ``cid`` for good, and every held entry that descends from it."""
        work = [(cid, error)]
        while work:  # a worklist, not recursion: a held chain can be 100k entries long
            cid, error = work.pop()
            out.append(Rejection(cid, error))
            self.remember_invalid(cid)
            for child in self.release(cid):
                if child in self.pending:
                    self.unhold(child)
                    work.append((child, InvalidParentsError(f"parent {cid} is invalid")))


def apply_queue(
    queue: deque[Entry],
    draft: Draft,
    clock_of: Callable[[Cid], int | None],
    rejected: list[Rejection],
    *,
    admit: Callable[[Entry], InvalidDataError | None] | None = None,
) -> tuple[list[Entry], list[Cid]]:
    """Apply what can be applied of ``queue`` (Rules 1-2), in the draft only: returns the
    entries to store (parents first) and those dropped because the pending set is full.
    ``admit`` (capabilities access) decides an entry once its parents are known."""
    batch: dict[Cid, int] = {}  # applied in this call -> clock
    added: list[Entry] = []
    dropped: list[Cid] = []
    while queue:
        entry = queue.popleft()
        cid = entry.cid
        if cid in batch:
            continue
        clocks: list[int] = []
        missing: list[Cid] = []
        bad_parent: Cid | None = None
        for parent in entry.next:
            c = batch.get(parent)
            if c is None:
                c = clock_of(parent)
            if c is not None:
                clocks.append(c)
            elif parent in draft.invalid:
                bad_parent = parent
                break
            else:
                missing.append(parent)
        if bad_parent is not None:
            draft.unhold(cid)
            draft.reject(cid, InvalidParentsError(f"parent {bad_parent} is invalid"), rejected)
            continue
        if missing:
            if not draft.hold(entry, missing):
                dropped.append(cid)
            continue
        draft.drop_pending(cid)
        expected = next_clock(clocks)
        if entry.clock != expected:
            draft.reject(
                cid,
                ClockError(f"entry has clock {entry.clock}; its parents give {expected}"),
                rejected,
            )
            continue
        if admit is not None:
            error = admit(entry)
            if error is not None:
                draft.reject(cid, error, rejected)
                continue
        batch[cid] = entry.clock
        added.append(entry)
        for child in draft.release(cid):
            held = draft.pending.get(child)
            if held is not None:
                queue.append(held)
    return added, dropped
