"""JSON in and out: request bodies as DAG-JSON, responses, and errors with HTTP statuses.

Every error the API returns is ``{"error": {"code": ..., "message": ..., ...details}}``
(:meth:`orbitstore.errors.OrbitstoreError.to_dict`) with the status its class maps to
in :func:`status_for`: the caller's mistakes are 4xx, bad data 422, our storage 5xx,
the network 502/504. Anything else escaping a handler is a bug: logged, and answered
with a 500 ``internal`` error that says no more.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from orbitstore.core import dagjson
from orbitstore.core.entry import Entry
from orbitstore.errors import (
    ClosedError,
    DecodeError,
    InvalidDataError,
    InvalidValueError,
    NetworkError,
    NotAMemberError,
    NotFoundError,
    OrbitstoreError,
    PayloadTooLargeError,
    StorageError,
    SyncTimeoutError,
    UnauthorizedError,
    UnauthorizedWriterError,
    UsageError,
    WriteNotAllowedError,
    WrongDatabaseTypeError,
)
from orbitstore.views.base import Conflict

log = logging.getLogger("orbitstore.server")

# Most specific first: the first class an error is an instance of decides its status.
_STATUS: tuple[tuple[type[OrbitstoreError], int], ...] = (
    (UnauthorizedError, 401),
    (WriteNotAllowedError, 403),
    (UnauthorizedWriterError, 403),  # AccessDeniedError: this identity lacks the right
    (NotAMemberError, 403),
    (NotFoundError, 404),
    (WrongDatabaseTypeError, 409),
    (ClosedError, 409),
    (PayloadTooLargeError, 413),
    (UsageError, 400),  # InvalidValueError, InvalidAddressError, QueryError, ...
    (InvalidDataError, 422),
    (SyncTimeoutError, 504),
    (NetworkError, 502),
    (StorageError, 500),
)


def status_for(exc: OrbitstoreError) -> int:
    """The HTTP status of an error."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


class JSONResponse(Response):
    """A response whose content is already JSON text, or data to dump as JSON."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, str):
            return content.encode("utf-8")
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_body(exc: OrbitstoreError) -> dict[str, Any]:
    body = exc.to_dict()
    for key in ("line", "column"):  # keep positions numbers (to_dict stringifies details)
        value = getattr(exc, key, None)
        if key in body:
            body[key] = value
    return {"error": body}


# No error answer asks to close the connection. Every error is a complete answer, and
# Hypercorn reads and discards what is left of a body we refused (413 before reading it),
# so the next request on the connection is served. ``Connection: close`` set by the app
# races Hypercorn's own close (it shuts the socket down without its send lock, so the
# answer being written can be lost: seen on a loaded machine); h11 closes by itself
# whenever HTTP requires it.


def error_response(exc: OrbitstoreError) -> JSONResponse:
    return JSONResponse(error_body(exc), status_code=status_for(exc))


def internal_error() -> JSONResponse:
    body = {"error": {"code": "internal", "message": "internal server error (see the node's log)"}}
    return JSONResponse(body, status_code=500)


def jsonable(value: Any) -> Any:
    """A DAG-CBOR value as plain JSON data (bytes and links in their DAG-JSON forms)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.loads(dagjson.to_json(value))


def conflicts_json(conflicts: Iterable[Conflict]) -> list[dict[str, Any]]:
    """Concurrent writes that lost (``Conflict``), newest first, as JSON: ``value``
    (null when it deleted), ``deleted``, ``cid``, ``writer``, ``clock``, and ``field``
    for a document merged field by field."""
    out = []
    for c in conflicts:
        item: dict[str, Any] = {
            "value": jsonable(c.value),
            "deleted": c.deleted,
            "cid": str(c.cid),
            "writer": c.writer,
            "clock": c.clock,
        }
        if c.field is not None:
            item["field"] = c.field
        out.append(item)
    return out


def entry_json(entry: Entry, *, seq: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {} if seq is None else {"seq": seq}
    out.update(
        cid=str(entry.cid),
        clock=entry.clock,
        writer=entry.writer,
        next=[str(c) for c in entry.next],
        ts=entry.ts,
        payload=jsonable(entry.payload),
    )
    return out


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes (PayloadTooLargeError) before
    reading them when ``Content-Length`` says so, and while reading otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidValueError("Content-Length is not a number")
        if int(declared) > limit:
            raise PayloadTooLargeError(
                f"the request body is {declared} bytes; the limit is {limit}", limit=limit
            )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"the request body is over {limit} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(data: bytes | str, what: str = "request body") -> Any:
    """A DAG-JSON value (bytes as ``{"/": {"bytes": ...}}``, links as ``{"/": cid}``);
    InvalidValueError (400) if it is not JSON."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise InvalidValueError(f"the {what} is not UTF-8") from exc
    if not text.strip():
        raise InvalidValueError(f"the {what} is empty; JSON was expected")
    try:
        return dagjson.from_json(text)
    except DecodeError as exc:
        detail = str(exc).removeprefix("not valid DAG-JSON: ")
        raise InvalidValueError(f"the {what} is not valid JSON: {detail}") from exc


async def json_body(request: Request, limit: int) -> Any:
    return parse_json(await read_body(request, limit))


async def json_object(request: Request, limit: int) -> dict[str, Any]:
    value = await json_body(request, limit)
    if not isinstance(value, dict):
        raise InvalidValueError("the request body must be a JSON object")
    return value


def field(
    body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, default: Any = ...
) -> Any:
    """``body[name]``, checked to be of ``kind``; InvalidValueError when missing or wrong."""
    if name not in body:
        if default is ...:
            raise InvalidValueError(f"the request body needs a {name!r} field")
        return default
    value = body[name]
    if value is None and default is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise InvalidValueError(f"{name!r} has the wrong type ({type(value).__name__})")
    return value
