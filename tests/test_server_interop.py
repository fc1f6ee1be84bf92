"""A stock Yjs client (``yjs`` + ``y-websocket`` from npm, run by Node.js) edits a ydoc
database through the y-websocket endpoint, and its awareness reaches a second client.

The npm packages are installed from ``tests/interop/package-lock.json`` into
``tests/interop/node_modules`` on first run (``npm ci``). Skipped only when ``node`` or
``npm`` is not installed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import trio

from orbitstore.node import open_node
from orbitstore.node.ydoc import YDocument
from tests.helpers.api import running_api
from tests.helpers.npm import NEEDS_NODE_JS, installed

INTEROP = Path(__file__).parent / "interop"
DEADLINE = 120.0

pytestmark = NEEDS_NODE_JS


@pytest.fixture(scope="module")
def node_modules() -> Path:
    return installed(INTEROP, ("y-websocket", "yjs"))


async def test_stock_yjs_clients_sync_and_see_each_others_awareness(
    tmp_path: Path, node_modules: Path
) -> None:
    initial, final = "hello from python", "hello from python and from js!"
    async with open_node(tmp_path / "node") as node:
        db = await node.open("notes", type="ydoc")
        assert isinstance(db, YDocument)
        await db.append_text(initial)
        async with running_api(node) as base:
            url = base.replace("http://", "ws://", 1) + "/ydoc"
            command = ["node", str(INTEROP / "client.mjs"), url, "notes", initial, final]
            with trio.fail_after(DEADLINE):
                async with trio.open_nursery() as nursery:
                    process = await nursery.start(
                        lambda task_status: trio.run_process(
                            command,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            check=False,
                            task_status=task_status,
                        )
                    )
                    # The JS edit arrives as an entry; then Python edits, JS must see it.
                    async with db.subscribe() as changes:
                        while db.text() != initial + " and from js":
                            await changes.__anext__()
                    await db.append_text("!")
                    lines = []
                    async for chunk in process.stdout:
                        lines.append(chunk)
                    await process.wait()
            assert db.text() == final
    out = b"".join(lines).decode()
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    stderr = (await process.stderr.receive_some(65536)).decode() if process.stderr else ""
    assert process.returncode == 0, (out, stderr)
    assert [e["event"] for e in events] == ["synced", "awareness", "done"]
    assert events[-1] == {"event": "done", "one": final, "two": final}
