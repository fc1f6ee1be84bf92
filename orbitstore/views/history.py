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

* **Columns, not entries.** A :class:`History` holds the history as five lists (CID
  bytes, clocks, writers, parents, payloads): :meth:`History.of_rows` builds it straight
  from the store's raw rows (:class:`~orbitstore.storage.base.EntryRows`), each block
  decoded once with its links left as bytes, so no :class:`~orbitstore.core.cid.Cid` or
  :class:`~orbitstore.core.entry.Entry` is made for the thousands of entries a fold only
  reads the clock, writer, parents and payload of (a CID is built for the few writes
  that end up as conflicts). :meth:`History.of_entries` makes the same from entries
  (an encrypted database's, opened).

The result is checked against the incremental path on random histories
(``tests/test_asof_bulk.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from typing import Any, Final, TypeAlias, TypeVar

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.errors import DecodeError, StorageCorruptedError
from orbitstore.views.causal import Intervals, Member, contains, union

K = TypeVar("K", bound=Hashable)

# Interval lists longer than this make a history "too tangled" for the bulk fold (the
# incremental path cuts them and walks the log instead). Histories of a few writers
# stay far below it; it bounds the memory the fold holds (lists x entries).
MAX_EXACT_INTERVALS: Final = 256


class History:
    """An ancestor-closed set of entries in total order, by columns: entry ``i`` (0-based)
    is arrival ``i + 1``. CIDs and parents are CID bytes."""

    __slots__ = ("cids", "clocks", "parents", "payloads", "writers")

    def __init__(
        self,
        cids: list[bytes],
        clocks: list[int],
        writers: list[str],
        parents: list[Sequence[bytes]],
        payloads: list[Any],
    ) -> None:
        self.cids = cids
        self.clocks = clocks
        self.writers = writers
        self.parents = parents
        self.payloads = payloads

    def __len__(self) -> int:
        return len(self.cids)

    @classmethod
    def of_entries(cls, entries: Sequence[Entry]) -> History:
        return cls(
            [bytes(e.cid) for e in entries],
            [e.clock for e in entries],
            [e.writer for e in entries],
            [[bytes(p) for p in e.next] for e in entries],
            [e.payload for e in entries],
        )

    @classmethod
    def of_rows(cls, rows: Sequence[tuple[bytes, bytes]], heads: Collection[bytes]) -> History:
        """``heads`` and their ancestors among ``rows`` (``(cid bytes, block)`` of stored
        entries in total order, every ancestor of ``heads`` among them): the blocks are
        decoded once, links left as bytes; the ancestors are found in one backward pass
        (a parent sorts before its children). StorageCorruptedError for a block that no
        longer decodes as an entry."""
        decode = codec.decode_raw_links
        try:
            fields = [decode(block) for _, block in rows]
            parents: list[Sequence[bytes]] = [f["next"] for f in fields]
        except DecodeError as exc:
            raise StorageCorruptedError(f"a stored entry no longer decodes: {exc}") from exc
        except (KeyError, TypeError) as exc:
            raise StorageCorruptedError(f"a stored entry lacks a field: {exc}") from exc
        cids = [cid for cid, _ in rows]
        wanted = set(heads)
        # Usually every row is an ancestor of the heads (heads a few entries old): then
        # each row without a child among the rows is one of the heads.
        if not set(cids).difference(*parents) <= wanted:
            picked = cls._past(cids, parents, wanted)
            cids = [cids[i] for i in picked]
            parents = [parents[i] for i in picked]
            fields = [fields[i] for i in picked]
        try:
            return cls(
                cids,
                [f["clock"] for f in fields],
                [f["writer"] for f in fields],
                parents,
                [f["payload"] for f in fields],
            )
        except (KeyError, TypeError) as exc:
            raise StorageCorruptedError(f"a stored entry lacks a field: {exc}") from exc

    @staticmethod
    def _past(cids: list[bytes], parents: list[Sequence[bytes]], heads: set[bytes]) -> list[int]:
        """Indexes of ``heads`` and their ancestors, in order: one backward pass (a
        parent sorts before its children)."""
        picked: list[int] = []
        needed = set(heads)
        for i in range(len(cids) - 1, -1, -1):
            if not needed:
                break
            cid = cids[i]
            if cid in needed:
                needed.discard(cid)
                needed.update(parents[i])
                picked.append(i)
        picked.reverse()
        return picked

    def cid(self, arrival: int) -> Cid:
        """The CID of entry ``arrival``, built (for the few a fold reports)."""
        return Cid(self.cids[arrival - 1])

    def stamp(self, write: Write) -> tuple[int, str, bytes, int]:
        """The stamp ``(clock, writer, cid bytes, op index)`` of a write."""
        i = write[0] - 1
        return (self.clocks[i], self.writers[i], self.cids[i], write[1])

    def member(self, write: Write) -> Member:
        """The member the incremental views store for this write."""
        return Member(self.stamp(write), write[0])


class Ancestry:
    """Arrival numbers and exact causal pasts of a history (see the module docstring)."""

    __slots__ = ("_index", "_pasts")

    def __init__(self, pasts: list[Intervals], index: dict[bytes, int]) -> None:
        self._pasts = pasts
        self._index = index

    @classmethod
    def of(cls, history: History | Sequence[Entry]) -> Ancestry | None:
        """The ancestry of a history (in total order), or None when it is not
        ancestor-closed or too tangled for exact lists."""
        if not isinstance(history, History):
            history = History.of_entries(history)
        index: dict[bytes, int] = {}
        pasts: list[Intervals] = [()]  # arrival 0 is nobody
        append = pasts.append
        get = index.get
        limit = MAX_EXACT_INTERVALS
        for arrival, (cid, parents) in enumerate(
            zip(history.cids, history.parents, strict=True), 1
        ):
            if len(parents) == 1:
                at = get(parents[0])
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
                    at = get(p)
                    if at is None:
                        return None
                    lists.append(pasts[at])
                past = tuple(union(lists))
            if len(past) > limit:
                return None
            append(past)
            index[cid] = arrival
        return cls(pasts, index)

    def past(self, arrival: int) -> Intervals:
        """The causal past of entry ``arrival`` (itself included), as intervals."""
        return self._pasts[arrival]


Write: TypeAlias = tuple[int, int, Any]
"""One write of a register in a history: ``(arrival, op index in the entry, op)`` — its
entry (``arrival`` in history order, see :meth:`History.stamp`) and what it wrote (the
view's parsed op)."""


def fold_registers(
    history: History,
    ancestry: Ancestry,
    writes_of: Callable[[Any], Iterable[tuple[K, int, Any]] | None],
) -> dict[K, list[Write]]:
    """The maximal writes of every register the history writes, oldest first (so the
    last is the winner and the others are its conflicts, as the incremental views keep
    them). ``writes_of`` gives the ``(register, op index, op)`` of an entry's payload —
    at most one per register, the entry's last op on it — or None for one the view
    ignores."""
    registers: dict[K, list[Write]] = {}
    get = registers.get
    pasts = ancestry._pasts  # ancestry.past(arrival), without a call per entry
    for arrival, payload in enumerate(history.payloads, 1):
        writes = writes_of(payload)
        if not writes:
            continue
        past = pasts[arrival]
        low = past[0][0] if len(past) == 1 else 0  # a chain: the past is [low, arrival]
        for key, index, op in writes:
            new = (arrival, index, op)
            found = get(key)
            if found is None:
                registers[key] = [new]
            elif low and len(found) == 1:
                # rule M, the common case: the one member is in the past or is not
                if found[0][0] >= low:
                    found[0] = new
                else:
                    found.append(new)
            else:  # rule M: members in the new entry's past leave the set
                kept = [w for w in found if not contains(past, w[0])]
                kept.append(new)
                registers[key] = kept
    return registers
