"""SQL over orbitstore databases: a counter queried, joined and watched live.

Run: ``.venv/bin/python examples/query_quickstart.py`` (writes to a temporary directory).
"""

from __future__ import annotations

import tempfile

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
            print([step.access for step in node.explain("SELECT value FROM visits").steps])

            async def watch() -> None:
                async for result in visits.watch("SELECT value >= 12 AS busy FROM this"):
                    print("live:", result.dicts())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                await trio.sleep(0.1)
                await visits.increment()  # busy stays false: no update
                await visits.increment()  # busy becomes true: one update
                await trio.sleep(0.2)
                nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
