"""Subscriptions: the changes of a database, delivered to one reader.

A :class:`Subscription` is a bounded buffer between the writers of a database (who
never wait on it) and one reader (who waits on it). A reader that falls ``capacity``
changes behind loses the changes after that and receives one :class:`Lagged` marker
with the count it missed, then the changes that come after it: a slow reader never
blocks writers or grows memory without bound.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio

from orbitstore.errors import InvalidValueError
from orbitstore.views.base import Change, Lagged

# A subscriber that falls this many changes behind gets a Lagged marker instead of more
# changes: a slow reader must never block writers or grow memory without bound.
DEFAULT_SUBSCRIPTION_BUFFER = 10_000


class Subscription:
    """An async iterator of :class:`Change` (and :class:`Lagged` on overflow)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise InvalidValueError("a subscription buffer holds at least one change")
        self._queue: deque[Change] = deque()
        self._capacity = capacity
        self._missed = 0
        self._closed = False
        self._lot = trio.lowlevel.ParkingLot()

    def _push(self, changes: Sequence[Change]) -> None:
        for change in changes:
            if len(self._queue) < self._capacity and not self._missed:
                self._queue.append(change)
            else:
                self._missed += 1
        self._lot.unpark_all()

    def _close(self) -> None:
        self._closed = True
        self._lot.unpark_all()

    def receive_nowait(self) -> Change | Lagged | None:
        """The next change if one is buffered, else None."""
        if self._queue:
            return self._queue.popleft()
        if self._missed:
            missed, self._missed = self._missed, 0
            return Lagged(missed)
        return None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Change | Lagged:
        while True:
            item = self.receive_nowait()
            if item is not None:
                return item
            if self._closed:
                raise StopAsyncIteration
            await self._lot.park()


async def wait_any(subs: Sequence[Subscription]) -> bool:
    """Wait until one subscription has something (which it consumes); False when one of
    them closed."""
    if len(subs) == 1:
        try:
            await subs[0].__anext__()
        except StopAsyncIteration:
            return False
        return True
    alive = True

    async def one(sub: Subscription, cancel: trio.CancelScope) -> None:
        nonlocal alive
        try:
            await sub.__anext__()
        except StopAsyncIteration:
            alive = False
        cancel.cancel()

    async with trio.open_nursery() as nursery:
        for sub in subs:
            nursery.start_soon(one, sub, nursery.cancel_scope)
    return alive


class Subscribers:
    """The subscriptions of one database handle: changes pushed to all of them."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    @asynccontextmanager
    async def subscribe(self, buffer: int) -> AsyncIterator[Subscription]:
        """A new subscription of ``buffer`` changes, closed when the block exits."""
        sub = Subscription(buffer)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)
            sub._close()

    def push(self, changes: Sequence[Change]) -> None:
        for sub in self._subs:
            sub._push(changes)

    def close(self) -> None:
        """End every subscription (the handle closed)."""
        for sub in list(self._subs):
            sub._close()

    def __len__(self) -> int:
        return len(self._subs)
