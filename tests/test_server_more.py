"""The API endpoints of this round: drop, paging with cursors, find/indexes, ydoc text,
membership (grant, revoke, invites, redeem), conflicts, CAR export/import (in process)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orbitstore.core.identity import Identity
from orbitstore.node import Documents, Node, open_node
from orbitstore.node.feed import Feed
from orbitstore.node.keyvalue import KeyValue
from orbitstore.server import ApiConfig
from tests.helpers.api import asgi_client
from tests.test_server_http import create, error_of


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with open_node(tmp_path / "node") as n:
        yield n


@pytest.fixture
async def api(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(node, ApiConfig(max_body_bytes=64 * 1024, changes_limit=7)) as c:
        yield c


async def test_drop_a_database(api: httpx.AsyncClient, node: Node) -> None:
    info = await create(api, "notes", "keyvalue")
    assert (await api.put("/v1/databases/notes/keys/a", json={"value": 1})).status_code == 200
    dropped = await api.delete("/v1/databases/notes")
    assert dropped.json() == {
        "address": info["address"],
        "names": ["notes"],
        "entries": 1,
        "dropped": True,
    }
    assert (await api.get("/v1/databases")).json()["databases"] == []
    error_of(await api.get("/v1/databases/notes"), 404, "not_found")
    error_of(await api.delete("/v1/databases/notes"), 404, "not_found")
    error_of(await api.delete(f"/v1/databases/{info['address'][12:]}"), 404, "not_found")
    error_of(await api.delete("/v1/databases/not-a-name"), 404, "not_found")
    again = await create(api, "notes", "keyvalue")  # a fresh, empty database
    assert again["entries"] == 0


async def _all(api: httpx.AsyncClient, path: str, key: str, **query: Any) -> list[Any]:
    out: list[Any] = []
    after = None
    while True:
        params = {**query, **({"after": after} if after is not None else {})}
        page = (await api.get(path, params=params)).json()
        out.extend(page[key])
        assert len(page[key]) <= 7  # the configured page size
        after = page["next"]
        if after is None:
            return out


async def test_keys_items_and_entries_page_with_cursors(api: httpx.AsyncClient, node: Node) -> None:
    kv = await node.open("kv", type="keyvalue")
    assert isinstance(kv, KeyValue)
    await kv.put_many({f"k{i:02d}": i for i in range(30)})
    keys = [i["key"] for i in await _all(api, "/v1/databases/kv/keys", "items")]
    assert keys == [f"k{i:02d}" for i in range(30)]
    down = [i["key"] for i in await _all(api, "/v1/databases/kv/keys", "items", reverse="true")]
    assert down == keys[::-1]
    some = await _all(api, "/v1/databases/kv/keys", "items", prefix="k1")
    assert [i["key"] for i in some] == [f"k1{i}" for i in range(10)]

    feed = await node.open("chat", type="feed")
    assert isinstance(feed, Feed)
    for i in range(17):
        await feed.add(i)
    items = await _all(api, "/v1/databases/chat/items", "items")
    assert [i["value"] for i in items] == list(range(17))
    back = await _all(api, "/v1/databases/chat/items", "items", reverse="true")
    assert [i["value"] for i in back] == list(range(17))[::-1]

    log = await node.open("log", type="log")
    for i in range(25):
        await log.append(i)
    expected = [str(e.cid) for e in log.entries()]
    forward = await _all(api, "/v1/databases/log/entries", "entries")
    assert [e["cid"] for e in forward] == expected
    reverse = await _all(api, "/v1/databases/log/entries", "entries", reverse="true")
    assert [e["cid"] for e in reverse] == expected[::-1]
    error_of(await api.get("/v1/databases/log/entries?after=nope"), 400, "invalid_value")
    other = str(next(iter(kv.heads)))
    error_of(await api.get(f"/v1/databases/log/entries?after={other}"), 404, "not_found")


async def test_documents_find_and_indexes(api: httpx.AsyncClient) -> None:
    await create(api, "people", "documents")
    for i, name in enumerate(["ada", "bob", "cy", "dee"]):
        r = await api.post("/v1/databases/people/docs", json={"_id": name, "age": 30 + i})
        assert r.status_code == 200
    found = await api.post(
        "/v1/databases/people/docs/find",
        json={"filter": {"age": {"$gt": 30}}, "sort": [["age", -1]], "limit": 2, "skip": 0},
    )
    assert [d["_id"] for d in found.json()["documents"]] == ["dee", "cy"]
    everything = await api.post("/v1/databases/people/docs/find", json={})
    assert len(everything.json()["documents"]) == 4
    bad = await api.post("/v1/databases/people/docs/find", json={"filter": {"$nope": 1}})
    assert bad.status_code == 400, bad.text
    bad_sort = await api.post("/v1/databases/people/docs/find", json={"sort": [["age", 2]]})
    error_of(bad_sort, 400, "invalid_value")
    error_of(await api.post("/v1/databases/people/docs/find", json={"x": 1}), 400, "invalid_value")
    assert (await api.get("/v1/databases/people/indexes")).json() == {"indexes": []}
    made = await api.post("/v1/databases/people/indexes", json={"field": "age"})
    assert made.json() == {"indexes": ["age"]}
    error_of(
        await api.post("/v1/databases/people/indexes", json={"field": "a b"}), 400, "invalid_value"
    )


async def test_ydoc_text(api: httpx.AsyncClient) -> None:
    await create(api, "notes", "ydoc")
    r = await api.post("/v1/databases/notes/ydoc/text", json={"text": "hello"})
    assert r.status_code == 200 and len(r.json()["entries"]) == 1
    await api.post("/v1/databases/notes/ydoc/text", json={"text": " world"})
    assert (await api.get("/v1/databases/notes/ydoc/text")).json() == {
        "field": "text",
        "text": "hello world",
    }
    other = await api.get("/v1/databases/notes/ydoc/text?field=title")
    assert other.json()["text"] == ""


async def test_membership_over_http(api: httpx.AsyncClient, node: Node, tmp_path: Path) -> None:
    await create(api, "room", "feed", access="capabilities")
    bob = Identity(os.urandom(32)).id
    members = (await api.get("/v1/databases/room/members")).json()
    assert members == {
        "owner": node.id,
        "members": [{"did": node.id, "rights": [{"right": "owner", "scope": None}]}],
    }
    granted = await api.post("/v1/databases/room/members", json={"did": bob})
    assert granted.status_code == 201 and granted.json()["right"] == "write"
    listed = (await api.get("/v1/databases/room/members?ops=true")).json()
    assert {"did": bob, "rights": [{"right": "write", "scope": None}]} in listed["members"]
    assert [op["op"] for op in listed["ops"]] == ["grant"] and listed["ops"][0]["valid"]
    revoked = await api.post("/v1/databases/room/members/revoke", json={"did": bob})
    assert revoked.status_code == 200
    after = (await api.get("/v1/databases/room/members")).json()["members"]
    assert [m["did"] for m in after] == [node.id]
    error_of(
        await api.post("/v1/databases/room/members", json={"did": "nope"}), 400, "invalid_value"
    )
    error_of(
        await api.post("/v1/databases/room/members", json={"did": bob, "right": "root"}),
        400,
        "invalid_value",
    )
    link = (await api.post("/v1/databases/room/invites", json={})).json()["link"]
    assert "#invite=" in link
    assert (await api.post("/v1/databases/room/invites/revoke", json={"link": link})).is_success
    # A static database has no members.
    await create(api, "plain", "keyvalue")
    error_of(await api.get("/v1/databases/plain/members"), 400, "usage")

    # Another node redeems an invite over its API; a second node's writes are 403 before.
    link = (await api.post("/v1/databases/room/invites", json={})).json()["link"]
    room = await node.open("room", type="feed")
    manifest = node.store.blocks.get(room.cid)
    assert manifest is not None
    async with open_node(tmp_path / "other") as other:
        other.store.blocks.put(room.cid, manifest)
        theirs = await other.open(room.address, type="feed")
        await theirs.receive(list(room.log.iter_blocks()))
        async with asgi_client(other, ApiConfig()) as other_api:
            denied = await other_api.post(f"/v1/databases/{room.cid}/items", json={"value": "hi"})
            error_of(denied, 403, "write_not_allowed")
            not_admin = await other_api.post(
                f"/v1/databases/{room.cid}/members", json={"did": other.id}
            )
            error_of(not_admin, 403, "write_not_allowed")
            taken = await other.open("elsewhere", type="log")
            body = {"link": link, "name": "elsewhere"}
            error_of(await other_api.post("/v1/redeem", json=body), 400, "invalid_value")
            body = {"link": link, "name": "our room"}
            redeemed = await other_api.post("/v1/redeem", json=body)
            assert redeemed.status_code == 200, redeemed.text
            assert redeemed.json()["local_name"] == "our room"
            assert redeemed.json()["address"] == room.address
            ok = await other_api.post("/v1/databases/our%20room/items", json={"value": "hi"})
            assert ok.status_code == 201, ok.text
            assert other.databases() == {"elsewhere": taken.address, "our room": room.address}
            error_of(await other_api.post("/v1/redeem", json={"link": "x"}), 400, "invalid_value")


async def test_conflicts_in_get_and_in_the_changes_feed(api: httpx.AsyncClient, node: Node) -> None:
    kv = await node.open("kv", type="keyvalue", write=["*"])
    docs = await node.open("docs", type="documents", write=["*"])
    assert isinstance(kv, KeyValue) and isinstance(docs, Documents)
    mine = await kv.put("k", "mine")
    await docs.put({"_id": "d", "n": 1})
    plain = (await api.get("/v1/databases/kv/keys/k")).json()
    assert plain == {"key": "k", "value": "mine"}  # no conflicts field unless asked
    async with open_node() as other:  # another writer, on the same parents (none)
        theirs = await other.open("kv", type="keyvalue", write=["*"])
        other_docs = await other.open("docs", type="documents", write=["*"])
        assert isinstance(theirs, KeyValue) and isinstance(other_docs, Documents)
        lost = await theirs.put("k", "theirs")
        await other_docs.put({"_id": "d", "n": 2})
        await kv.receive(list(theirs.log.iter_blocks()))
        await docs.receive(list(other_docs.log.iter_blocks()))
    got = (await api.get("/v1/databases/kv/keys/k?conflicts=true")).json()
    winner, loser = ("mine", "theirs") if got["value"] == "mine" else ("theirs", "mine")
    assert got["value"] == winner and got["deleted"] is False
    assert [c["value"] for c in got["conflicts"]] == [loser]
    assert set(got["conflicts"][0]) == {"value", "deleted", "cid", "writer", "clock"}
    doc = (await api.get("/v1/databases/docs/docs/d?conflicts=true")).json()
    assert len(doc["_conflicts"]) == 1 and doc["_conflicts"][0]["value"]["n"] in (1, 2)
    assert "_conflicts" not in (await api.get("/v1/databases/docs/docs/d")).json()
    feed = (await api.get("/v1/databases/kv/changes?conflicts=true")).json()["results"]
    assert [c["cid"] for c in feed] == [str(mine.cid), str(lost.cid)]
    assert all(list(c["conflicts"]) == ["k"] for c in feed)
    assert "conflicts" not in (await api.get("/v1/databases/kv/changes")).json()["results"][0]
    # A delete that saw both values resolves the conflict: the key is simply gone.
    await kv.delete("k")
    error_of(await api.get("/v1/databases/kv/keys/k?conflicts=true"), 404, "not_found")


def test_the_openapi_document_lists_every_route() -> None:
    from starlette.routing import Route, WebSocketRoute

    from orbitstore.server.app import routes
    from orbitstore.server.openapi import openapi_document

    paths = openapi_document("test")["paths"]
    for route in routes():
        if isinstance(route, WebSocketRoute):
            assert route.path in paths, route.path
        elif isinstance(route, Route) and route.path.startswith("/v1/"):
            path = route.path.replace("{key:path}", "{key}").replace("{item:path}", "{item}")
            for method in route.methods or ():
                if method != "HEAD":
                    assert method.lower() in paths.get(path, {}), f"{method} {path}"


async def _exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on one connection and read until the server closes it or goes
    quiet (every answer to ``data`` has come by then)."""
    import trio

    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        out = b""
        while True:
            with trio.move_on_after(1.0) as quiet:
                chunk = await stream.receive_some(65536)
            if quiet.cancelled_caught:
                return out + b"<open>"
            if not chunk:
                return out + b"<closed>"
            out += chunk


async def test_connections_stay_usable_after_error_answers(node: Node) -> None:
    import trio

    from orbitstore.server import serve_api

    await node.open("kv", type="keyvalue")
    after = b"GET /v1/node HTTP/1.1\r\nHost: x\r\n\r\n"
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(serve_api, node, ApiConfig(port=0, max_body_bytes=100))
        port = int(urls[0].rsplit(":", 1)[1])
        # A 404, a 400 and a 413 (refused before the body was read): each is one whole
        # answer, and the next request on the same connection is answered after it.
        big = b"PUT /v1/databases/kv/keys/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
        for bad, status in (
            (b"GET /v1/nope HTTP/1.1\r\nHost: x\r\n\r\n", b"404"),
            (
                b"PUT /v1/databases/kv/keys/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n{x}",
                b"400",
            ),
            (big + b"x" * 1000, b"413"),
        ):
            out = await _exchange(port, bad + after)
            assert out.startswith(b"HTTP/1.1 " + status), out
            assert out.count(b"HTTP/1.1 200") == 1 and out.endswith(b"<open>"), out
        nursery.cancel_scope.cancel()
