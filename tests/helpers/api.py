"""Helpers for the HTTP API tests: an in-process client and a real Hypercorn server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import trio

from orbitstore.node import Node
from orbitstore.server import ApiConfig, create_app, serve_api


@asynccontextmanager
async def asgi_client(
    node: Node, config: ApiConfig | None = None, *, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling the app in process (no socket)."""
    transport = httpx.ASGITransport(app=create_app(node, config))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api.test", headers=headers
    ) as client:
        yield client


@asynccontextmanager
async def running_api(node: Node, config: ApiConfig | None = None) -> AsyncIterator[str]:
    """Hypercorn serving ``node`` on 127.0.0.1 (a free port); yields its base URL."""
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(serve_api, node, config or ApiConfig(port=0))
        yield urls[0]
        nursery.cancel_scope.cancel()
