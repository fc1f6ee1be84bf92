"""The feed view: an append-only sequence of items (events, chat messages) in total order.

Operations (entry payloads)::

    {"op": "add", "value": <any DAG-CBOR value>}          one item
    {"op": "add", "values": [<value>, ...]}               several items, one entry

How it works
============

Each item has a *position* ``(clock, writer, cid bytes, index)``: the total order of its
entry (:mod:`orbitstore.core.order`), then its index in ``values`` (0 for a single
``value``). Positions are unique, and every replica computes the same ones, so the feed
is the set of all items sorted by position — the same list on every replica that holds
the same entries. An entry arriving late (from a peer that was offline) is inserted at
its position, which may be before items already seen.

Item ids: ``"<cid>"`` for the item at index 0 of its entry, ``"<cid>/<index>"`` for the
others (index in decimal, no leading zeros). An id names an item everywhere: it is
derived from the entry, not from local arrival.

A malformed payload (no ``value``/``values``, both, an empty or non-list ``values``, a
value with no DAG-JSON form) makes the whole entry a no-op for this view, on every
replica. The handle refuses such writes before anything is stored.

Changes: ``add`` with ``key`` = the item id and ``value`` = the item's value, one per
item, including items inserted before others by a late entry.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeAlias

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.dagjson import to_json
from orbitstore.core.entry import Entry
from orbitstore.errors import InvalidCidError, InvalidValueError, NotFoundError
from orbitstore.views.base import Change, change_for

# Rows read per storage round trip while iterating; see the keyvalue view.
_PAGE: Final = 256


Position: TypeAlias = tuple[int, str, bytes, int]
"""``(clock, writer, cid bytes, index in entry)``: an item's place in the feed."""

FeedRow: TypeAlias = tuple[int, str, bytes, int, int | None, bytes]
"""``(clock, writer, cid bytes, index, ts, value DAG-CBOR)`` as the state stores it."""


def item_id(cid: Cid, index: int) -> str:
    """The id of item ``index`` of entry ``cid``."""
    return str(cid) if index == 0 else f"{cid}/{index}"


def parse_item_id(text: str) -> tuple[Cid, int]:
    """``(cid, index)`` of an item id; InvalidValueError if it is not one."""
    if not isinstance(text, str):
        raise InvalidValueError(f"an item id is a str, not {type(text).__name__}")
    head, sep, tail = text.partition("/")
    index = 0
    if sep:
        if not tail.isdigit() or not tail.isascii() or tail[0] == "0":
            raise InvalidValueError(f"not a feed item id: {text!r:.100}")
        index = int(tail)
    try:
        return Cid.parse(head), index
    except InvalidCidError as exc:
        raise InvalidValueError(f"not a feed item id: {text!r:.100}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedItem:
    """One item of a feed."""

    id: str
    """``"<cid>"`` for index 0, ``"<cid>/<index>"`` otherwise."""
    cid: Cid
    """The entry that added the item."""
    index: int
    """The item's position among the values of its entry (0 for a single add)."""
    writer: str
    clock: int
    ts: int | None
    """The writer's wall clock (ms since the epoch) when it wrote, if it recorded one.
    For display only: the feed is ordered by ``position``, never by ``ts``."""
    value: Any

    def __post_init__(self) -> None:
        if self.id != item_id(self.cid, self.index):
            raise InvalidValueError(f"item id {self.id!r} does not match its cid and index")

    @property
    def position(self) -> Position:
        return (self.clock, self.writer, bytes(self.cid), self.index)


def _item(row: FeedRow, cids: dict[bytes, Cid] | None = None) -> FeedItem:
    clock, writer, cid, index, ts, data = row
    # Items of one entry share their Cid object, so its text form is computed once.
    c = None if cids is None else cids.get(cid)
    if c is None:
        c = Cid(cid)
        if cids is not None:
            cids[cid] = c
    return FeedItem(
        id=item_id(c, index),
        cid=c,
        index=index,
        writer=writer,
        clock=clock,
        ts=ts,
        value=codec.decode(data),
    )


def check_value(value: Any) -> tuple[bytes, str]:
    """The DAG-CBOR bytes and DAG-JSON text of a value; InvalidValueError if it has none."""
    return codec.encode(value), to_json(value)


def add_op(value: Any) -> dict[str, Any]:
    check_value(value)
    return {"op": "add", "value": value}


def add_many_op(values: Sequence[Any]) -> dict[str, Any]:
    if not values:
        raise InvalidValueError("add_many needs at least one value")
    for value in values:
        check_value(value)
    return {"op": "add", "values": list(values)}


def parse_payload(payload: Any) -> list[tuple[Any, bytes, str]] | None:
    """``(value, DAG-CBOR, json)`` per item, or None for a malformed payload."""
    if not isinstance(payload, dict) or payload.get("op") != "add":
        return None
    if ("value" in payload) == ("values" in payload):
        return None
    values = [payload["value"]] if "value" in payload else payload["values"]
    if not isinstance(values, list) or not values:
        return None
    out: list[tuple[Any, bytes, str]] = []
    try:
        for value in values:
            data, text = check_value(value)
            out.append((value, data, text))
    except InvalidValueError:
        return None
    return out


class FeedState(Protocol):
    """Where the view keeps its items (SQLite table ``view_feed``, or memory)."""

    def add(self, rows: Sequence[tuple[FeedRow, str]]) -> None:
        """Store items (row, json text); an item already stored is left as it is."""
        ...

    def get(self, cid: bytes, index: int) -> FeedRow | None: ...

    def scan(
        self,
        *,
        low: Position | None,
        low_inclusive: bool,
        high: Position | None,
        high_inclusive: bool,
        limit: int,
        reverse: bool,
    ) -> list[FeedRow]:
        """Up to ``limit`` items between the bounds (None: open), by position
        (descending with ``reverse``)."""
        ...

    def count(self) -> int: ...


class FeedView:
    """Folds feed operations into a :class:`FeedState` (see module docstring)."""

    name = "feed"

    def __init__(self, state: FeedState) -> None:
        self._state = state

    def fold_snapshot(self, entries: Sequence[Entry]) -> bool:
        """Fold a whole history at once: :meth:`apply` already stores all the items of
        its entries in one statement (the changes it returns are dropped)."""
        self.apply(entries, local=False)
        return True

    def apply(self, entries: Sequence[Entry], *, local: bool) -> list[Change]:
        changes: list[Change] = []
        rows: list[tuple[FeedRow, str]] = []
        for entry in entries:
            items = parse_payload(entry.payload)
            if items is None:
                continue
            cid = bytes(entry.cid)
            for index, (value, data, text) in enumerate(items):
                rows.append(((entry.clock, entry.writer, cid, index, entry.ts, data), text))
                changes.append(
                    change_for(
                        entry, "add", key=item_id(entry.cid, index), value=value, local=local
                    )
                )
        if rows:
            self._state.add(rows)
        return changes

    # -- reading ----------------------------------------------------------------------

    def items_of(self, entry: Entry) -> list[FeedItem]:
        """The items of an entry this view applied (what the handle's writes return)."""
        payload = entry.payload
        values = [payload["value"]] if "value" in payload else payload["values"]
        return [
            FeedItem(
                id=item_id(entry.cid, index),
                cid=entry.cid,
                index=index,
                writer=entry.writer,
                clock=entry.clock,
                ts=entry.ts,
                value=value,
            )
            for index, value in enumerate(values)
        ]

    def get(self, ident: str) -> FeedItem | None:
        cid, index = parse_item_id(ident)
        row = self._state.get(bytes(cid), index)
        return None if row is None else _item(row)

    def count(self) -> int:
        return self._state.count()

    def _position(self, bound: str | FeedItem, name: str) -> Position:
        if isinstance(bound, FeedItem):
            return bound.position
        if isinstance(bound, str):
            cid, index = parse_item_id(bound)
            row = self._state.get(bytes(cid), index)
            if row is None:
                raise NotFoundError(f"{name}={bound!r}: no such item in this feed")
            return (row[0], row[1], row[2], row[3])
        raise InvalidValueError(f"{name} is an item id or a FeedItem, not {type(bound).__name__}")

    def items(
        self,
        *,
        gt: str | FeedItem | None = None,
        gte: str | FeedItem | None = None,
        lt: str | FeedItem | None = None,
        lte: str | FeedItem | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> Iterator[FeedItem]:
        if gt is not None and gte is not None:
            raise InvalidValueError("give at most one of gt and gte")
        if lt is not None and lte is not None:
            raise InvalidValueError("give at most one of lt and lte")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise InvalidValueError("limit is a non-negative integer")
        lower = gt if gt is not None else gte
        upper = lt if lt is not None else lte
        # Bounds are resolved now, so a bad one raises here and not at the first next().
        low = None if lower is None else self._position(lower, "gt" if gt is not None else "gte")
        high = None if upper is None else self._position(upper, "lt" if lt is not None else "lte")
        return self._iterate(
            low=low,
            low_inclusive=gte is not None,
            high=high,
            high_inclusive=lte is not None,
            limit=limit,
            reverse=reverse,
        )

    def _iterate(
        self,
        *,
        low: Position | None,
        low_inclusive: bool,
        high: Position | None,
        high_inclusive: bool,
        limit: int | None,
        reverse: bool,
    ) -> Iterator[FeedItem]:
        left = limit
        while left is None or left > 0:
            size = _PAGE if left is None else min(_PAGE, left)
            page = self._state.scan(
                low=low,
                low_inclusive=low_inclusive,
                high=high,
                high_inclusive=high_inclusive,
                limit=size,
                reverse=reverse,
            )
            cids: dict[bytes, Cid] = {}
            for row in page:
                yield _item(row, cids)
            if len(page) < size:
                return
            if left is not None:
                left -= len(page)
            # Keyset pagination: the next page starts after the last item seen.
            row = page[-1]
            last: Position = (row[0], row[1], row[2], row[3])
            if reverse:
                high, high_inclusive = last, False
            else:
                low, low_inclusive = last, False
