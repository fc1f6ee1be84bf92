from __future__ import annotations

from pathlib import Path

import pytest

import orbitstore
from orbitstore.errors import NotFoundError, WrongDatabaseTypeError


async def test_append_close_reopen_read_back(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        db = await node.open("events")
        written = [await db.append({"n": i}) for i in range(10)]
        address = db.address
        heads = db.heads
    async with orbitstore.open_node(tmp_path) as node:
        db = await node.open(address)
        assert db.heads == heads == {written[-1].cid}
        assert [e.payload["n"] for e in db.entries()] == list(range(10))
        assert [e.payload["n"] for e in db.entries(reverse=True, limit=3)] == [9, 8, 7]
        assert len(db) == 10
        same = await node.open("events")  # by local name
        assert same is db


async def test_unknown_address_and_wrong_type(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        db = await node.open("x")
        with pytest.raises(WrongDatabaseTypeError):
            await node.open(db.address, type="feed")
        with pytest.raises(NotFoundError):
            await node.open(
                "/orbitstore/bafyreielicvqjywg6nc54kmg5roywrof4e56vtzqwy3upswxp66pxdcth4"
            )


async def test_memory_node() -> None:
    async with orbitstore.open_node() as node:
        db = await node.open("m")
        await db.append_many(["a", "b", "c"])
        assert [e.payload for e in db.entries()] == ["a", "b", "c"]
