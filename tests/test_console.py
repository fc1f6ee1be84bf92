"""The web console (orbitstore/server/console/) and ``orbitstore run`` (the ``make run``
job): its files are served with the right types, every API call its JavaScript makes
exists, and the command starts, serves the console, and stops cleanly on SIGINT."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio
from starlette.routing import Match

from orbitstore.cli.run import ADDRESSES_FILE, join_addresses
from orbitstore.errors import UsageError
from orbitstore.node import open_node
from orbitstore.server import ApiConfig
from orbitstore.server.app import routes
from orbitstore.server.console import CONSOLE_DIR
from tests.helpers.api import asgi_client
from tests.test_serve import Served

SCRIPT = (CONSOLE_DIR / "console.js").read_text()
CALL = re.compile(r"""\bapi\("(GET|POST|PUT|PATCH|DELETE)", `([^`]*)`""")
SOCKET = re.compile(r"""\bsocket\(`([^`]*)`""")


def concrete(template: str) -> str:
    """A path for a JS template literal: every ``${...}`` becomes a plain segment."""
    return re.sub(r"\$\{[^}]*\}", "x", template).partition("?")[0]


def console_calls() -> list[tuple[str, str]]:
    calls = [(m, concrete(t)) for m, t in CALL.findall(SCRIPT)]
    calls += [("WS", concrete(t)) for t in SOCKET.findall(SCRIPT)]
    return calls


def test_every_api_call_of_the_console_is_a_route() -> None:
    calls = console_calls()
    # The console's features: chat, todos, sync, databases, entries, SQL, the live feed.
    assert len(calls) >= 11 and ("WS", "/v1/databases/x/changes/ws") in calls
    # The editor's y-websocket provider connects to <server URL>/<room>.
    assert 'new URL("/ydoc", location.href)' in SCRIPT
    calls.append(("WS", "/ydoc/x"))
    for method, path in calls:
        scope = (
            {"type": "websocket", "path": path}
            if method == "WS"
            else {"type": "http", "path": path, "method": method}
        )
        matches = [r.matches(scope)[0] for r in routes()]
        assert Match.FULL in matches, f"the console calls {method} {path}: no such route"


def test_the_console_loads_nothing_from_elsewhere() -> None:
    index = (CONSOLE_DIR / "index.html").read_text()
    assert re.findall(r'(?:src|href)="([^"]*)"', index) == [
        "/console/console.css",
        "/docs",
        "/console/yjs-bundle.js",
        "/console/console.js",
    ]
    bundle = (CONSOLE_DIR / "yjs-bundle.js").read_text()
    assert "OrbitstoreYjs" in bundle and "import(" not in bundle
    for page in CONSOLE_DIR.iterdir():
        if page.name in ("yjs-bundle.js", "README.md"):  # generated; its docs
            continue
        text = page.read_text()
        assert "http://" not in text and "https://" not in text, page.name
        assert "//cdn" not in text and "import(" not in text, page.name


async def test_console_files_are_public_even_with_a_token(tmp_path: Path) -> None:
    token = "a-token-of-sixteen-chars"
    async with open_node(tmp_path / "n") as node, asgi_client(node, ApiConfig(token=token)) as api:
        index = await api.get("/")
        assert index.status_code == 200
        assert index.headers["content-type"] == "text/html; charset=utf-8"
        assert "/console/console.js" in index.text
        for name, kind in (
            ("console.js", "text/javascript"),
            ("yjs-bundle.js", "text/javascript"),
            ("console.css", "text/css"),
        ):
            r = await api.get(f"/console/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        assert (await api.get("/console/nope.js")).status_code == 404
        assert (await api.get("/v1/databases")).status_code == 401  # the data is not public


@asynccontextmanager
async def run(home: Path, *args: str) -> AsyncIterator[Served]:
    """``orbitstore run`` in a process (``--json``); killed if the test did not stop it."""
    command = [sys.executable, "-m", "orbitstore", "--home", str(home), "--json", "run"]
    command += ["--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", *args]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    served = Served(process)
    try:
        yield served
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
            await served._stdout.aclose()


async def stop(served: Served) -> None:
    served.process.send_signal(signal.SIGINT)
    await served.event("stopped")
    with trio.fail_after(30):
        assert await served.process.wait() == 0


@pytest.mark.slow
async def test_run_serves_the_console_and_stops_on_sigint(tmp_path: Path) -> None:
    async with run(tmp_path / "home") as served:
        ready = await served.event("ready")
        assert ready["peer_id"] and ready["addresses"]
        opened = {(await served.event("open"))["name"] for _ in range(3)}
        assert opened == {"chat", "notes", "todos"}
        (url,) = (await served.event("console"))["urls"]
        assert (tmp_path / "home" / ADDRESSES_FILE).read_text().strip() == ready["addresses"][0]
        async with httpx.AsyncClient(base_url=url) as http:
            await _drive_the_console_calls(http)
        await stop(served)
    assert not (tmp_path / "home" / ADDRESSES_FILE).exists()


@pytest.mark.slow
async def test_a_second_run_joins_the_first_and_the_chat_replicates(tmp_path: Path) -> None:
    async with run(tmp_path / "a") as a:
        first = await a.event("open", name="chat")
        (url_a,) = (await a.event("console"))["urls"]
        async with run(tmp_path / "b", "--join", str(tmp_path / "a")) as b:
            assert (await b.event("open", name="chat"))["address"] == first["address"]
            (url_b,) = (await b.event("console"))["urls"]
            async with httpx.AsyncClient(base_url=url_a) as http:
                r = await http.post("/v1/databases/chat/items", json={"value": {"text": "hi"}})
                assert r.status_code == 201
            await b.event("status", name="chat", entries=1)
            async with httpx.AsyncClient(base_url=url_b) as http:
                items = (await http.get("/v1/databases/chat/items")).json()["items"]
                assert [i["value"] for i in items] == [{"text": "hi"}]
            await stop(b)
        await stop(a)


async def test_join_needs_a_running_node(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no `orbitstore run` node is running"):
        join_addresses(tmp_path)


async def _drive_the_console_calls(http: httpx.AsyncClient) -> None:
    """What the page does, over real HTTP: load, chat, todos, sync, browse, SQL."""
    page = await http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (await http.get("/console/console.js")).status_code == 200
    sent = await http.post(
        "/v1/databases/chat/items", json={"value": {"author": "a", "text": "hi"}}
    )
    assert sent.status_code == 201
    items = (await http.get("/v1/databases/chat/items?reverse=true&limit=100")).json()["items"]
    assert [i["value"]["text"] for i in items] == ["hi"]
    assert (await http.get("/v1/databases/chat")).json()["last_seq"] > 0
    todo = {"_id": "t1", "title": "milk", "done": False}
    assert (await http.post("/v1/databases/todos/docs", json=todo)).status_code == 200
    patch = {"set": {"done": True, "title": "oat milk"}}
    assert (await http.patch("/v1/databases/todos/docs/t1", json=patch)).status_code == 200
    docs = (await http.get("/v1/databases/todos/docs?limit=1000")).json()["documents"]
    assert [(d["title"], d["done"]) for d in docs] == [("oat milk", True)]
    sync = (await http.get("/v1/sync")).json()
    assert sync["peer_id"] and {d["name"] for d in sync["databases"]} >= {"chat", "todos"}
    names = {d["name"] for d in (await http.get("/v1/databases")).json()["databases"]}
    assert names == {"chat", "notes", "todos"}
    entries = (await http.get("/v1/databases/chat/entries?limit=50&reverse=true")).json()
    assert len(entries["entries"]) == 1
    rows = (await http.post("/v1/query", json={"sql": "SELECT id FROM todos"})).json()["rows"]
    assert rows == [["t1"]]
    assert (await http.delete("/v1/databases/todos/docs/t1")).status_code == 200
