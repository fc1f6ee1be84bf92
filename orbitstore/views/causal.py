"""Causal bookkeeping for views that report conflicts: "is entry ``a`` in the causal
past of entry ``b``?", answered incrementally, without walking the log.

How it works
============

A register (a keyvalue key, a document, a document field) keeps its *maximal writes*:
the writes made by entries that are in the causal past of no other entry that wrote the
register. The greatest of them (by the total order) is the visible value; the others are
its *conflicts*. The set is a function of the set of entries, and it is kept
incrementally: entries reach a view parents first, so a new write ``w`` is never in the
past of a write already applied; it joins the set, and every member that is in the past
of ``w`` leaves it (rule M). Whatever the arrival order, the result is the set of maximal
writes, so every replica agrees and a rebuild equals the incremental state.

Rule M needs ancestry. Walking the log back from ``w`` until every member is found would
cost the whole history between an old write and a new one, so the view numbers the
entries it applies and keeps, for each, its causal past in those numbers. The numbers
are node-local (they differ between replicas); only the answers they give are the same.

* ``arrival``: 1, 2, 3 ... in the order this view applied entries. It is a causal order,
  so every ancestor of an entry has a smaller number.
* ``past``: the arrival numbers of the entry and all its ancestors, as sorted disjoint
  intervals: the union of its parents' intervals plus its own number. Histories are
  mostly prefixes of the arrival order, so this is one interval ``[1, n]`` for an entry
  written on a state that held everything, and a few more for entries of a concurrent
  branch (``[1, fork] + [branch start, n]``). It is exact.

``m`` is in the past of the new entry ``w`` iff ``arrival(m)`` is in the ``past`` of one
of ``w``'s parents: a binary search per parent, whatever the age of ``m``.

A list longer than :data:`MAX_INTERVALS` (arrivals of many branches interleaved) is cut
to its first and last intervals and marked inexact: it still proves "yes", and "no" is
then decided by walking back from that entry, newest clock first, through the log (the
injected lookup). The walk stops at every entry whose list is exact (it decides both
ways), below entries that arrived before ``m`` and below ``m``'s clock.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeAlias

from orbitstore.core.cid import Cid
from orbitstore.core.dagjson import to_json
from orbitstore.core.entry import Entry
from orbitstore.views.base import Conflict

EntryLookup: TypeAlias = Callable[[Cid], Entry | None]
"""An entry of the view's log by CID (None if the log does not hold it)."""

Intervals: TypeAlias = tuple[tuple[int, int], ...]
"""Sorted, disjoint, non-adjacent ``(low, high)`` ranges of arrival numbers."""

Causal: TypeAlias = tuple[int, Intervals, bool]
"""``(arrival, past, exact)`` of an applied entry."""

# Intervals kept per entry. Beyond this the list is cut (and marked inexact): lookups stay
# O(log) and a row stays small, at the price of a walk for the rare "no" answers through it.
MAX_INTERVALS: Final = 32


class CausalState(Protocol):
    """Where a view keeps the numbers of this module (SQLite or memory)."""

    def causal_counter(self) -> int:
        """The last arrival number given out (0: none)."""
        ...

    def causal_get(self, cids: Collection[bytes]) -> dict[bytes, Causal]:
        """``(arrival, past, exact)`` of the given entries (unknown ones left out)."""
        ...

    def causal_save(self, counter: int, rows: Iterable[tuple[bytes, Causal]]) -> None:
        """Store the new counter and the rows of newly applied entries."""
        ...


def union(lists: Iterable[Intervals]) -> list[tuple[int, int]]:
    """The union of interval lists, merged."""
    out: list[tuple[int, int]] = []
    for low, high in sorted(pair for lst in lists for pair in lst):
        if out and low <= out[-1][1] + 1:
            if high > out[-1][1]:
                out[-1] = (out[-1][0], high)
        else:
            out.append((low, high))
    return out


def contains(past: Intervals, arrival: int) -> bool:
    i = bisect.bisect_right(past, arrival, key=lambda iv: iv[0]) - 1
    return i >= 0 and past[i][1] >= arrival


@dataclass(frozen=True, slots=True)
class Member:
    """One maximal write of a register: the op's place in the total order
    ``(clock, writer, cid bytes, op index)`` and its entry's arrival number."""

    stamp: tuple[int, str, bytes, int]
    arrival: int

    @property
    def cid(self) -> bytes:
        return self.stamp[2]

    @property
    def clock(self) -> int:
        return self.stamp[0]


@dataclass(slots=True)
class Step:
    """One entry being applied: decides which members are in its causal past."""

    entry: Entry
    arrival: int
    parents: dict[bytes, Causal | None]
    _tracker: CausalTracker = field(repr=False)
    _known: dict[bytes, bool] = field(default_factory=dict, repr=False)

    def member(self, index: int) -> Member:
        """The member a write by op ``index`` of this entry makes."""
        e = self.entry
        return Member((e.clock, e.writer, bytes(e.cid), index), self.arrival)

    def superseded(self, members: Iterable[Member]) -> set[Member]:
        """Those of ``members`` that are in this entry's causal past (or are earlier ops
        of this same entry)."""
        own = bytes(self.entry.cid)
        done: set[Member] = set()
        open_: list[Member] = []
        for m in members:
            known = self._known.get(m.cid)
            if known is None:
                known = self._decide(m, own)
                if known is not None:
                    self._known[m.cid] = known
            if known is None:
                open_.append(m)
            elif known:
                done.add(m)
        if open_:
            found = self._tracker.walk(self.entry.next, open_)
            for m in open_:
                self._known[m.cid] = m.cid in found
                if m.cid in found:
                    done.add(m)
        return done

    def _decide(self, m: Member, own: bytes) -> bool | None:
        """True/False when the parents' lists decide, None when a walk must."""
        if m.cid == own or m.cid in self.parents:
            return True
        exact = True
        for info in self.parents.values():
            if info is None:
                exact = False
            elif contains(info[1], m.arrival):
                return True
            elif not info[2]:
                exact = False
        return False if exact else None


class CausalTracker:
    """Numbers entries as a view applies them (see the module docstring). Call
    :meth:`begin` and :meth:`end` around each call of the view's ``apply``."""

    def __init__(self, state: CausalState, lookup: EntryLookup) -> None:
        self._state = state
        self._lookup = lookup
        self._pending: dict[bytes, Causal] = {}
        self._counter = 0

    def begin(self) -> None:
        self._counter, self._pending = self._state.causal_counter(), {}

    def end(self) -> None:
        if self._pending:
            self._state.causal_save(self._counter, self._pending.items())
        self._pending = {}

    def _get(self, cids: Collection[bytes]) -> dict[bytes, Causal]:
        found = {c: self._pending[c] for c in cids if c in self._pending}
        rest = [c for c in cids if c not in found]
        if rest:
            found.update(self._state.causal_get(rest))
        return found

    def step(self, entry: Entry) -> Step:
        """Number ``entry`` (its parents are already numbered)."""
        raw = [bytes(p) for p in entry.next]
        info = self._get(raw)
        parents: dict[bytes, Causal | None] = {p: info.get(p) for p in raw}
        self._counter += 1
        arrival = self._counter
        lists: list[Intervals] = [((arrival, arrival),)]
        exact = True
        for got in parents.values():
            if got is None:  # pragma: no cover - parents are applied before children
                exact = False
            else:
                lists.append(got[1])
                exact = exact and got[2]
        past = union(lists)
        if len(past) > MAX_INTERVALS:
            past, exact = [*past[: MAX_INTERVALS - 1], past[-1]], False
        self._pending[bytes(entry.cid)] = (arrival, tuple(past), exact)
        return Step(entry, arrival, parents, self)

    def walk(self, start: Sequence[Cid], targets: Iterable[Member]) -> set[bytes]:
        """CIDs of ``targets`` that are ancestors of (or are) the entries ``start``."""
        want: dict[bytes, Member] = {m.cid: m for m in targets}
        found: set[bytes] = set()
        heap: list[tuple[int, bytes, Entry]] = []
        seen: set[bytes] = set()

        def push(parents: Iterable[Cid]) -> None:
            for p in parents:
                raw = bytes(p)
                if raw not in seen:
                    seen.add(raw)
                    got = self._lookup(p)
                    if got is not None:
                        heapq.heappush(heap, (-got.clock, raw, got))

        push(start)
        while heap and want:
            _, raw, x = heapq.heappop(heap)
            if raw in want:
                found.add(raw)
                del want[raw]
            info = self._get([raw]).get(raw)
            if info is not None:
                arrival, past, exact = info
                for c in [c for c, m in want.items() if contains(past, m.arrival)]:
                    found.add(c)
                    del want[c]
                if exact or (want and arrival < min(m.arrival for m in want.values())):
                    continue  # decided below x, or nothing below x arrived after a target
            if want and x.clock > min(m.clock for m in want.values()):
                push(x.next)
        return found


def prune(members: Iterable[Member], step: Step) -> list[Member]:
    """Rule M without the new write: the members not in ``step``'s causal past."""
    members = list(members)
    gone = step.superseded(members)
    return [m for m in members if m not in gone]


def encode_members(members: Iterable[Member]) -> list[list[object]]:
    """A DAG-CBOR friendly form: ``[[clock, writer, cid, index, arrival], ...]``, newest
    first (so decoding gives the order conflicts are reported in)."""
    return [[*m.stamp, m.arrival] for m in newest_first(members)]


def decode_members(raw: object) -> list[Member]:
    """The inverse of :func:`encode_members` (state written by this module)."""
    out: list[Member] = []
    assert isinstance(raw, list)
    for item in raw:
        clock, writer, cid, index, arrival = item
        out.append(Member((clock, writer, bytes(cid), index), arrival))
    return out


def conflicts_json(conflicts: Iterable[Conflict]) -> str | None:
    """The ``_conflicts`` SQL column: a JSON array of ``{cid, clock, deleted, value,
    writer}`` (plus ``field`` in field mode), newest first; None (SQL NULL) when empty."""
    items: list[dict[str, Any]] = []
    for c in conflicts:
        item: dict[str, Any] = {
            "cid": str(c.cid),
            "clock": c.clock,
            "deleted": c.deleted,
            "value": c.value,
            "writer": c.writer,
        }
        if c.field is not None:
            item["field"] = c.field
        items.append(item)
    return to_json(items) if items else None


def newest_first(members: Iterable[Member]) -> list[Member]:
    return sorted(members, key=lambda m: m.stamp, reverse=True)
