"""Folding a whole history at once: the state a view reaches from an ancestor-closed set
of entries, computed in memory and written in one go (AS OF snapshots).

How it works
============

:meth:`View.apply` is incremental: every entry reads the registers it touches from the
state, decides, and writes them back, and the views that report conflicts number every
entry in their causal bookkeeping (:mod:`orbitstore.views.causal`) through the state.
Folding a past state for a query that way costs several storage round trips per entry.

A *history* is different: all of it is known up front, it is ancestor-closed (every
parent of an entry is in it) and it comes in total order (:meth:`OpLog.traverse`), so
parents come first and every op sorts after every op before it. The bulk folds below use
that:

* **Ancestry in memory.** :class:`Ancestry` gives entry ``i`` (1-based, in history order)
  the arrival number ``i`` and the interval list of its causal past, exactly as
  :class:`~orbitstore.views.causal.CausalTracker` numbers a fresh view that applies the
  same entries in the same order. The lists are kept exact (never cut); a history whose
  lists would grow past :data:`MAX_EXACT_INTERVALS`, or that lacks a parent (an
  encrypted database's entries this node cannot open), is refused (``None``) and the
  caller folds it with :meth:`View.apply` instead.
* **Registers without reads.** Every write of a register sorts after the ones before it,
  so it becomes the register's winner; the register's other maximal writes are those of
  its previous members that are not in the new entry's causal past (rule M). What is
  left at the end is exactly what the incremental view stores, conflicts and arrival
  numbers included; the rows are then written with one ``executemany``.

The result is checked against the incremental path on random histories
(``tests/test_asof_bulk.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Final, TypeVar

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.views.causal import Intervals, Member, contains, union

K = TypeVar("K", bound=Hashable)

# Interval lists longer than this make a history "too tangled" for the bulk fold (the
# incremental path cuts them and walks the log instead). Histories of a few writers
# stay far below it; it bounds the memory the fold holds (lists x entries).
MAX_EXACT_INTERVALS: Final = 256


class Ancestry:
    """Arrival numbers and exact causal pasts of a history (see the module docstring)."""

    __slots__ = ("_index", "_pasts")

    def __init__(self, pasts: list[Intervals], index: dict[Cid, int]) -> None:
        self._pasts = pasts
        self._index = index

    @classmethod
    def of(cls, entries: Sequence[Entry]) -> Ancestry | None:
        """The ancestry of ``entries`` (in total order), or None when the history is
        not ancestor-closed or too tangled for exact lists."""
        index: dict[Cid, int] = {}
        pasts: list[Intervals] = [()]  # arrival 0 is nobody
        for arrival, entry in enumerate(entries, 1):
            parents = entry.next
            if len(parents) == 1:
                at = index.get(parents[0])
                if at is None:
                    return None
                past = pasts[at]
                last = past[-1]
                if last[1] == arrival - 1:  # a chain: extend the last interval
                    past = (*past[:-1], (last[0], arrival))
                else:
                    past = (*past, (arrival, arrival))
            else:  # a merge (or a root)
                lists: list[Intervals] = [((arrival, arrival),)]
                for p in parents:
                    at = index.get(p)
                    if at is None:
                        return None
                    lists.append(pasts[at])
                past = tuple(union(lists))
            if len(past) > MAX_EXACT_INTERVALS:
                return None
            pasts.append(past)
            index[entry.cid] = arrival
        return cls(pasts, index)

    def past(self, arrival: int) -> Intervals:
        """The causal past of entry ``arrival`` (itself included), as intervals."""
        return self._pasts[arrival]


class Write:
    """One write of a register in a history: its entry (``arrival`` in history order),
    its op index in the entry, and what it wrote (the view's parsed op)."""

    __slots__ = ("arrival", "entry", "index", "op")

    def __init__(self, arrival: int, entry: Entry, index: int, op: Any) -> None:
        self.arrival = arrival
        self.entry = entry
        self.index = index
        self.op = op

    @property
    def member(self) -> Member:
        """The member the incremental views store for this write."""
        e = self.entry
        return Member((e.clock, e.writer, bytes(e.cid), self.index), self.arrival)


def fold_registers(
    entries: Sequence[Entry],
    ancestry: Ancestry,
    writes_of: Callable[[Entry], Iterable[tuple[K, int, Any]] | None],
) -> dict[K, list[Write]]:
    """The maximal writes of every register the history writes, oldest first (so the
    last is the winner and the others are its conflicts, as the incremental views keep
    them). ``writes_of`` gives an entry's ``(register, op index, op)`` — at most one per
    register, the entry's last op on it — or None for an entry the view ignores."""
    registers: dict[K, list[Write]] = {}
    get = registers.get
    pasts = ancestry._pasts  # ancestry.past(arrival), without a call per entry
    for arrival, entry in enumerate(entries, 1):
        writes = writes_of(entry)
        if not writes:
            continue
        past = pasts[arrival]
        low = past[0][0] if len(past) == 1 else 0  # a chain: the past is [low, arrival]
        for key, index, op in writes:
            new = Write(arrival, entry, index, op)
            found = get(key)
            if found is None:
                registers[key] = [new]
            elif low and len(found) == 1:
                # rule M, the common case: the one member is in the past or is not
                if found[0].arrival >= low:
                    found[0] = new
                else:
                    found.append(new)
            else:  # rule M: members in the new entry's past leave the set
                kept = [w for w in found if not contains(past, w.arrival)]
                kept.append(new)
                registers[key] = kept
    return registers
