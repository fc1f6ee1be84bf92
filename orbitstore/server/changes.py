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

With ``conflicts=true`` (keyvalue and documents), each change also carries
``conflicts``: for every key (document id) the entry writes that has concurrent losing
writes *now*, those writes (as ``GET .../keys/{key}?conflicts=true`` gives them). It is
read when the page is served, so a change delivered later shows what is true then.

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

from orbitstore.core.capability_log import payload_keys
from orbitstore.core.entry import Entry
from orbitstore.errors import InvalidValueError, OrbitstoreError
from orbitstore.node.database import Database
from orbitstore.node.documents import Documents
from orbitstore.node.keyvalue import KeyValue
from orbitstore.server.context import bool_param, context, float_param, int_param
from orbitstore.server.responses import JSONResponse, conflicts_json, entry_json
from orbitstore.server.wsutil import close_with_error, run_until_disconnect

# Fallback re-read while waiting (entries that change no view notify no subscriber).
POLL_S = 0.5


async def _page(
    db: Database, since: int, limit: int, *, conflicts: bool = False
) -> tuple[list[dict[str, Any]], int, bool]:
    changes = await db.changes_since(since, limit=limit)
    results = [entry_json(entry, seq=seq) for seq, entry in changes]
    if conflicts and isinstance(db, KeyValue | Documents):
        for result, (_, entry) in zip(results, changes, strict=True):
            result["conflicts"] = _conflicts_now(db, entry)
    last = changes[-1][0] if changes else since
    return results, last, len(changes) == limit


def _conflicts_now(db: KeyValue | Documents, entry: Entry) -> dict[str, list[dict[str, Any]]]:
    """For each key (or document id) ``entry`` writes that has conflicts now: the
    concurrent writes that lost to its visible value (``?conflicts=true``)."""
    id_field = db.id_field if isinstance(db, Documents) else "_id"
    keys = payload_keys(entry.payload, id_field) or ()
    out: dict[str, list[dict[str, Any]]] = {}
    for key in dict.fromkeys(keys):
        found = db.conflicts(key)
        if found:
            out[key] = conflicts_json(found)
    return out


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
    results, last, more = await _page(db, since, limit, conflicts=bool_param(q, "conflicts"))
    return JSONResponse({"results": results, "last_seq": last, "more": more})


async def changes_ws(websocket: WebSocket) -> None:
    api = context(websocket)
    await websocket.accept()
    try:
        db = await api.handles.get(websocket.path_params["db"])
        since = int_param(websocket.query_params, "since", default=0)
        assert since is not None
        conflicts = bool_param(websocket.query_params, "conflicts")
    except OrbitstoreError as exc:
        await close_with_error(websocket, exc)
        return
    error = await run_until_disconnect(
        websocket, lambda: _stream(websocket, db, since, api.config.changes_limit, conflicts)
    )
    if error is not None:  # the database closed under us, the node stopped
        await close_with_error(websocket, error)


async def _stream(
    websocket: WebSocket, db: Database, cursor: int, limit: int, conflicts: bool
) -> None:
    caught_up = False
    while True:
        results, last, more = await _page(db, cursor, limit, conflicts=conflicts)
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
