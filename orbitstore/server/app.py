"""The ASGI application: routes, the token check, and errors as JSON.

``create_app(node, config)`` builds a Starlette app bound to one open node; serve it
with :func:`orbitstore.server.serve.serve_api` (Hypercorn's trio worker, on the node's
own trio loop) or hand it to any ASGI server running trio.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from orbitstore.errors import NotFoundError, OrbitstoreError, UnauthorizedError, UsageError
from orbitstore.node.node import Node
from orbitstore.server import (
    changes,
    console,
    openapi,
    routes_archive,
    routes_attachments,
    routes_data,
    routes_members,
    routes_query,
)
from orbitstore.server.config import ApiConfig
from orbitstore.server.context import ApiContext, context
from orbitstore.server.handles import Handles
from orbitstore.server.responses import (
    JSONResponse,
    error_body,
    error_response,
    internal_error,
    log,
)
from orbitstore.server.status import node_status
from orbitstore.server.ywebsocket import ydoc_ws

#: Paths anyone may read without the token: they describe the API, not the data (and
#: the console's static files, under ``/console/``: the page asks for the token).
PUBLIC_PATHS = frozenset({"/", "/docs", "/openapi.json"})


class TokenGate:
    """ASGI middleware: with a token configured, every request must carry it, as
    ``Authorization: Bearer <token>`` or (for WebSockets, which browsers cannot give
    headers) a ``token`` query parameter."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        public = path in PUBLIC_PATHS or path.startswith(console.CONSOLE_PREFIX)
        if public or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        exc = UnauthorizedError("this node's API needs 'Authorization: Bearer <token>'")
        if scope["type"] == "websocket":
            # Refusing the handshake: the client sees HTTP 403 (ASGI's only option).
            await send({"type": "websocket.close", "code": 1008, "reason": exc.code})
            return
        response = error_response(exc)
        response.headers["www-authenticate"] = "Bearer"
        await response(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        assert self.token is not None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token):
                    return True
        if scope["type"] == "websocket":
            from urllib.parse import parse_qs

            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            for given_text in query.get("token", ()):
                if hmac.compare_digest(given_text.encode(), self.token):
                    return True
        return False


async def _orbitstore_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OrbitstoreError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: OrbitstoreError
    if exc.status_code == 404:
        error = NotFoundError(f"no such endpoint: {request.method} {request.url.path}")
    elif exc.status_code == 405:
        error = UsageError(f"{request.method} is not allowed on {request.url.path}")
    else:
        error = UsageError(str(exc.detail))
    body = error_body(error)
    if exc.status_code == 405:
        body["error"]["code"] = "method_not_allowed"
    return Response(json.dumps(body), status_code=exc.status_code, media_type="application/json")


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return internal_error()


async def node_route(request: Request) -> Response:
    api = context(request)
    return JSONResponse(
        {
            **node_status(api.node),
            "databases": len(api.node.databases()),
            "ydoc_clients": api.rooms.statistics(),
        }
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/node", node_route, methods=["GET"]),
        *routes_data.routes(),
        *routes_members.routes(),
        *routes_archive.routes(),
        *changes.routes(),
        *routes_query.routes(),
        *routes_attachments.routes(),
        WebSocketRoute("/ydoc/{db}", ydoc_ws),
        *openapi.routes(),
        *console.routes(),
    ]


def create_app(node: Node, config: ApiConfig | None = None) -> Starlette:
    """The API for ``node``; ``config`` sets the token and the limits."""
    config = config or ApiConfig()
    handlers: dict[Any, Any] = {
        OrbitstoreError: _orbitstore_error,
        HTTPException: _http_error,
        Exception: _internal_error,
    }
    app = Starlette(routes=routes(), exception_handlers=handlers)
    app.state.orbitstore = ApiContext(node=node, config=config, handles=Handles(node))
    app.add_middleware(TokenGate, token=config.token)
    return app
