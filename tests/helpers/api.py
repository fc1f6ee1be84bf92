"""Helpers for the HTTP API tests: an in-process client and a real Hypercorn server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

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


class WsClosed(Exception):
    """The server closed the WebSocket (``code``, ``reason``)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason


class WsRejected(Exception):
    """The server refused the handshake with an HTTP ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(f"rejected {status}")
        self.status = status


class WsClient:
    """A small WebSocket client (wsproto over a trio TCP stream) that always closes its
    socket: messages are ``str`` (text) or ``bytes`` (binary)."""

    def __init__(self, stream: trio.SocketStream, conn: WSConnection) -> None:
        self._stream = stream
        self._conn = conn
        self._pending: list[str | bytes] = []
        self._parts: list[Any] = []
        self.closed: WsClosed | None = None

    async def _pump(self) -> None:
        data = await self._stream.receive_some(65536)
        if not data:
            self.closed = self.closed or WsClosed(1006, "connection lost")
            return
        self._conn.receive_data(data)
        for event in self._conn.events():
            if isinstance(event, TextMessage | BytesMessage):
                self._parts.append(event.data)
                if event.message_finished:
                    joined = (
                        "".join(self._parts)
                        if isinstance(event, TextMessage)
                        else b"".join(self._parts)
                    )
                    self._pending.append(joined)
                    self._parts = []
            elif isinstance(event, Ping):
                await self._stream.send_all(self._conn.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.closed = WsClosed(event.code, event.reason or "")
                if self._conn.state == ConnectionState.REMOTE_CLOSING:
                    await self._stream.send_all(self._conn.send(event.response()))

    async def receive(self) -> str | bytes:
        """The next message; WsClosed once the server closed."""
        while not self._pending:
            if self.closed is not None:
                raise self.closed
            await self._pump()
        return self._pending.pop(0)

    async def abort(self) -> None:
        """Drop the TCP connection without a close handshake (a client that dies)."""
        self.closed = WsClosed(1006, "aborted")
        await self._stream.aclose()

    async def send(self, message: str | bytes) -> None:
        event = (
            TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
        )
        await self._stream.send_all(self._conn.send(event))


@asynccontextmanager
async def open_ws(url: str) -> AsyncIterator[WsClient]:
    """Connect to ``ws://host:port/path?query``; WsRejected if the handshake is refused."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    try:
        conn = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(conn.send(Request(host=parts.netloc, target=target)))
        client = WsClient(stream, conn)
        while True:
            data = await stream.receive_some(65536)
            if not data:
                raise WsRejected(0)
            conn.receive_data(data)
            events = list(conn.events())
            rejected = [e for e in events if isinstance(e, RejectConnection)]
            if rejected:
                raise WsRejected(rejected[0].status_code)
            if any(isinstance(e, AcceptConnection) for e in events):
                break
        yield client
        if client.closed is None and conn.state == ConnectionState.OPEN:
            with trio.move_on_after(5):
                await stream.send_all(conn.send(CloseConnection(code=1000)))
    finally:
        await stream.aclose()
