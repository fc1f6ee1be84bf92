"""The web examples without a browser: examples/collab_editor starts two nodes whose
consoles answer; examples/app_backend serves its app and forwards API calls to a node.
(With Chromium: tests/e2e/test_examples_e2e.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from orbitstore.node import open_node
from tests.helpers.api import running_api

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEADLINE = 60.0

PORTS = ["--port-a", "0", "--port-b", "0"]

pytestmark = pytest.mark.slow


def test_collab_editor_starts_two_nodes_and_prints_their_urls(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "collab_editor" / "two_nodes.py"), "--once", *PORTS],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert [line.split(": ")[0] for line in lines] == ["browser A", "browser B"]
    urls = [line.split(": ")[1] for line in lines]
    assert all(u.startswith("http://127.0.0.1:") for u in urls) and urls[0] != urls[1]
    assert list(tmp_path.iterdir()) == []


async def test_app_backend_serves_the_app_and_forwards_the_api(tmp_path: Path) -> None:
    async with open_node(tmp_path / "node") as node, running_api(node) as api:
        command = [sys.executable, str(EXAMPLES / "app_backend" / "serve.py")]
        command += ["--api", api, "--port", "0"]
        async with trio.open_nursery() as nursery:
            process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
            try:
                assert process.stdout is not None
                with trio.fail_after(DEADLINE):
                    first = b""
                    while b"\n" not in first:
                        first += await process.stdout.receive_some(4096)
                url = first.decode().split()[2]
                async with httpx.AsyncClient(base_url=url, timeout=DEADLINE) as http:
                    page = await http.get("/")
                    assert page.status_code == 200 and "app.js" in page.text
                    assert (await http.get("/app.js")).status_code == 200
                    assert (await http.get("/serve.py")).status_code == 404  # only the app
                    db = {"name": "app-notes", "type": "documents", "write": ["*"]}
                    assert (await http.post("/v1/databases", json=db)).status_code == 200
                    note = {"_id": "n1", "text": "hello", "at": 1}
                    assert (await http.post("/v1/databases/app-notes/docs", json=note)).json()[
                        "id"
                    ] == "n1"
                    docs = (await http.get("/v1/databases/app-notes/docs")).json()
                    assert docs == {"documents": [note]}
                    missing = await http.get("/v1/databases/nope")
                    assert missing.status_code == 404 and missing.json()["error"]["code"]
                assert node.databases()["app-notes"]  # it reached the node
            finally:
                process.terminate()
                await process.wait()
                await process.stdout.aclose()  # type: ignore[union-attr]
            nursery.cancel_scope.cancel()
