"""Two real nodes (libp2p on 127.0.0.1) edit one collaborative document and converge;
a plain pycrdt Doc loads the result.

Run: ``.venv/bin/python examples/ydoc_edit.py`` (node directories in a temporary folder).

Alice creates a ``ydoc`` database and types a sentence. Bob opens it by its address (the
manifest comes from Alice, verified), waits until he holds her edit, appends his own, and
Alice waits (with a deadline) until Bob's edit reaches her.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pycrdt
import trio

import orbitstore
from orbitstore.net.libp2p_config import Libp2pConfig
from orbitstore.node.ydoc import YDocument

LOOPBACK = "/ip4/127.0.0.1/tcp/0"


def config(*peers: str) -> orbitstore.NodeConfig:
    return orbitstore.NodeConfig(
        network=Libp2pConfig(listen_addresses=(LOOPBACK,), bootstrap_peers=peers)
    )


def dial_address(node: orbitstore.Node) -> str:
    assert node.replication is not None
    transport = node.replication.transport
    address = transport.listen_addresses()[0]
    return address if "/p2p/" in address else f"{address}/p2p/{transport.peer_id}"


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with orbitstore.open_node(Path(tmp) / "alice", config=config()) as alice:
            a = await alice.open("notes", type="ydoc", write=["*"])
            assert isinstance(a, YDocument)
            async with a.edit() as doc:
                doc.get("body", type=pycrdt.Text).insert(0, "Hello from Alice.")

            bob_config = config(dial_address(alice))
            async with orbitstore.open_node(Path(tmp) / "bob", config=bob_config) as bob:
                b = await bob.open(a.address, type="ydoc")
                assert isinstance(b, YDocument)
                await b.wait_synced(timeout=30)
                async with b.edit() as doc:
                    body = doc.get("body", type=pycrdt.Text)
                    body.insert(len(body), " And Bob.")
                with trio.fail_after(30):  # Bob's edit reaches Alice over gossip + sync
                    async with a.subscribe() as changes:
                        while len(a) < 2:
                            await changes.__anext__()

                plain: pycrdt.Doc[object] = pycrdt.Doc()  # any Yjs client
                plain.apply_update(a.snapshot())
                print(plain.get("body", type=pycrdt.Text))
                print("same document on both nodes:", a.text("body") == b.text("body"))


if __name__ == "__main__":
    trio.run(main)
