"""The HTTP + WebSocket API of a node (an ASGI app on the node's trio loop).

    async with orbitstore.open_node("data/") as node, trio.open_nursery() as nursery:
        urls = await nursery.start(serve_api, node, ApiConfig(port=4402))

See docs/http-api.md.
"""

from orbitstore.server.app import create_app as create_app
from orbitstore.server.config import ApiConfig as ApiConfig
from orbitstore.server.serve import serve_api as serve_api
