"""A database as a CAR file over HTTP: ``GET .../car`` exports, ``POST /v1/import`` imports.

Both go through a spooled temporary file (memory up to :data:`SPOOL_BYTES`, then disk):
the export is written whole before the first byte is sent, so the answer is one
consistent snapshot and a failure is an error status, never half a file; the import is
read whole (at most ``ApiConfig.max_import_bytes``) before anything is verified and
stored, so a client that stops half way imports nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import IO

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from orbitstore.errors import InvalidValueError, PayloadTooLargeError
from orbitstore.node.car import export_car, import_car
from orbitstore.server.context import context
from orbitstore.server.responses import JSONResponse

CAR_MEDIA_TYPE = "application/vnd.ipld.car"
SPOOL_BYTES = 8 * 1024 * 1024
CHUNK_BYTES = 256 * 1024


async def export_database(request: Request) -> Response:
    """The database's manifest and every entry block, as a CAR v1 file."""
    db = await context(request).handles.get(request.path_params["db"])
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed by the body
    try:
        count = export_car(db, spool.write)
        size = spool.tell()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    filename = (db.name or str(db.cid)).replace('"', "")
    headers = {
        "content-length": str(size),
        "content-disposition": f'attachment; filename="{filename}.car"',
        "x-orbitstore-entries": str(count),
    }
    return StreamingResponse(_chunks(spool), media_type=CAR_MEDIA_TYPE, headers=headers)


async def _chunks(spool: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        while chunk := spool.read(CHUNK_BYTES):
            yield chunk
    finally:
        spool.close()


def _file_chunks(spool: IO[bytes]) -> Iterator[bytes]:
    while chunk := spool.read(CHUNK_BYTES):
        yield chunk


async def import_database(request: Request) -> Response:
    """The body is a CAR made by ``GET .../car`` (or ``orbitstore export``); every entry
    is verified as if a peer had sent it. ``?name=`` also gives it a local name."""
    api = context(request)
    limit = api.config.max_import_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"the CAR is {declared} bytes; this node imports at most {limit}", limit=limit
        )
    name = request.query_params.get("name") or None
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(
                    f"the CAR is over {limit} bytes (the import limit)", limit=limit
                )
            spool.write(chunk)
        if not size:
            raise InvalidValueError("the request body is empty; a CAR file was expected")
        spool.seek(0)
        report = await import_car(api.node, _file_chunks(spool), name=name)
    if name is not None:
        api.handles.forget(report.address)
    return JSONResponse(
        {
            "address": report.address,
            "type": report.type,
            "entries": report.received,
            "added": report.added,
            "skipped": report.skipped,
        },
        status_code=201,
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/databases/{db}/car", export_database, methods=["GET"]),
        Route("/v1/import", import_database, methods=["POST"]),
    ]
