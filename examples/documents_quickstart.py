"""A documents database in a few lines: put, patch, query by an indexed field.

python examples/documents_quickstart.py
"""

from __future__ import annotations

import trio

import orbitstore


async def main() -> None:
    async with orbitstore.open_node() as node:  # in memory
        people = await node.open("people", type="documents", meta={"indexes": ["age"]})
        assert isinstance(people, orbitstore.Documents)
        await people.put_many(
            [
                {"_id": "ann", "age": 31, "address": {"city": "Oslo"}},
                {"_id": "bob", "age": 25},
                {"_id": "cy", "age": 40},
            ]
        )
        await people.patch("bob", set={"age": 26})
        await people.delete("cy")
        print(people.all())
        print(people.where("age", ">", 30))


if __name__ == "__main__":
    trio.run(main)
