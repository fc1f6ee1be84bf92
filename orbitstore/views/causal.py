"""Causal bookkeeping for views that report conflicts: "is entry ``a`` in the causal
past of entry ``b``?", answered incrementally and with bounded work.

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
cost the whole history between an old write and a new one, so the view keeps, for every
entry it applies, two local numbers (they differ between replicas; only the answers they
give are the same):

* ``arrival``: 1, 2, 3 ... in the order this view applied entries (a causal order: an
  entry's ancestors all have smaller arrival numbers);
* ``floor``: an arrival number ``f`` such that *every* entry with arrival ``<= f`` is in
  this entry's causal past. An entry whose parents are all the current heads (a local
  write, or a remote one from a peer that was in sync) has every applied entry in its
  past: its floor is its own arrival number. Otherwise its floor is the largest floor of
  its parents.

To decide whether member ``m`` is in the past of the new entry ``w``:

1. ``m`` is one of ``w``'s parents, or ``w``'s parents were all the heads: yes;
2. ``arrival(m) <= floor(p)`` for a parent ``p`` of ``w``: yes;
3. otherwise walk back from ``w``'s parents, newest clock first. A visited entry ``x``
   with ``arrival(m) <= floor(x)`` proves yes; the walk does not go below ``x`` when
   ``arrival(x) < arrival(m)`` (nothing applied before ``m`` descends from it) or
   ``clock(x) <= clock(m)``; when nothing is left to visit, the answer is no.

Steps 1-2 answer in constant time for every write made on a state that already held
``m``, however old ``m`` is. The walk of step 3 visits only entries that arrived after
``m`` and do not provably cover it: the concurrent region, which is as large as the work
done by writers that had not seen ``m``, not as large as the log.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from orbitstore.core.cid import Cid
from orbitstore.core.dagjson import to_json
from orbitstore.core.entry import Entry
from orbitstore.views.base import Conflict

EntryLookup: TypeAlias = Callable[[Cid], Entry | None]
"""An entry of the view's log by CID (None if the log does not hold it)."""

Causal: TypeAlias = tuple[int, int]
"""``(arrival, floor)`` of an applied entry."""


class CausalState(Protocol):
    """Where a view keeps the numbers of this module (SQLite or memory)."""

    def causal_frontier(self) -> tuple[int, frozenset[bytes]]:
        """The last arrival number given out and the CIDs of the current heads."""
        ...

    def causal_get(self, cids: Collection[bytes]) -> dict[bytes, Causal]:
        """``(arrival, floor)`` of the given entries (unknown ones left out)."""
        ...

    def causal_save(
        self, counter: int, heads: frozenset[bytes], rows: Iterable[tuple[bytes, int, int]]
    ) -> None:
        """Store the new counter and heads, and ``(cid, arrival, floor)`` rows."""
        ...


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
    floor: int
    full: bool
    parents: frozenset[bytes]
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
            if (
                m.cid == own
                or self.full
                or m.cid in self.parents
                or m.arrival <= self.floor
                or self._known.get(m.cid, False)
            ):
                done.add(m)
            elif m.cid not in self._known:
                open_.append(m)
        if open_:
            found = self._tracker.walk(self.entry, open_)
            for m in open_:
                self._known[m.cid] = m.cid in found
                if m.cid in found:
                    done.add(m)
        return done


class CausalTracker:
    """Numbers entries as a view applies them (see the module docstring). Use one
    :meth:`batch` per call of the view's ``apply``."""

    def __init__(self, state: CausalState, lookup: EntryLookup) -> None:
        self._state = state
        self._lookup = lookup
        self._pending: dict[bytes, Causal] = {}
        self._counter = 0
        self._heads: set[bytes] = set()

    def begin(self) -> None:
        counter, heads = self._state.causal_frontier()
        self._counter, self._heads, self._pending = counter, set(heads), {}

    def end(self) -> None:
        if self._pending:
            rows = [(cid, a, f) for cid, (a, f) in self._pending.items()]
            self._state.causal_save(self._counter, frozenset(self._heads), rows)
        self._pending = {}

    def _get(self, cids: Collection[bytes]) -> dict[bytes, Causal]:
        found = {c: self._pending[c] for c in cids if c in self._pending}
        rest = [c for c in cids if c not in found]
        if rest:
            found.update(self._state.causal_get(rest))
        return found

    def step(self, entry: Entry) -> Step:
        """Number ``entry`` (its parents are already numbered)."""
        parents = frozenset(bytes(p) for p in entry.next)
        self._counter += 1
        arrival = self._counter
        full = self._heads <= parents
        floor = arrival if full else max((f for _, f in self._get(parents).values()), default=0)
        cid = bytes(entry.cid)
        self._heads -= parents
        self._heads.add(cid)
        self._pending[cid] = (arrival, floor)
        return Step(entry, arrival, floor, full, parents, self)

    def walk(self, entry: Entry, targets: Iterable[Member]) -> set[bytes]:
        """CIDs of ``targets`` in the causal past of ``entry`` (rule 3)."""
        want: dict[bytes, Member] = {m.cid: m for m in targets}
        found: set[bytes] = set()
        heap: list[tuple[int, bytes, Entry]] = []
        seen: set[bytes] = set()

        def push(parents: Iterable[Cid]) -> None:
            for p in parents:
                raw = bytes(p)
                if raw in seen:
                    continue
                seen.add(raw)
                got = self._lookup(p)
                if got is not None:
                    heapq.heappush(heap, (-got.clock, raw, got))

        push(entry.next)
        while heap and want:
            _, raw, x = heapq.heappop(heap)
            if raw in want:
                found.add(raw)
                del want[raw]
            numbers = self._get([raw]).get(raw)
            if numbers is not None:
                arrival, floor = numbers
                covered = [c for c, m in want.items() if m.arrival <= floor]
                for c in covered:
                    found.add(c)
                    del want[c]
                if want and arrival < min(m.arrival for m in want.values()):
                    continue
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
