"""The changes feed: every entry a database's log holds, in this node's arrival order.

How it works
============

The node numbers entries as they are committed to a log (``seq``, see
:meth:`orbitstore.node.database.Database.changes_since`): local writes and replicated
entries alike, parents always before children. The number only grows and never names
another entry, so it is a cursor: ``since=<the last seq you processed>`` returns exactly
the entries committed after it. A client that disconnects and resumes from its last
cursor misses nothing and sees nothing twice. The views are checkpointed by the same
number, so "the view reflects seq N" and "the feed delivered seq N" mean the same thing.

Three ways to read it (see docs/http-api.md):

- ``GET .../changes?since=N``: one page of at most ``limit`` changes, with ``last_seq``
  (the cursor to pass next) and ``more`` (whether a full page was cut short).
- ``GET .../changes?since=N&feed=longpoll&timeout=S``: the same, but when nothing came
  after ``N`` yet, wait (up to ``S`` seconds) for the first change.
- WebSocket ``.../changes/ws?since=N``: the backlog, a ``caught_up`` marker, then each
  change as it is committed.

The feed wakes on the database's change notifications (published after the commit) and,
because an entry that loses a last-writer-wins race changes no view and so notifies no
one, re-reads the log every :data:`POLL_S` seconds while it waits as well. Reading is
always from the store, never from the notification, so a lagging subscriber loses
nothing.
"""

from __future__ import annotations

import json
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from orbitstore.errors import InvalidValueError, OrbitstoreError
from orbitstore.node.database import Database
from orbitstore.server.context import context, float_param, int_param
from orbitstore.server.responses import JSONResponse, entry_json
from orbitstore.server.wsutil import close_with_error, run_until_disconnect

# Fallback re-read while waiting (entries that change no view notify no subscriber).
POLL_S = 0.5


async def _page(db: Database, since: int, limit: int) -> tuple[list[dict[str, Any]], int, bool]:
    changes = await db.changes_since(since, limit=limit)
    results = [entry_json(entry, seq=seq) for seq, entry in changes]
    last = changes[-1][0] if changes else since
    return results, last, len(changes) == limit


async def wait_for_changes(db: Database, since: int, timeout: float) -> None:
    """Return once an entry arrived after ``since`` or ``timeout`` seconds passed."""
    with trio.move_on_after(timeout):
        async with db.subscribe(buffer=1) as sub:
            while db.last_seq <= since:
                with trio.move_on_after(POLL_S):
                    try:
                        await sub.__anext__()
                    except StopAsyncIteration:  # the database closed: the caller reads
                        return  # from it next and reports ClosedError


async def changes(request: Request) -> Response:
    api = context(request)
    db = await api.handles.get(request.path_params["db"])
    q = request.query_params
    since = int_param(q, "since", default=0)
    limit = int_param(q, "limit", default=api.config.changes_limit, minimum=1)
    assert since is not None and limit is not None
    limit = min(limit, api.config.changes_limit)
    mode = q.get("feed", "normal")
    if mode not in ("normal", "longpoll"):
        raise InvalidValueError(
            f"feed is 'normal' or 'longpoll' (or use .../changes/ws), not {mode!r:.20}"
        )
    if mode == "longpoll" and db.last_seq <= since:
        timeout = min(
            float_param(q, "timeout", default=api.config.max_longpoll_s), api.config.max_longpoll_s
        )
        await wait_for_changes(db, since, timeout)
    results, last, more = await _page(db, since, limit)
    return JSONResponse({"results": results, "last_seq": last, "more": more})


async def changes_ws(websocket: WebSocket) -> None:
    api = context(websocket)
    await websocket.accept()
    try:
        db = await api.handles.get(websocket.path_params["db"])
        since = int_param(websocket.query_params, "since", default=0)
        assert since is not None
    except OrbitstoreError as exc:
        await close_with_error(websocket, exc)
        return
    error = await run_until_disconnect(
        websocket, lambda: _stream(websocket, db, since, api.config.changes_limit)
    )
    if error is not None:  # the database closed under us, the node stopped
        await close_with_error(websocket, error)


async def _stream(websocket: WebSocket, db: Database, cursor: int, limit: int) -> None:
    caught_up = False
    while True:
        results, last, more = await _page(db, cursor, limit)
        for change in results:
            change["type"] = "change"
            await websocket.send_text(json.dumps(change, ensure_ascii=False))
        cursor = last
        if more:
            continue
        if not caught_up:
            caught_up = True
            await websocket.send_text(json.dumps({"type": "caught_up", "last_seq": cursor}))
        await wait_for_changes(db, cursor, POLL_S * 120)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/databases/{db}/changes", changes, methods=["GET"]),
        WebSocketRoute("/v1/databases/{db}/changes/ws", changes_ws),
    ]
