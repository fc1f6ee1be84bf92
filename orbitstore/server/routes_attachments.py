"""Attachments over HTTP: upload a file, download one (streamed both ways), pin one.

``PUT /v1/attachments`` takes the raw bytes as the request body (any content type) and
streams them into :meth:`orbitstore.node.attachments.Attachments.attach`; the answer is
``{"cid", "size"}``. ``GET /v1/attachments/{cid}`` streams the file back as
``application/octet-stream`` with its ``Content-Length`` (the root's UnixFS
``filesize``), fetching blocks from peers as they are needed. Errors found before the
first byte (a bad CID, a hostile root, no peer has it) are the usual JSON errors; one
found later can only cut the response short (the length then does not match, which
every HTTP client reports). ``POST /v1/attachments/{cid}/pin`` fetches every missing
block and answers what it did.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from orbitstore.core.cid import Cid
from orbitstore.errors import InvalidValueError
from orbitstore.server.context import context
from orbitstore.server.responses import JSONResponse

_BYTES_BODY = {"content": {"application/octet-stream": {"schema": {"type": "string"}}}}
_CID = {"name": "cid", "in": "path", "required": True, "schema": {"type": "string"}}

#: (method, path, summary, parameters, request body) for the OpenAPI document.
OPERATIONS: list[tuple[str, str, str, list[dict[str, Any]], dict[str, Any] | None]] = [
    ("put", "/v1/attachments", "Store the body as an attachment: {cid, size}", [], _BYTES_BODY),
    ("get", "/v1/attachments/{cid}", "An attachment's bytes (streamed)", [_CID], None),
    ("post", "/v1/attachments/{cid}/pin", "Fetch every block of an attachment", [_CID], None),
]


def _cid(request: Request) -> Cid:
    return Cid.parse(request.path_params["cid"])


async def put_attachment(request: Request) -> Response:
    api = context(request)
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise InvalidValueError("Content-Length is not a number")
    attachments = api.node.attachments
    cid = await attachments.attach(request.stream())
    return JSONResponse({"cid": str(cid), "size": attachments.size_hint(cid)}, status_code=201)


async def get_attachment(request: Request) -> Response:
    api = context(request)
    cid = _cid(request)
    stream = api.node.attachments.open(cid)
    first = await anext(stream, b"")  # errors before the first byte are JSON errors
    total = api.node.attachments.size_hint(cid)

    async def body() -> AsyncIterator[bytes]:
        async with aclosing(stream):  # type: ignore[type-var]
            if first:
                yield first
            async for chunk in stream:
                yield chunk

    headers = {"content-length": str(total)} if total is not None else {}
    return StreamingResponse(body(), media_type="application/octet-stream", headers=headers)


async def pin_attachment(request: Request) -> Response:
    api = context(request)
    stats = await api.node.attachments.pin(_cid(request))
    return JSONResponse(
        {
            "cid": str(stats.cid),
            "size": stats.size,
            "blocks_local": stats.blocks_local,
            "blocks_fetched": stats.blocks_fetched,
            "bytes_fetched": stats.bytes_fetched,
        }
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/attachments", put_attachment, methods=["PUT"]),
        Route("/v1/attachments/{cid}", get_attachment, methods=["GET"]),
        Route("/v1/attachments/{cid}/pin", pin_attachment, methods=["POST"]),
    ]
