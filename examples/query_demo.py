"""SQL over orbitstore databases: counters queried, joined, explained and watched live.

Run: ``.venv/bin/python examples/query_demo.py`` (writes to a temporary directory).
"""

from __future__ import annotations

import tempfile
from typing import Any

import trio

import orbitstore
from orbitstore.node.counter import Counter


async def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(home) as node:
            visits = await node.open("visits", type="counter")
            likes = await node.open("likes", type="counter")
            assert isinstance(visits, Counter) and isinstance(likes, Counter)
            await visits.increment(10)
            await likes.increment(3)

            print(visits.query("SELECT value FROM this").dicts())
            print(node.query("SELECT v.value AS visits, l.value AS likes FROM visits v, likes l"))
            print(node.query("SELECT value FROM visits WHERE value > ?", [5]).dicts())
            print([step.access for step in node.explain("SELECT value FROM visits").steps])

            # A live query sends its first result at once, then one per change of it.
            send, results = trio.open_memory_channel[Any](10)

            async def watch() -> None:
                async for result in visits.watch("SELECT value >= 12 AS busy FROM this"):
                    print("live:", result.dicts())
                    await send.send(result.dicts())

            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch)
                    assert await results.receive() == [{"busy": 0}]
                    await visits.increment()  # 11: busy stays false, no new result
                    await visits.increment()  # 12: busy becomes true, one new result
                    assert await results.receive() == [{"busy": 1}]
                    nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
