"""``api_put_get``: keyvalue put + get round trips per second through the HTTP API.

A node (SQLite in a temporary directory) serves its API with Hypercorn on 127.0.0.1;
clients in the same process (httpx over real loopback sockets, one connection each)
alternate ``PUT /v1/databases/kv/keys/<k>`` and ``GET`` of the same key. Every request
is one round trip; the rate counts both. Run with 1 client, then 50 concurrent clients
(the same total work split between them). Client and server share the process and its
trio loop, so the figure is a floor for a client on another machine.

Run: ``.venv/bin/python benchmarks/bench_api.py [--quick]``
"""

from __future__ import annotations

import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, parse_args

import orbitstore
from orbitstore.server import ApiConfig, serve_api


async def _client(client: httpx.AsyncClient, worker: int, pairs: int) -> None:
    for i in range(pairs):
        path = f"/v1/databases/kv/keys/w{worker}-{i}"
        put = await client.put(path, json={"value": {"i": i, "text": "hello"}})
        got = await client.get(path)
        if put.status_code != 200 or got.json()["value"]["i"] != i:
            raise SystemExit(f"unexpected answer: {put.text} {got.text}")


async def measure(pairs: int, clients: int) -> float:
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(Path(home) / "node") as node:
            await node.open("kv", type="keyvalue")
            async with trio.open_nursery() as nursery:
                urls = await nursery.start(serve_api, node, ApiConfig(port=0))
                # Clients are made before the clock starts: an httpx client loads the
                # system's CA bundle (~30 ms) even for plain http, which is not a round trip.
                async with AsyncExitStack() as stack:
                    pool = [
                        await stack.enter_async_context(httpx.AsyncClient(base_url=urls[0]))
                        for _ in range(clients)
                    ]
                    started = time.perf_counter()
                    async with trio.open_nursery() as workers:
                        for w, client in enumerate(pool):
                            workers.start_soon(_client, client, w, pairs // clients)
                    elapsed = time.perf_counter() - started
                nursery.cancel_scope.cancel()
    return 2 * (pairs // clients) * clients / elapsed


def main() -> None:
    args = parse_args(__doc__ or "")
    pairs, reps = (100, 1) if args.quick else (1000, 3)
    for clients in (1, 50):
        runs = [trio.run(measure, pairs, clients) for _ in range(reps)]
        emit("api_put_get", runs, "round_trips/s", 2 * pairs, clients=clients, **machine())


if __name__ == "__main__":
    main()
