"""codec.check_depth (recursive fast path) decides exactly as the iterative walk."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core import codec
from orbitstore.errors import InvalidValueError


class MyList(list[Any]):
    pass


def nest(depth: int, kinds: list[int]) -> Any:
    value: Any = 0
    for level in range(depth):
        kind = kinds[level % len(kinds)]
        value = [value] if kind == 0 else {"k": value} if kind == 1 else MyList([1, value])
    return value


def accepted(value: Any) -> bool:
    try:
        codec.check_depth(value)
    except InvalidValueError:
        return False
    return True


@given(
    depth=st.integers(0, codec.MAX_DEPTH + 3) | st.sampled_from([255, 256, 257]),
    kinds=st.lists(st.integers(0, 2), min_size=1, max_size=4),
)
def test_same_decision_as_the_iterative_walk(depth: int, kinds: list[int]) -> None:
    value = nest(depth, kinds)
    assert accepted(value) == codec._within_depth(value) == (depth <= codec.MAX_DEPTH)


def test_cycles_are_refused() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    table: dict[str, Any] = {}
    table["self"] = [table]
    assert not accepted(loop) and not accepted(table)


def test_deep_in_a_deep_stack_still_decides() -> None:
    def recurse(n: int) -> bool:
        return recurse(n - 1) if n else accepted(nest(codec.MAX_DEPTH, [0]))

    room = sys.getrecursionlimit() - 120
    assert recurse(room)
    with pytest.raises(InvalidValueError):
        codec.check_depth(nest(codec.MAX_DEPTH + 1, [1]))
