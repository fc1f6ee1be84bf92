"""Awareness over gossip: stock Yjs clients on two nodes (real libp2p on 127.0.0.1, each
node with its own HTTP server) see each other's presence; none of it is stored.

The npm packages come from ``tests/interop/package-lock.json`` (see
tests/test_server_interop.py). Skipped only when ``node`` or ``npm`` is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from orbitstore.net.libp2p_config import Libp2pConfig
from orbitstore.net.libp2p_transport import open_libp2p_transport
from orbitstore.node import open_node
from orbitstore.node.ydoc import YDocument
from tests.helpers.api import running_api
from tests.helpers.npm import NEEDS_NODE_JS, installed

INTEROP = Path(__file__).parent / "interop"
DEADLINE = 90.0

pytestmark = NEEDS_NODE_JS


@pytest.fixture(scope="module")
def node_modules() -> Path:
    return installed(INTEROP, ("y-websocket", "yjs"))


async def test_yjs_clients_on_two_nodes_see_each_others_awareness(
    tmp_path: Path, node_modules: Path
) -> None:
    async with (
        open_libp2p_transport(Libp2pConfig(), key_path=None) as ta,
        open_libp2p_transport(Libp2pConfig(), key_path=None) as tb,
        open_node(tmp_path / "a", transport=ta) as a,
        open_node(tmp_path / "b", transport=tb) as b,
    ):
        doc_a = await a.open("notes", type="ydoc", write=["*"])
        doc_b = await b.open("notes", type="ydoc", write=["*"])
        assert isinstance(doc_a, YDocument) and isinstance(doc_b, YDocument)
        assert doc_a.cid == doc_b.cid
        await ta.connect(tb.listen_addresses()[0])
        assert a.replication is not None and b.replication is not None
        await a.replication.wait_synced(doc_a, timeout=DEADLINE, min_peers=1)
        async with running_api(a) as base_a, running_api(b) as base_b:
            urls = [u.replace("http://", "ws://", 1) + "/ydoc" for u in (base_a, base_b)]
            command = ["node", str(INTEROP / "awareness.mjs"), *urls, "notes"]
            with trio.fail_after(DEADLINE):
                done = await trio.run_process(
                    command, capture_stdout=True, capture_stderr=True, check=False
                )
        out, err = done.stdout.decode(), done.stderr.decode()
        assert done.returncode == 0, (out, err)
        events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert [e["event"] for e in events] == ["a-sees-b", "b-sees-a", "b-gone"]
        assert events[0]["a"] == ["on-b"] and events[1]["b"] == ["on-a", "on-b"]
        # Ephemeral: nothing of it reached either log, and it went over gossip.
        assert len(doc_a) == len(doc_b) == 0
        counts_a, counts_b = a.replication.awareness.counts, b.replication.awareness.counts
        assert counts_a.received >= 1 and counts_b.received >= 1
        assert counts_a.rejected == counts_b.rejected == 0
