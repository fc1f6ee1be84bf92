"""The counter database handle."""

from __future__ import annotations

from typing import ClassVar

from orbitstore.node.database import Database
from orbitstore.views.counter import CounterView, increment_op


class Counter(Database):
    """A PN-counter: ``increment``/``decrement`` by any 64-bit integer; ``value`` is the
    sum of every increment any writer made."""

    type_name: ClassVar[str] = "counter"

    @property
    def _counter(self) -> CounterView:
        assert isinstance(self._view, CounterView)
        return self._view

    @property
    def value(self) -> int:
        self._check()
        return self._counter.value

    async def increment(self, by: int = 1) -> int:
        """Add ``by`` (may be negative); returns the new value."""
        await self.append(increment_op(by))
        return self.value

    async def decrement(self, by: int = 1) -> int:
        """Subtract ``by``; returns the new value."""
        return await self.increment(-by)
