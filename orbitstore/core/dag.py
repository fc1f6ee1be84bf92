"""Walks back through the entry DAG in reverse total order (no I/O).

How it works
============

A max-heap on the total order ``(clock, writer, cid)``: a parent always sorts before its
children (its clock is smaller), so popping the largest key yields the ancestors of the
starting entries in exact reverse total order, each once, reading only as far back as
the caller consumes. :func:`walk_back` is that walk; the op-log's ``traverse`` and the
sync session's ``have`` sample use it. :func:`unknown_ancestors` is the same walk with
a mark on each entry ("the peer holds it"), which the sync session uses to plan what to
send (Rule 2 of :mod:`orbitstore.sync.session`).

Entries are looked up with the ``get`` function passed in; a CID it does not know is
skipped (a start, or a parent outside the log).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.order import OrderKey

Get = Callable[[Cid], Entry | None]


class _Neg:
    """Wraps an order key so that heapq (a min-heap) pops the largest first."""

    __slots__ = ("key",)

    def __init__(self, key: tuple[int, str, bytes]) -> None:
        self.key = key

    def __lt__(self, other: _Neg) -> bool:
        return self.key > other.key


def _neg(entry: Entry) -> Any:
    return _Neg(entry.order_key)


def walk_back(get: Get, starts: Iterable[Cid], *, limit: int | None = None) -> Iterator[Entry]:
    """``starts`` and all their ancestors, newest first (reverse total order)."""
    heap: list[tuple[Any, Entry]] = []
    seen: set[Cid] = set()
    for cid in starts:
        if cid not in seen:
            seen.add(cid)
            entry = get(cid)
            if entry is not None:
                heapq.heappush(heap, (_neg(entry), entry))
    emitted = 0
    while heap and (limit is None or emitted < limit):
        _, entry = heapq.heappop(heap)
        yield entry
        emitted += 1
        for parent in entry.next:
            if parent not in seen:
                seen.add(parent)
                p = get(parent)
                if p is not None:
                    heapq.heappush(heap, (_neg(p), p))


def unknown_ancestors(
    get: Get,
    starts: Iterable[Cid],
    known: Iterable[Cid],
    *,
    forced: frozenset[Cid] = frozenset(),
    known_upto: OrderKey | None = None,
) -> list[Entry]:
    """The ancestors of ``starts`` (themselves included) that are not ancestors of
    ``known`` (themselves included), oldest first.

    ``known_upto``: every entry at or below this key in total order is known too (a
    range the peer was sent in full). CIDs in ``forced`` are returned even when known
    (a peer said it lacks them); they still count as known for their ancestors only when
    ``known_upto`` covers them.

    Each entry is marked known or not when first reached: the known seeds are known, and
    a popped known entry marks its parents known. Every descendant of an entry sorts
    after it, so a mark is final when the entry is popped. The walk stops as soon as the
    heap holds nothing left to return."""
    known_set = set(known)
    heap: list[tuple[Any, Entry]] = []
    mark: dict[Cid, bool] = {}  # cid -> known
    pending = 0  # entries in the heap that will be returned

    def covered(entry: Entry) -> bool:
        return known_upto is not None and entry.order_key <= known_upto

    def push(entry: Entry, is_known: bool) -> None:
        nonlocal pending
        is_known = is_known or covered(entry)
        mark[entry.cid] = is_known
        heapq.heappush(heap, (_neg(entry), entry))
        if not is_known or entry.cid in forced:
            pending += 1

    for cid in (*starts, *known_set):
        if cid not in mark:
            entry = get(cid)
            if entry is not None:
                push(entry, cid in known_set and cid not in forced)
    found: list[Entry] = []
    while heap and pending:
        _, entry = heapq.heappop(heap)
        is_known = mark[entry.cid]
        if not is_known or entry.cid in forced:
            pending -= 1
            found.append(entry)
        for parent in entry.next:
            state = mark.get(parent)
            if state is None:
                p = get(parent)
                if p is not None:
                    push(p, is_known and parent not in forced)
            elif is_known and not state and parent not in forced:
                mark[parent] = True
                pending -= 1
    found.reverse()
    return found


__all__ = ["unknown_ancestors", "walk_back"]
