"""Lamport clocks and the total order of entries.

An entry's ``clock`` is one more than the largest clock among its parents (``next``),
or 1 when it has none. Because a child's clock is always larger than its parents', the
order by ``(clock, writer, cid)`` — clock as an integer, writer as a string, CID by its
binary form — is a total order that extends causal order: every replica that holds the
same entries sorts them identically, and an entry always sorts after everything it saw.
"Last writer wins" means "greatest in this order wins".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

OrderKey: TypeAlias = tuple[int, str, bytes]


def next_clock(parent_clocks: Iterable[int]) -> int:
    """The clock of an entry whose parents have ``parent_clocks``."""
    return max(parent_clocks, default=0) + 1


def order_key(clock: int, writer: str, cid: bytes) -> OrderKey:
    return (clock, writer, cid)
