"""Queries through the node API: ``db.query``, ``node.query``, ``explain`` and live
``watch`` over real (counter) databases."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

import orbitstore
from orbitstore.errors import QueryError, UsageError
from orbitstore.node.counter import Counter
from orbitstore.query import QueryResult


async def test_db_query_uses_its_name_and_this(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        c = await node.open("hits", type="counter")
        assert isinstance(c, Counter)
        assert c.query("SELECT value FROM this").dicts() == [{"value": 0}]
        await c.increment(41)
        await c.increment(2**62)
        await c.increment(2**62)  # the total no longer fits 64 bits: still exact
        assert c.query("SELECT value FROM hits").dicts() == [{"value": 41 + 2**63}]
        assert c.query("SELECT value > 0 AS pos FROM this").dicts() == [{"pos": 1}]
        with pytest.raises(QueryError, match="unknown table 'other'"):
            c.query("SELECT value FROM other")


async def test_node_query_joins_databases(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        a = await node.open("a", type="counter")
        b = await node.open("b", type="counter")
        assert isinstance(a, Counter) and isinstance(b, Counter)
        await a.increment(3)
        await b.increment(4)
        result = node.query("SELECT a.value + b.value AS total FROM a, b")
        assert result.dicts() == [{"total": 7}]
        assert node.explain("SELECT value FROM a").steps
        await node.open("log", type="log")  # a log is a table too (of its entries)
        assert node.query("SELECT count(*) FROM log").rows == ((0,),)
        with pytest.raises(QueryError, match="unknown table 'nothing'"):
            node.query("SELECT * FROM nothing")


async def test_memory_nodes_have_no_sql() -> None:
    async with orbitstore.open_node() as node:
        c = await node.open("c", type="counter")
        with pytest.raises(UsageError, match="stores to disk"):
            c.query("SELECT value FROM this")


async def test_closed_database_refuses_queries(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        c = await node.open("c", type="counter")
        await c.close()
        with pytest.raises(orbitstore.errors.ClosedError):
            c.query("SELECT value FROM this")


async def _collect(results: trio.MemorySendChannel[QueryResult], source: object, sql: str) -> None:
    async for result in source.watch(sql):  # type: ignore[attr-defined]
        await results.send(result)


async def test_watch_yields_once_per_change_that_matters(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        c = await node.open("hits", type="counter")
        other = await node.open("other", type="counter")
        assert isinstance(c, Counter) and isinstance(other, Counter)
        send, receive = trio.open_memory_channel[QueryResult](10)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_collect, send, c, "SELECT value > 10 AS big FROM this")
            with trio.fail_after(5):
                first = await receive.receive()
            assert first.dicts() == [{"big": 0}]

            await c.increment(1)  # changes the counter, not the result
            await other.increment(50)  # another database: not even re-run
            await trio.sleep(1)  # virtual time: well past the debounce
            assert receive.statistics().current_buffer_used == 0

            await c.increment(20)  # 21 > 10: the result changes
            with trio.fail_after(5):
                update = await receive.receive()
            assert update.dicts() == [{"big": 1}]
            await trio.sleep(1)
            assert receive.statistics().current_buffer_used == 0  # exactly one update

            async with c.batch():  # a burst is debounced into one re-run
                for _ in range(3):
                    await c.decrement(10)
            with trio.fail_after(5):
                update = await receive.receive()
            assert update.dicts() == [{"big": 0}]
            nursery.cancel_scope.cancel()


async def test_node_watch_over_two_databases(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        a = await node.open("a", type="counter")
        b = await node.open("b", type="counter")
        assert isinstance(a, Counter) and isinstance(b, Counter)
        send, receive = trio.open_memory_channel[QueryResult](10)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_collect, send, node, "SELECT a.value + b.value AS t FROM a, b")
            with trio.fail_after(5):
                assert (await receive.receive()).dicts() == [{"t": 0}]
            await b.increment(2)
            with trio.fail_after(5):
                assert (await receive.receive()).dicts() == [{"t": 2}]
            await a.increment(3)
            with trio.fail_after(5):
                assert (await receive.receive()).dicts() == [{"t": 5}]
            nursery.cancel_scope.cancel()


async def test_watch_ends_when_the_database_closes(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        c = await node.open("c", type="counter")
        seen = []
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for result in c.watch("SELECT value FROM this"):
                    seen.append(result)

            nursery.start_soon(watch)
            await trio.testing.wait_all_tasks_blocked()
            await c.close()
        assert [r.dicts() for r in seen] == [[{"value": 0}]]


async def test_watch_refuses_a_bad_query_at_once(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        c = await node.open("c", type="counter")
        with pytest.raises(QueryError):
            async for _ in c.watch("DELETE FROM this"):
                pass


async def test_node_query_skips_closed_databases(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        c = await node.open("c", type="counter")
        assert node.query("SELECT value FROM c").dicts() == [{"value": 0}]
        await c.close()
        with pytest.raises(QueryError, match="unknown table 'c'"):
            node.query("SELECT value FROM c")
