"""The web console: static files in ``orbitstore/server/console/``, served at ``/``.

Plain JavaScript, no build step and no network beyond this node's own API: the files
ship in the package and the browser loads nothing else.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from orbitstore.errors import NotFoundError

CONSOLE_DIR = Path(__file__).with_name("console")
#: Where the static files are; the token gate lets these through (they hold no data).
CONSOLE_PREFIX = "/console/"


async def index(request: Request) -> Response:
    page = CONSOLE_DIR / "index.html"
    if not page.is_file():
        raise NotFoundError("this installation has no web console files")
    return FileResponse(page, media_type="text/html; charset=utf-8")


def routes() -> list[BaseRoute]:
    return [
        Route("/", index, methods=["GET"]),
        Mount("/console", app=StaticFiles(directory=CONSOLE_DIR, check_dir=False)),
    ]
