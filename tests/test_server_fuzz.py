"""Properties of the API's remote boundaries (Hypothesis): any bytes a y-websocket client
sends either work or end that client with our error, never anything else; the changes
feed read in pages of any size, interleaved with writes, yields every entry exactly
once, in arrival order."""

from __future__ import annotations

from typing import Any, cast

import trio
from hypothesis import example, given
from hypothesis import strategies as st

from orbitstore.errors import OrbitstoreError
from orbitstore.node import open_node
from orbitstore.node.keyvalue import KeyValue
from orbitstore.node.ydoc import YDocument
from orbitstore.server.ywebsocket import Room, _Client, _handle
from tests.helpers.api import asgi_client

PREFIXES = [b"", b"\x00", b"\x00\x00", b"\x00\x01", b"\x00\x02", b"\x01", b"\x02", b"\x03"]
messages = st.one_of(
    st.binary(max_size=80),
    st.builds(lambda p, b: p + b, st.sampled_from(PREFIXES), st.binary(max_size=80)),
)


@given(st.lists(messages, min_size=1, max_size=6), st.booleans())
@example([b"\x00\x00"], False)  # a sync step 1 without its state: pycrdt asserts
def test_any_y_websocket_message_works_or_raises_our_error(
    batch: list[bytes], writable: bool
) -> None:
    async def main() -> None:
        async with open_node() as node:
            db = await node.open("notes", type="ydoc")
            assert isinstance(db, YDocument)
            room = Room(db)
            client = _Client(cast(Any, None), 1000)
            room.clients.add(client)
            for data in batch:
                try:
                    await _handle(room, client, data, writable)
                except OrbitstoreError:
                    return  # the connection would end here, with our error
            room.leave(client)

    trio.run(main)


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("write"), st.integers(1, 4)),
            st.tuples(st.just("read"), st.integers(1, 5)),
        ),
        max_size=15,
    )
)
def test_changes_pages_of_any_size_deliver_each_entry_once(steps: list[tuple[str, int]]) -> None:
    async def main() -> None:
        async with open_node() as node, asgi_client(node) as api:
            kv = await node.open("kv", type="keyvalue")
            assert isinstance(kv, KeyValue)
            written: list[str] = []
            seen: list[str] = []
            cursor = 0

            async def read(limit: int) -> bool:
                nonlocal cursor
                page = (
                    await api.get(f"/v1/databases/kv/changes?since={cursor}&limit={limit}")
                ).json()
                seen.extend(c["cid"] for c in page["results"])
                cursor = page["last_seq"]
                return bool(page["more"])

            for kind, n in steps:
                if kind == "write":
                    for i in range(n):
                        written.append(str((await kv.put(f"k{len(written)}", i)).cid))
                else:
                    await read(n)
            while await read(3):
                pass
            assert seen == written

    trio.run(main)
