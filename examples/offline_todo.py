"""An offline-first todo list: two nodes write while disconnected, reconnect, and merge.

Run: ``.venv/bin/python examples/offline_todo.py`` (real libp2p on 127.0.0.1, node
directories in a temporary folder; takes a few seconds).

1. Laptop and phone share a ``documents`` database (field-level merge) and sync.
2. The phone goes offline (its node stops). Both sides keep writing: the laptop renames
   a todo and adds one; the phone ticks the same todo off and adds another.
3. The phone comes back and dials the laptop: each side gets what the other wrote, and
   both end with the same list — the rename and the tick on one todo both survive,
   because the field-level merge keeps concurrent edits of different fields.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import trio

import orbitstore
from orbitstore.net.libp2p_config import Libp2pConfig

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


def show(who: str, todos: orbitstore.Documents) -> list[Any]:
    items = sorted(todos.all(), key=lambda d: d["_id"])
    print(f"{who}:")
    for doc in items:
        print(f"   [{'x' if doc.get('done') else ' '}] {doc['_id']}: {doc['title']}")
    return items


async def open_todos(node: orbitstore.Node, address: str | None = None) -> orbitstore.Documents:
    if address is None:
        db = await node.open("todos", type="documents", write=["*"], meta={"merge": "field"})
    else:
        db = await node.open(address, type="documents")
    assert isinstance(db, orbitstore.Documents)
    return db


async def converge(a: orbitstore.Documents, b: orbitstore.Documents) -> None:
    """Wait (at most 30 s) until both sides hold the same heads: each change on either
    side wakes us to look again."""
    with trio.fail_after(30):
        async with a.subscribe() as changes_a, b.subscribe() as changes_b:
            while a.heads != b.heads:
                async with trio.open_nursery() as nursery:

                    async def wake(changes: Any) -> None:
                        await changes.__anext__()
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(wake, changes_a)
                    nursery.start_soon(wake, changes_b)


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        laptop_home, phone_home = Path(tmp) / "laptop", Path(tmp) / "phone"
        async with orbitstore.open_node(laptop_home, config=config()) as laptop:
            todos = await open_todos(laptop)
            await todos.put({"_id": "1", "title": "buy milk", "done": False})
            address, laptop_dial = todos.address, dial_address(laptop)

            print("1. the phone joins and syncs")
            async with orbitstore.open_node(phone_home, config=config(laptop_dial)) as phone:
                mine = await open_todos(phone, address)
                await mine.wait_synced(timeout=30)
                show("phone", mine)

            print("2. the phone is offline; both sides write")
            await todos.patch("1", set={"title": "buy oat milk"})
            await todos.put({"_id": "2", "title": "call mum", "done": False})
            async with orbitstore.open_node(phone_home, config=config()) as phone:
                mine = await open_todos(phone, address)
                await mine.patch("1", set={"done": True})
                await mine.put({"_id": "3", "title": "water plants", "done": False})
                show("phone (offline)", mine)
            show("laptop", todos)

            print("3. the phone reconnects: both merge")
            async with orbitstore.open_node(phone_home, config=config(laptop_dial)) as phone:
                mine = await open_todos(phone, address)
                await converge(todos, mine)
                a, b = show("laptop", todos), show("phone", mine)
                assert a == b, "the two sides differ"
                print("both sides hold the same todos:", todos.heads == mine.heads)


if __name__ == "__main__":
    trio.run(main)
