"""Storage interfaces: a content-addressed block store and a node store of logs.

Every implementation passes the conformance battery in
:mod:`orbitstore.testing.storage_conformance`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from orbitstore.core.cid import Cid
from orbitstore.core.oplog import LogStore


class BlockStore(Protocol):
    """Blocks by CID. ``put`` checks that the bytes hash to the CID."""

    def get(self, cid: Cid) -> bytes | None: ...

    def has(self, cid: Cid) -> bool: ...

    def put(self, cid: Cid, data: bytes) -> None: ...

    def put_many(self, blocks: Iterable[tuple[Cid, bytes]]) -> None: ...

    def delete(self, cid: Cid) -> None: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Cid]: ...


class NodeStore(Protocol):
    """All a node keeps: blocks, and per database its entries, heads and local name."""

    @property
    def blocks(self) -> BlockStore: ...

    def log_store(self, db: Cid) -> LogStore: ...

    def transaction(self) -> AbstractContextManager[None]:
        """Group writes: all of them are committed together, or none is. Nestable."""
        ...

    def set_name(self, name: str, db: Cid) -> None: ...

    def get_name(self, name: str) -> Cid | None: ...

    def names(self) -> dict[str, Cid]: ...

    def databases(self) -> list[Cid]:
        """Every database that has a log here."""
        ...

    def close(self) -> None: ...
