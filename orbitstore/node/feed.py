"""The feed database handle."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from orbitstore.node.database import Database
from orbitstore.views.feed import FeedItem, FeedView, add_many_op, add_op


class Feed(Database):
    """An append-only sequence of items (events, chat messages) in the total order of
    the entries that added them, the same on every replica (see
    :mod:`orbitstore.views.feed`)."""

    type_name: ClassVar[str] = "feed"

    @property
    def _feed(self) -> FeedView:
        assert isinstance(self._view, FeedView)
        return self._view

    # -- writing ------------------------------------------------------------------------

    async def add(self, value: Any) -> FeedItem:
        """Append one item; returns it once it is committed.

        InvalidValueError (nothing written) for a value DAG-CBOR/DAG-JSON cannot hold.
        """
        entry = await self.append(add_op(value))
        return self._feed.items_of(entry)[0]

    async def add_many(self, values: Iterable[Any]) -> list[FeedItem]:
        """Append several items in one entry (one signature, one commit), in this order.
        An empty ``values`` writes nothing."""
        values = list(values)
        if not values:
            return []
        entry = await self.append(add_many_op(values))
        return self._feed.items_of(entry)

    # -- reading ------------------------------------------------------------------------

    def get(self, item_id: str) -> FeedItem | None:
        """The item with this id (``"<cid>"`` or ``"<cid>/<index>"``), or None."""
        self._check()
        return self._feed.get(item_id)

    def count(self) -> int:
        """How many items the feed holds."""
        self._check()
        return self._feed.count()

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
        """Items in feed order (newest first with ``reverse``), optionally after
        ``gt``/``gte`` and before ``lt``/``lte`` (item ids or items), at most ``limit``.

        ``feed.items(reverse=True, limit=50)`` is the 50 newest items, newest first.
        A bound given by id must name an item of this feed (else NotFoundError).
        """
        self._check()
        return self._feed.items(gt=gt, gte=gte, lt=lt, lte=lte, limit=limit, reverse=reverse)
