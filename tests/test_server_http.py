"""The HTTP API, endpoint by endpoint, with good and bad requests (httpx, in process)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pycrdt
import pytest
import trio
import trio.testing

from orbitstore.errors import UsageError
from orbitstore.node import Node, open_node
from orbitstore.node.keyvalue import KeyValue
from orbitstore.server import ApiConfig
from orbitstore.server.responses import status_for
from tests.helpers.api import asgi_client


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with open_node(tmp_path / "node") as n:
        yield n


@pytest.fixture
async def api(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(node, ApiConfig(max_body_bytes=64 * 1024)) as client:
        yield client


async def create(api: httpx.AsyncClient, name: str, kind: str, **extra: Any) -> dict[str, Any]:
    r = await api.post("/v1/databases", json={"name": name, "type": kind, **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def error_of(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return error


# -- databases -----------------------------------------------------------------------------


async def test_create_list_info_and_close(api: httpx.AsyncClient, node: Node) -> None:
    info = await create(api, "notes", "keyvalue")
    assert info["type"] == "keyvalue" and info["address"].startswith("/orbitstore/b")
    assert info["access"]["write"] == [node.id]
    listed = (await api.get("/v1/databases")).json()["databases"]
    assert listed == [
        {"name": "notes", "address": info["address"], "type": "keyvalue", "open": True}
    ]
    cid = info["address"].removeprefix("/orbitstore/")
    by_cid = (await api.get(f"/v1/databases/{cid}")).json()
    assert by_cid["name"] == "notes" and by_cid["entries"] == 0 and by_cid["last_seq"] == 0
    again = await api.post("/v1/databases", json={"address": info["address"]})
    assert again.json()["address"] == info["address"]
    closed = await api.post("/v1/databases/notes/close")
    assert closed.json() == {"name": "notes", "address": info["address"], "open": False}
    assert (await api.get("/v1/databases")).json()["databases"][0]["open"] is False


async def test_database_errors(api: httpx.AsyncClient) -> None:
    error_of(await api.get("/v1/databases/nope"), 404, "not_found")
    error_of(await api.get("/v1/databases/nope/keys/a"), 404, "not_found")
    await create(api, "kv", "keyvalue")
    error_of(
        await api.post("/v1/databases", json={"name": "kv", "type": "feed"}),
        409,
        "wrong_database_type",
    )
    error_of(await api.get("/v1/databases/kv/items"), 409, "wrong_database_type")
    error_of(
        await api.post("/v1/databases", json={"name": "x", "type": "nosuch"}), 400, "invalid_value"
    )
    error_of(await api.post("/v1/databases", json={}), 400, "invalid_value")
    error_of(await api.post("/v1/databases", json={"name": 3}), 400, "invalid_value")
    error_of(
        await api.post("/v1/databases", json={"address": "/orbitstore/nope"}),
        400,
        "invalid_address",
    )


async def test_bad_requests(api: httpx.AsyncClient) -> None:
    await create(api, "kv", "keyvalue")
    error_of(await api.put("/v1/databases/kv/keys/a", content=b"{not json"), 400, "invalid_value")
    error_of(await api.put("/v1/databases/kv/keys/a", content=b""), 400, "invalid_value")
    error_of(await api.put("/v1/databases/kv/keys/a", content=b"\xff\xfe"), 400, "invalid_value")
    error_of(await api.put("/v1/databases/kv/keys/a", json=[1]), 400, "invalid_value")
    error_of(await api.put("/v1/databases/kv/keys/a", json={}), 400, "invalid_value")
    big = b'{"value": "' + b"x" * (70 * 1024) + b'"}'
    error_of(await api.put("/v1/databases/kv/keys/a", content=big), 413, "payload_too_large")
    error_of(await api.get("/v1/nosuch"), 404, "not_found")
    error_of(await api.patch("/v1/databases"), 405, "method_not_allowed")
    error_of(await api.get("/v1/databases/kv/keys?limit=x"), 400, "invalid_value")
    error_of(await api.get("/v1/databases/kv/keys?reverse=maybe"), 400, "invalid_value")
    error_of(await api.get("/v1/databases/kv/entries/nocid"), 400, "invalid_value")


# -- entries of every type ------------------------------------------------------------------


async def test_keyvalue(api: httpx.AsyncClient) -> None:
    await create(api, "kv", "keyvalue")
    value = {"n": 1, "raw": {"/": {"bytes": base64.b64encode(b"\x00\x01").decode().rstrip("=")}}}
    r = await api.put("/v1/databases/kv/keys/a/b", json={"value": value})
    assert r.status_code == 200 and r.json()["key"] == "a/b"
    assert (await api.get("/v1/databases/kv/keys/a/b")).json() == {"key": "a/b", "value": value}
    await api.put("/v1/databases/kv/keys/c", json={"value": None})
    assert (await api.get("/v1/databases/kv/keys/c")).json()["value"] is None
    items = (await api.get("/v1/databases/kv/keys?reverse=true&limit=1")).json()["items"]
    assert items == [{"key": "c", "value": None}]
    assert (await api.delete("/v1/databases/kv/keys/a/b")).status_code == 200
    error_of(await api.get("/v1/databases/kv/keys/a/b"), 404, "not_found")
    assert [i["key"] for i in (await api.get("/v1/databases/kv/keys")).json()["items"]] == ["c"]


async def test_documents(api: httpx.AsyncClient) -> None:
    await create(api, "people", "documents", meta={"indexes": ["age"]})
    r = await api.post("/v1/databases/people/docs", json={"_id": "ada", "age": 36})
    assert r.json()["id"] == "ada"
    await api.put("/v1/databases/people/docs/bob", json={"age": 41})
    assert (await api.get("/v1/databases/people/docs/bob")).json() == {"_id": "bob", "age": 41}
    error_of(
        await api.put("/v1/databases/people/docs/bob", json={"_id": "eve"}), 400, "invalid_value"
    )
    r = await api.patch("/v1/databases/people/docs/ada", json={"set": {"city": "London"}})
    assert r.status_code == 200
    ada = (await api.get("/v1/databases/people/docs/ada")).json()
    assert ada == {"_id": "ada", "age": 36, "city": "London"}
    error_of(
        await api.patch("/v1/databases/people/docs/zed", json={"set": {"a": 1}}), 404, "not_found"
    )
    error_of(await api.patch("/v1/databases/people/docs/ada", json={"x": 1}), 400, "invalid_value")
    await api.delete("/v1/databases/people/docs/bob")
    error_of(await api.get("/v1/databases/people/docs/bob"), 404, "not_found")
    docs = (await api.get("/v1/databases/people/docs")).json()["documents"]
    assert [d["_id"] for d in docs] == ["ada"]
    info = (await api.get("/v1/databases/people")).json()
    assert info["count"] == 1 and info["indexes"] == ["age"] and info["id_field"] == "_id"


async def test_feed(api: httpx.AsyncClient) -> None:
    await create(api, "chat", "feed")
    one = (await api.post("/v1/databases/chat/items", json={"value": "hi"})).json()["items"]
    many = await api.post("/v1/databases/chat/items", json={"values": ["a", "b", "c"]})
    assert many.status_code == 201
    ids = [one[0]["id"]] + [i["id"] for i in many.json()["items"]]
    got = (await api.get("/v1/databases/chat/items")).json()["items"]
    assert [i["value"] for i in got] == ["hi", "a", "b", "c"]
    newest = (await api.get("/v1/databases/chat/items?reverse=1&limit=2")).json()["items"]
    assert [i["value"] for i in newest] == ["c", "b"]
    after = (await api.get(f"/v1/databases/chat/items?gt={ids[1]}&lte={ids[3]}")).json()["items"]
    assert [i["value"] for i in after] == ["b", "c"]
    item = (await api.get(f"/v1/databases/chat/items/{ids[2]}")).json()
    assert item["value"] == "b" and item["index"] == 1
    error_of(await api.get("/v1/databases/chat/items?gt=notanitem"), 400, "invalid_value")
    missing = "bafyreigljeibtham2mjbzx3cmcknjjhj6aewmos4arydhcvlhyi2fpgkdu"
    error_of(await api.get(f"/v1/databases/chat/items?gt={missing}"), 404, "not_found")
    error_of(await api.get(f"/v1/databases/chat/items/{missing}"), 404, "not_found")
    error_of(await api.post("/v1/databases/chat/items", json={}), 400, "invalid_value")


async def test_counter(api: httpx.AsyncClient) -> None:
    await create(api, "hits", "counter")
    assert (await api.post("/v1/databases/hits/counter", json={})).json() == {"value": 1}
    assert (await api.post("/v1/databases/hits/counter", json={"by": -5})).json() == {"value": -4}
    assert (await api.get("/v1/databases/hits/counter")).json() == {"value": -4}
    error_of(await api.post("/v1/databases/hits/counter", json={"by": "x"}), 400, "invalid_value")
    error_of(await api.post("/v1/databases/hits/counter", json={"by": True}), 400, "invalid_value")


async def test_ydoc_update_and_state(api: httpx.AsyncClient) -> None:
    await create(api, "notes", "ydoc")
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    text = doc.get("text", type=pycrdt.Text)
    text += "hello"
    r = await api.post("/v1/databases/notes/ydoc/update", content=doc.get_update())
    assert r.status_code == 201
    state = (await api.get("/v1/databases/notes/ydoc/state")).content
    other: pycrdt.Doc[Any] = pycrdt.Doc()
    other.apply_update(state)
    assert str(other.get("text", type=pycrdt.Text)) == "hello"
    error_of(
        await api.post("/v1/databases/notes/ydoc/update", content=b"\xff\x00garbage"),
        400,
        "invalid_value",
    )


async def test_log_append_and_iterate(api: httpx.AsyncClient) -> None:
    await create(api, "events", "log")
    first = await api.post("/v1/databases/events/entries", json={"payload": {"n": 1}})
    assert first.status_code == 201
    await api.post("/v1/databases/events/entries", json={"payload": {"n": 2}})
    entries = (await api.get("/v1/databases/events/entries")).json()["entries"]
    assert [e["payload"] for e in entries] == [{"n": 1}, {"n": 2}]
    assert entries[1]["next"] == [first.json()["cid"]]
    newest = (await api.get("/v1/databases/events/entries?reverse=true&limit=1")).json()
    assert newest["entries"][0]["payload"] == {"n": 2}
    one = (await api.get(f"/v1/databases/events/entries/{first.json()['cid']}")).json()
    assert one["payload"] == {"n": 1}
    missing = "bafyreigljeibtham2mjbzx3cmcknjjhj6aewmos4arydhcvlhyi2fpgkdu"
    error_of(await api.get(f"/v1/databases/events/entries/{missing}"), 404, "not_found")
    error_of(await api.post("/v1/databases/events/entries", json={}), 400, "invalid_value")
    await create(api, "kv", "keyvalue")
    error_of(await api.post("/v1/databases/kv/entries", json={"payload": 1}), 400, "invalid_value")


# -- SQL ------------------------------------------------------------------------------------


async def test_query_and_explain(api: httpx.AsyncClient) -> None:
    await create(api, "people", "documents", meta={"indexes": ["age"]})
    for name, age in [("ada", 36), ("bob", 41), ("cy", 20)]:
        await api.post("/v1/databases/people/docs", json={"_id": name, "age": age})
    sql = "SELECT id, doc->>'age' AS age FROM people WHERE doc->>'age' > ? ORDER BY id"
    r = await api.post("/v1/query", json={"sql": sql, "params": [30]})
    assert r.json() == {"columns": ["id", "age"], "rows": [["ada", 36], ["bob", 41]]}
    named = "SELECT count(*) AS n FROM this WHERE doc->>'age' < :top"
    r = await api.post(
        "/v1/query", json={"sql": named, "params": {"top": 40}, "database": "people"}
    )
    assert r.json()["rows"] == [[2]]
    plan = (await api.post("/v1/explain", json={"sql": sql, "params": [30]})).json()
    assert plan["uses_index"] is True and plan["steps"][0]["table"] == "people"


async def test_query_errors(api: httpx.AsyncClient) -> None:
    await create(api, "people", "documents")
    bad = error_of(await api.post("/v1/query", json={"sql": "SELECT FROM WHERE"}), 400, "query")
    assert isinstance(bad["line"], int) and isinstance(bad["column"], int)
    error_of(await api.post("/v1/query", json={"sql": "DELETE FROM people"}), 400, "query")
    error_of(await api.post("/v1/query", json={"sql": "SELECT * FROM nosuch"}), 400, "query")
    error_of(await api.post("/v1/query", json={}), 400, "invalid_value")
    error_of(
        await api.post("/v1/query", json={"sql": "SELECT 1", "params": "x"}), 400, "invalid_value"
    )
    error_of(
        await api.post("/v1/query", json={"sql": "SELECT id FROM people", "database": "nope"}),
        404,
        "not_found",
    )


# -- changes feed, sync, node, docs ---------------------------------------------------------


async def test_changes_pages_and_cursor(api: httpx.AsyncClient) -> None:
    await create(api, "kv", "keyvalue")
    for i in range(5):
        await api.put(f"/v1/databases/kv/keys/k{i}", json={"value": i})
    page = (await api.get("/v1/databases/kv/changes?since=0&limit=2")).json()
    assert [c["payload"]["key"] for c in page["results"]] == ["k0", "k1"]
    assert page["more"] is True and page["last_seq"] == page["results"][-1]["seq"]
    rest = (await api.get(f"/v1/databases/kv/changes?since={page['last_seq']}")).json()
    assert [c["payload"]["key"] for c in rest["results"]] == ["k2", "k3", "k4"]
    assert rest["more"] is False
    empty = (await api.get(f"/v1/databases/kv/changes?since={rest['last_seq']}")).json()
    assert empty == {"results": [], "last_seq": rest["last_seq"], "more": False}
    quick = await api.get(
        f"/v1/databases/kv/changes?since={rest['last_seq']}&feed=longpoll&timeout=0"
    )
    assert quick.json()["results"] == []
    error_of(await api.get("/v1/databases/kv/changes?feed=sse"), 400, "invalid_value")
    error_of(await api.get("/v1/databases/kv/changes?since=-1"), 400, "invalid_value")


async def test_node_sync_and_peers_without_network(api: httpx.AsyncClient, node: Node) -> None:
    await create(api, "kv", "keyvalue")
    me = (await api.get("/v1/node")).json()
    assert me["writer"] == node.id and me["networked"] is False and me["databases"] == 1
    sync = (await api.get("/v1/sync")).json()
    assert sync["databases"][0]["name"] == "kv" and sync["databases"][0]["peers"] == []
    assert (await api.get("/v1/databases/kv/sync")).json()["synced"] is False
    assert (await api.get("/v1/peers")).json()["connected"] == []
    error_of(await api.post("/v1/peers", json={"address": "/ip4/127.0.0.1/tcp/1"}), 400, "usage")


async def test_openapi_and_docs_page(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    assert "/v1/databases/{db}/changes" in spec["paths"] and "/ydoc/{db}" in spec["paths"]
    page = await api.get("/docs")
    assert page.status_code == 200 and "openapi.json" in page.text
    assert "http" not in page.text.split("<script>")[1]  # no CDN: nothing fetched from elsewhere


# -- auth and config ---------------------------------------------------------------------------


async def test_token_required_when_configured(node: Node) -> None:
    config = ApiConfig(token="s3cret-token-0123456789")
    async with asgi_client(node, config) as anonymous:
        r = await anonymous.get("/v1/databases")
        error_of(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
        bad = {"Authorization": "Bearer wrong"}
        error_of(await anonymous.get("/v1/databases", headers=bad), 401, "unauthorized")
        assert (await anonymous.get("/openapi.json")).status_code == 200
    good = {"Authorization": "Bearer s3cret-token-0123456789"}
    async with asgi_client(node, config, headers=good) as client:
        assert (await client.get("/v1/databases")).status_code == 200


def test_public_bind_needs_a_token() -> None:
    with pytest.raises(UsageError, match="needs a token"):
        ApiConfig(host="0.0.0.0")
    with pytest.raises(UsageError, match="needs a token"):
        ApiConfig.parse_bind("192.0.2.1:8080")
    assert ApiConfig(host="0.0.0.0", token="x" * 16).host == "0.0.0.0"
    assert ApiConfig.parse_bind("8080").host == "127.0.0.1"
    assert ApiConfig.parse_bind("[::1]:9").port == 9
    assert ApiConfig.parse_bind("localhost:0").port == 0
    with pytest.raises(UsageError):
        ApiConfig.parse_bind("127.0.0.1:http")
    with pytest.raises(UsageError):
        ApiConfig(token="short")


def test_every_error_branch_has_its_status() -> None:
    import orbitstore.errors as e

    assert status_for(e.NotFoundError()) == 404
    assert status_for(e.WrongDatabaseTypeError()) == 409
    assert status_for(e.WriteNotAllowedError()) == 403
    assert status_for(e.PayloadTooLargeError()) == 413
    assert status_for(e.QueryLimitError()) == 400
    assert status_for(e.InvalidValueError()) == 400
    assert status_for(e.UnauthorizedError()) == 401
    assert status_for(e.BadSignatureError()) == 422
    assert status_for(e.StorageCorruptedError()) == 500
    assert status_for(e.PeerUnavailableError()) == 502
    assert status_for(e.SyncTimeoutError()) == 504


async def test_changes_never_show_a_batch_before_it_commits(
    api: httpx.AsyncClient, node: Node
) -> None:
    kv = await node.open("kv", type="keyvalue")
    assert isinstance(kv, KeyValue)
    assert (await api.get("/v1/databases/kv/changes")).status_code == 200  # handle opened
    started, release = trio.Event(), trio.Event()
    pages: list[dict[str, Any]] = []

    async def failing_batch() -> None:
        with pytest.raises(RuntimeError):
            async with kv.batch():
                await kv.put("rolled-back", 1)
                started.set()
                await release.wait()
                raise RuntimeError("the batch fails")

    async def read() -> None:
        pages.append((await api.get("/v1/databases/kv/changes?since=0")).json())

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(failing_batch)
            await started.wait()
            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            assert pages == []  # the read waits for the batch to end
            release.set()
    assert pages[0]["results"] == [] and pages[0]["last_seq"] == 0
    await kv.put("kept", 2)
    after = (await api.get("/v1/databases/kv/changes?since=0")).json()["results"]
    assert [c["payload"]["key"] for c in after] == ["kept"]
