"""SQL (query, EXPLAIN, live queries over a WebSocket) and sync status, peers, connect."""

from __future__ import annotations

import json
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from orbitstore.errors import (
    InvalidValueError,
    OrbitstoreError,
    PeerUnavailableError,
    UsageError,
)
from orbitstore.node.database import Database
from orbitstore.query.results import QueryPlan, QueryResult
from orbitstore.server.context import ApiContext, context
from orbitstore.server.responses import JSONResponse, field, json_object, jsonable, parse_json
from orbitstore.server.status import database_status, node_status
from orbitstore.server.wsutil import close_with_error, run_until_disconnect


def result_json(result: QueryResult) -> dict[str, Any]:
    return {
        "columns": list(result.columns),
        "rows": [[jsonable(v) for v in row] for row in result.rows],
    }


def plan_json(plan: QueryPlan) -> dict[str, Any]:
    steps = [
        {"table": s.table, "access": s.access, "index": s.index, "path": s.path, "detail": s.detail}
        for s in plan.steps
    ]
    return {"steps": steps, "sql": plan.sql, "uses_index": plan.uses_index}


def _query_request(body: dict[str, Any]) -> tuple[str, Any, str | None]:
    sql = field(body, "sql", str)
    params = body.get("params")
    if params is not None and not isinstance(params, list | dict):
        raise InvalidValueError("'params' is a list (for ?) or an object (for :name)")
    database = field(body, "database", str, default=None)
    return sql, params, database


async def _target(api: ApiContext, database: str | None) -> Database | None:
    """The one database a query names, or None for a node-wide query (after opening
    every database this node knows by name, so each is a table)."""
    if database is not None:
        return await api.handles.get(database)
    for name in api.node.databases():
        await api.handles.get(name)
    return None


async def query(request: Request) -> Response:
    """``{"sql": "SELECT ...", "params": [...] | {...}, "database": name?}``."""
    api = context(request)
    sql, params, database = _query_request(await json_object(request, api.config.max_body_bytes))
    db = await _target(api, database)
    result = db.query(sql, params) if db is not None else api.node.query(sql, params)
    return JSONResponse(result_json(result))


async def explain(request: Request) -> Response:
    api = context(request)
    sql, params, database = _query_request(await json_object(request, api.config.max_body_bytes))
    db = await _target(api, database)
    plan = db.explain(sql, params) if db is not None else api.node.explain(sql, params)
    return JSONResponse(plan_json(plan))


async def watch_ws(websocket: WebSocket) -> None:
    """A live query: the client sends one ``{"sql", "params", "database"}`` message; the
    server sends ``{"type": "result", "columns", "rows"}`` now and after every change
    that alters the result."""
    api = context(websocket)
    await websocket.accept()
    try:
        try:
            text = await websocket.receive_text()
        except KeyError as exc:  # a binary frame where text was expected
            raise InvalidValueError("send the query as a JSON text message") from exc
        body = parse_json(text, "watch request")
        if not isinstance(body, dict):
            raise InvalidValueError("the watch request is a JSON object")
        sql, params, database = _query_request(body)
        db = await _target(api, database)
        results = db.watch(sql, params) if db is not None else api.node.watch(sql, params)
    except WebSocketDisconnect:
        return
    except OrbitstoreError as exc:
        await close_with_error(websocket, exc)
        return

    async def push() -> None:
        async for result in results:
            message = {"type": "result", **result_json(result)}
            await websocket.send_text(json.dumps(message, ensure_ascii=False))

    error = await run_until_disconnect(websocket, push)
    if error is not None:
        await close_with_error(websocket, error)


# -- sync -------------------------------------------------------------------------------


async def sync_status(request: Request) -> Response:
    api = context(request)
    databases = [database_status(api.node, db, api.rooms) for db in api.node.open_databases()]
    return JSONResponse({**node_status(api.node), "databases": databases})


async def database_sync(request: Request) -> Response:
    api = context(request)
    db = await api.handles.get(request.path_params["db"])
    return JSONResponse(database_status(api.node, db, api.rooms))


async def peers(request: Request) -> Response:
    return JSONResponse(node_status(context(request).node))


async def connect(request: Request) -> Response:
    """``{"address": "<multiaddr with /p2p/<peer id>>"}``: dial and keep connected."""
    api = context(request)
    address = field(await json_object(request, api.config.max_body_bytes), "address", str)
    replication = api.node.replication
    if replication is None:
        raise UsageError("this node has no network transport: there is no peer to connect to")
    try:
        peer = await replication.connect(address)
    except trio.TooSlowError as exc:  # Replication.connect's own deadline
        raise PeerUnavailableError(f"connecting to {address!r:.200} timed out") from exc
    return JSONResponse({"peer": peer, "address": address})


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/query", query, methods=["POST"]),
        Route("/v1/explain", explain, methods=["POST"]),
        WebSocketRoute("/v1/watch", watch_ws),
        Route("/v1/sync", sync_status, methods=["GET"]),
        Route("/v1/databases/{db}/sync", database_sync, methods=["GET"]),
        Route("/v1/peers", peers, methods=["GET"]),
        Route("/v1/peers", connect, methods=["POST"]),
    ]
