"""Two nodes edit one collaborative document and converge; a plain pycrdt Doc loads it.

python examples/ydoc_edit.py
"""

from __future__ import annotations

import pycrdt
import trio

import orbitstore
from orbitstore.node.ydoc import YDocument


async def main() -> None:
    async with orbitstore.open_node() as alice, orbitstore.open_node() as bob:
        a = await alice.open("notes", type="ydoc", write=["*"])
        assert isinstance(a, YDocument)
        async with a.edit() as doc:
            doc.get("body", type=pycrdt.Text).insert(0, "Hello from Alice.")

        # These nodes have no transport, so the manifest is copied by hand (a node with
        # one fetches it from its peers; see examples/replication_demo.py).
        bob.store.blocks.put(a.cid, a.manifest.to_block()[1])
        b = await bob.open(a.address, type="ydoc")
        assert isinstance(b, YDocument)
        await b.receive((e.cid, e.block) for e in a.entries())
        async with b.edit() as doc:
            body = doc.get("body", type=pycrdt.Text)
            body.insert(len(body), " And Bob.")
        await a.receive((e.cid, e.block) for e in b.entries())

        plain: pycrdt.Doc[object] = pycrdt.Doc()  # any Yjs client
        plain.apply_update(a.snapshot())
        print(plain.get("body", type=pycrdt.Text))


if __name__ == "__main__":
    trio.run(main)
