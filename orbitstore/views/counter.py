"""The counter view: a PN-counter over the log.

Operations (entry payloads)::

    {"op": "inc", "by": <int>}                 # by may be negative

The value is the sum of every valid ``by``. The log applies each entry exactly once, and
addition commutes, so every replica that holds the same entries shows the same value
whatever order they arrived in. ``by`` is limited to 64-bit signed integers; the sum is
an arbitrary-precision integer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol

from orbitstore.core.entry import Entry
from orbitstore.errors import InvalidValueError
from orbitstore.views.base import Change, change_for

_MIN: Final = -(2**63)
_MAX: Final = 2**63 - 1


class CounterState(Protocol):
    def get(self) -> int: ...

    def add(self, delta: int) -> int:
        """Add ``delta`` and return the new total."""
        ...


def increment_op(by: int) -> dict[str, Any]:
    """The payload for an increment; InvalidValueError for a non-integer or out of range."""
    if not isinstance(by, int) or isinstance(by, bool) or not _MIN <= by <= _MAX:
        raise InvalidValueError("a counter increment is a 64-bit signed integer")
    return {"op": "inc", "by": by}


def _delta(payload: Any) -> int | None:
    if not isinstance(payload, dict) or payload.get("op") != "inc":
        return None
    by = payload.get("by")
    if not isinstance(by, int) or isinstance(by, bool) or not _MIN <= by <= _MAX:
        return None
    return by


class CounterView:
    name = "counter"

    def __init__(self, state: CounterState) -> None:
        self._state = state

    @property
    def value(self) -> int:
        return self._state.get()

    def apply(self, entries: Sequence[Entry], *, local: bool) -> list[Change]:
        changes: list[Change] = []
        for entry in entries:
            by = _delta(entry.payload)
            if by is None:  # a valid entry with a payload this type ignores
                continue
            total = self._state.add(by)
            changes.append(change_for(entry, "increment", key=by, value=total, local=local))
        return changes

    def fold_snapshot(self, entries: Sequence[Entry]) -> bool:
        """Fold a whole history at once (the sum of its increments: one write)."""
        deltas = [by for by in map(_delta, (e.payload for e in entries)) if by is not None]
        if deltas:  # even a sum of 0 is a stored total, as after applying them one by one
            self._state.add(sum(deltas))
        return True
