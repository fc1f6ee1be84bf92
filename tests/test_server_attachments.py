"""Attachments over the HTTP API: PUT streams a body in, GET streams the file out (with
its length), pin fetches; errors are JSON with the usual statuses. A real Hypercorn
server on 127.0.0.1, so the bodies really stream."""

from __future__ import annotations

import os

import httpx
import trio

from orbitstore.core.cid import RAW, Cid
from orbitstore.core.unixfs import AttachmentLimits, build_file
from orbitstore.node import open_node
from orbitstore.node.attachments import AttachmentsConfig
from orbitstore.node.config import NodeConfig
from tests.helpers.api import running_api

DEADLINE = 60.0


async def test_put_get_and_pin_an_attachment_streamed() -> None:
    data = os.urandom(2 * 262144 + 99)
    config = NodeConfig(attachments=AttachmentsConfig(limits=AttachmentLimits(max_size=10**6)))
    with trio.fail_after(DEADLINE):
        async with (
            open_node(None, config=config) as node,
            running_api(node) as base,
            httpx.AsyncClient(base_url=base) as client,
        ):
            if True:

                async def body():  # type: ignore[no-untyped-def]
                    for start in range(0, len(data), 100_000):
                        yield data[start : start + 100_000]

                put = await client.put("/v1/attachments", content=body())
                assert put.status_code == 201, put.text
                cid = put.json()["cid"]
                assert put.json() == {"cid": str(build_file(data)[0]), "size": len(data)}
                async with client.stream("GET", f"/v1/attachments/{cid}") as got:
                    assert got.status_code == 200
                    assert got.headers["content-length"] == str(len(data))
                    assert got.headers["content-type"] == "application/octet-stream"
                    received = b"".join([chunk async for chunk in got.aiter_bytes()])
                assert received == data
                pin = await client.post(f"/v1/attachments/{cid}/pin")
                assert pin.json()["size"] == len(data) and pin.json()["blocks_fetched"] == 0

                too_big = await client.put("/v1/attachments", content=b"x" * (10**6 + 1))
                assert too_big.status_code == 413
                assert too_big.json()["error"]["code"] == "payload_too_large"
                bad = await client.get("/v1/attachments/not-a-cid")
                assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cid"
                missing = Cid.for_block(b"nobody", RAW)
                gone = await client.get(f"/v1/attachments/{missing}")
                assert gone.status_code == 502
                assert gone.json()["error"]["code"] == "attachment_unavailable"
                spec = (await client.get("/openapi.json")).json()
                assert "put" in spec["paths"]["/v1/attachments"]
