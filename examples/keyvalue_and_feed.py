"""A keyvalue of user profiles and a chat feed, on a node kept in a temporary directory.

Run: python examples/keyvalue_and_feed.py
"""

from __future__ import annotations

import tempfile

import trio

import orbitstore


async def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        async with orbitstore.open_node(home) as node:
            users = await node.open("users", type="keyvalue")
            assert isinstance(users, orbitstore.KeyValue)
            await users.put_many({"user/ada": {"name": "Ada"}, "user/bob": {"name": "Bob"}})
            await users.delete("user/bob")
            print("users:", list(users.items(prefix="user/")))

            chat = await node.open("room", type="feed")
            assert isinstance(chat, orbitstore.Feed)
            first = await chat.add({"from": "ada", "text": "hello"})
            await chat.add_many([{"from": "ada", "text": f"message {i}"} for i in range(3)])
            print("newest two:", [i.value["text"] for i in chat.items(reverse=True, limit=2)])
            print("after the first:", [i.id for i in chat.items(gt=first)])


if __name__ == "__main__":
    trio.run(main)
