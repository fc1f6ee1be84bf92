"""Small WebSocket helpers shared by the feeds: errors as a last message, disconnects."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import trio
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from orbitstore.errors import OrbitstoreError
from orbitstore.server.responses import error_body, status_for

# Close codes 4000-4999 are the application's: 4000 + the HTTP status of the error.
CLOSE_BASE = 4000


def close_code(exc: OrbitstoreError) -> int:
    return CLOSE_BASE + status_for(exc)


async def close_with_error(websocket: WebSocket, exc: OrbitstoreError) -> None:
    """Send ``{"type": "error", "error": {...}}`` and close with 4000 + its HTTP status."""
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    if websocket.client_state != WebSocketState.CONNECTED:
        return
    body = error_body(exc)
    await websocket.send_text(json.dumps({"type": "error", **body}, ensure_ascii=False))
    await websocket.close(code=close_code(exc), reason=exc.code)


async def watch_disconnect(websocket: WebSocket, cancel: trio.CancelScope) -> None:
    """Read (and drop) what the client sends; cancel ``cancel`` when it goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            cancel.cancel()
            return


async def run_until_disconnect(
    websocket: WebSocket, body: Callable[[], Awaitable[None]]
) -> OrbitstoreError | None:
    """Run ``body`` until it returns or the client goes away (then it is cancelled).
    Returns the OrbitstoreError ``body`` raised, for the caller to report and close."""
    error: OrbitstoreError | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_disconnect, websocket, nursery.cancel_scope)
        try:
            await body()
        except OrbitstoreError as exc:
            error = exc
        except WebSocketDisconnect:
            pass
        nursery.cancel_scope.cancel()
    return error
