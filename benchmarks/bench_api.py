"""``api_put_get``: keyvalue put + get round trips per second through the HTTP API.

A node (SQLite in a temporary directory) serves its API with Hypercorn on 127.0.0.1;
clients in the same process (httpx over real loopback sockets, one connection each)
alternate ``PUT /v1/databases/kv/keys/<k>`` and ``GET`` of the same key. Every request
is one round trip; the rate counts both. Run with 1 client, then 50 concurrent clients
(the same total work split between them). Client and server share the process and its
trio loop, so the figure is a floor for a client on another machine.

Two baselines, in the same run, split the cost of a round trip:

- ``api_put_get_python``: the same put + get pairs on the Python handle (``kv.put``,
  ``kv.get``): the work itself, what the command line does after start-up.
- ``api_put_get_asgi``: the same requests handed to the ASGI app directly (no sockets,
  no HTTP parsing): our routes, Starlette's routing and JSON.

What ``api_put_get`` adds to ``api_put_get_asgi`` is the HTTP stack on both sides
(Hypercorn's h11 server and httpx's h11 client, both pure Python, sharing one process).

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
from orbitstore.node.keyvalue import KeyValue
from orbitstore.server import ApiConfig, serve_api
from orbitstore.server.app import create_app

# A loaded machine can hold one of 50 concurrent requests for longer than httpx's 5 s
# default: a slow run, not a failed one.
TIMEOUT_S = 120.0


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
                        await stack.enter_async_context(
                            httpx.AsyncClient(base_url=urls[0], timeout=TIMEOUT_S)
                        )
                        for _ in range(clients)
                    ]
                    started = time.perf_counter()
                    async with trio.open_nursery() as workers:
                        for w, client in enumerate(pool):
                            workers.start_soon(_client, client, w, pairs // clients)
                    elapsed = time.perf_counter() - started
                nursery.cancel_scope.cancel()
    return 2 * (pairs // clients) * clients / elapsed


async def measure_python(pairs: int) -> float:
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(Path(home) / "node") as node:
            kv = await node.open("kv", type="keyvalue")
            assert isinstance(kv, KeyValue)
            started = time.perf_counter()
            for i in range(pairs):
                await kv.put(f"w0-{i}", {"i": i, "text": "hello"})
                if kv.get(f"w0-{i}")["i"] != i:
                    raise SystemExit("unexpected value")
            elapsed = time.perf_counter() - started
    return 2 * pairs / elapsed


async def measure_asgi(pairs: int) -> float:
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(Path(home) / "node") as node:
            await node.open("kv", type="keyvalue")
            transport = httpx.ASGITransport(app=create_app(node, ApiConfig()))
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                started = time.perf_counter()
                await _client(client, 0, pairs)
                elapsed = time.perf_counter() - started
    return 2 * pairs / elapsed


def main() -> None:
    args = parse_args(__doc__ or "")
    pairs, reps = (100, 1) if args.quick else (1000, 3)
    runs = [trio.run(measure_python, pairs) for _ in range(reps)]
    emit("api_put_get_python", runs, "round_trips/s", 2 * pairs, clients=1, **machine())
    runs = [trio.run(measure_asgi, pairs) for _ in range(reps)]
    emit("api_put_get_asgi", runs, "round_trips/s", 2 * pairs, clients=1, **machine())
    for clients in (1, 50):
        runs = [trio.run(measure, pairs, clients) for _ in range(reps)]
        emit("api_put_get", runs, "round_trips/s", 2 * pairs, clients=clients, **machine())


if __name__ == "__main__":
    main()
