"""Attachments against real IPFS software: Helia (JS IPFS, from npm, run by Node.js).

* Our CIDs equal those of Helia's importer (``ipfs-unixfs-importer``, what
  ``@helia/unixfs`` runs) with kubo's classic layout, on files of several shapes.
* A Helia node dials our node and reads our attachment as a UnixFS file over our Bitswap.
* Our node reads a file that a Helia node added, over Bitswap as a client.

The npm packages are installed from ``tests/interop_ipfs/package-lock.json`` into
``tests/interop_ipfs/node_modules`` on first run (``npm ci``). Skipped only when
``node`` or ``npm`` is not installed. The Helia node talks only to 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import trio

from orbitstore.core.unixfs import FileLayout, build_file
from orbitstore.net.libp2p_config import BitswapConfig, Libp2pConfig
from orbitstore.node import open_node
from orbitstore.node.config import NodeConfig
from tests.helpers.npm import NEEDS_NODE_JS, installed
from tests.test_unixfs import pattern

INTEROP = Path(__file__).parent / "interop_ipfs"
DEADLINE = 120.0

pytestmark = NEEDS_NODE_JS


@pytest.fixture(scope="module")
def node_modules() -> Path:
    return installed(INTEROP, ("helia", "ipfs-unixfs-importer"), timeout=600)


def test_cids_equal_helias_importer(tmp_path: Path, node_modules: Path) -> None:
    sizes = [0, 10, 262144, 262145, 3 * 262144 + 7, 175 * 262144 + 1]
    files = []
    for size in sizes:
        path = tmp_path / f"f{size}"
        path.write_bytes(pattern(size))
        files.append(str(path))
    out = subprocess.run(
        ["node", str(INTEROP / "cids.mjs"), "262144", "174", *files],
        check=True,
        capture_output=True,
        timeout=DEADLINE,
    )
    theirs = json.loads(out.stdout)
    for size, path in zip(sizes, files, strict=True):
        assert str(build_file(pattern(size))[0]) == theirs[path], size
    # A narrow layout makes a deep tree: the balanced layout must agree level by level.
    deep = tmp_path / "deep"
    deep.write_bytes(pattern(40_000))
    out = subprocess.run(
        ["node", str(INTEROP / "cids.mjs"), "1000", "4", str(deep)],
        check=True,
        capture_output=True,
        timeout=DEADLINE,
    )
    layout = FileLayout(chunk_size=1000, max_links=4)
    assert str(build_file(pattern(40_000), layout)[0]) == json.loads(out.stdout)[str(deep)]


def _serving() -> NodeConfig:
    return NodeConfig(network=Libp2pConfig(bitswap=BitswapConfig(enabled=True)))


async def test_helia_reads_our_attachment_as_a_file_over_our_bitswap(node_modules: Path) -> None:
    data = pattern(1_500_000)
    with trio.fail_after(DEADLINE):
        async with open_node(None, config=_serving()) as node:
            db = await node.open("files", type="feed")
            cid = await db.attach(data)
            assert node.replication is not None
            address = node.replication.transport.listen_addresses()[0]
            result = await trio.run_process(
                ["node", str(INTEROP / "helia_node.mjs"), "cat", address, str(cid)],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            stats = node.replication.transport.statistics().bitswap  # type: ignore[attr-defined]
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    answer = json.loads(result.stdout.decode().strip().splitlines()[-1])
    assert answer == {"event": "cat", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert stats.blocks_sent >= 7  # the root and 6 leaves
    assert stats.corrupt_blocks == 0 and stats.internal_errors == 0


async def test_we_read_a_file_helia_added_over_bitswap(node_modules: Path) -> None:
    size = 2_000_000
    with trio.fail_after(DEADLINE):
        async with (
            open_node(None, config=NodeConfig(network=Libp2pConfig())) as node,
            trio.open_nursery() as nursery,
        ):
            process: trio.Process = await nursery.start(
                lambda task_status: trio.run_process(
                    ["node", str(INTEROP / "helia_node.mjs"), "serve", str(size)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    check=False,
                    task_status=task_status,
                )
            )
            assert process.stdout is not None and process.stdin is not None
            buffer = b""
            while b"\n" not in buffer:
                chunk = await process.stdout.receive_some()
                assert chunk, "the Helia node exited"
                buffer += chunk
            ready = json.loads(buffer.split(b"\n")[0])
            assert ready["event"] == "ready"
            assert ready["cid"] == str(build_file(pattern(size))[0])  # Helia's addBytes agrees
            assert node.replication is not None
            await node.replication.connect(ready["addresses"][0])
            assert await node.attachments.read(ready["cid"]) == pattern(size)
            assert node.attachments.is_complete(ready["cid"])
            stats = node.replication.transport.statistics().bitswap  # type: ignore[attr-defined]
            assert stats.blocks_received == 9  # the root and 8 leaves, each verified
            await process.stdin.aclose()  # the Helia node stops when its input closes
