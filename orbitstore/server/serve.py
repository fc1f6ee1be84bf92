"""Serve the API with Hypercorn's trio worker, inside the node's own trio loop."""

from __future__ import annotations

import logging
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from orbitstore.node.node import Node
from orbitstore.server.app import create_app
from orbitstore.server.config import ApiConfig


def hypercorn_config(config: ApiConfig) -> HypercornConfig:
    hc = HypercornConfig()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hc.bind = [f"{host}:{config.port}"]
    hc.websocket_max_message_size = config.max_message_bytes
    hc.accesslog = None
    hc.errorlog = logging.getLogger("orbitstore.server.hypercorn")
    # Let the node's own signal handling decide when to stop.
    hc.graceful_timeout = 2.0
    return hc


async def serve_api(
    node: Node,
    config: ApiConfig | None = None,
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``node``'s API until cancelled. ``task_status.started`` gets the bound
    URLs (``http://127.0.0.1:4402``; with port 0, the port the OS chose)::

        async with open_node(path) as node, trio.open_nursery() as nursery:
            urls = await nursery.start(serve_api, node, ApiConfig(port=0))
    """
    config = config or ApiConfig()
    app = create_app(node, config)
    hc = hypercorn_config(config)
    # Our own listening sockets, closed on the way out: Hypercorn leaves the ones it
    # creates to the garbage collector when it is cancelled.
    sockets = hc.create_sockets()
    try:
        for sock in sockets.insecure_sockets:
            sock.listen(hc.backlog)
        wrapped = wrap_app(app, hc.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
        await worker_serve(wrapped, hc, sockets=sockets, task_status=task_status)
    finally:
        for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
            sock.close()
