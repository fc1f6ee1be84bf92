"""The WebSocket endpoints and long-poll over a real Hypercorn on 127.0.0.1: the changes
feed (live, and resumed from a cursor after a disconnect), live queries, the token."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from orbitstore.node import Node, open_node
from orbitstore.node.keyvalue import KeyValue
from orbitstore.server import ApiConfig
from tests.helpers.api import WsClosed, WsRejected, open_ws, running_api

DEADLINE = 20.0


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with open_node(tmp_path / "node") as n:
        yield n


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://", 1) + path


async def next_json(ws: Any) -> dict[str, Any]:
    with trio.fail_after(DEADLINE):
        message = await ws.receive()
    assert isinstance(message, str)
    body: dict[str, Any] = json.loads(message)
    return body


async def changes_until_caught_up(ws: Any) -> tuple[list[dict[str, Any]], int]:
    seen = []
    while True:
        message = await next_json(ws)
        if message["type"] == "caught_up":
            return seen, message["last_seq"]
        assert message["type"] == "change"
        seen.append(message)


async def test_changes_feed_resumes_after_disconnect(node: Node) -> None:
    kv = await node.open("kv", type="keyvalue")
    assert isinstance(kv, KeyValue)
    written = [(await kv.put(f"k{i}", i)).cid for i in range(3)]
    delivered: list[dict[str, Any]] = []
    async with running_api(node) as base:
        async with open_ws(ws_url(base, "/v1/databases/kv/changes/ws?since=0")) as ws:
            backlog, cursor = await changes_until_caught_up(ws)
            delivered += backlog
            assert cursor == backlog[-1]["seq"]
            written.append((await kv.put("live", 1)).cid)  # pushed while connected
            live = await next_json(ws)
            assert live["type"] == "change" and live["payload"]["key"] == "live"
            delivered.append(live)
            cursor = live["seq"]
        # Disconnected: these land while nobody listens.
        written += [(await kv.put(f"later{i}", i)).cid for i in range(2)]
        written.append((await kv.delete("k0")).cid)
        url = ws_url(base, f"/v1/databases/kv/changes/ws?since={cursor}")
        async with open_ws(url) as ws:
            resumed, _ = await changes_until_caught_up(ws)
            delivered += resumed
    cids = [c["cid"] for c in delivered]
    assert cids == [str(c) for c in written], "every change once, in arrival order"
    seqs = [c["seq"] for c in delivered]
    assert seqs == sorted(set(seqs))


async def test_longpoll_returns_the_first_change(node: Node) -> None:
    kv = await node.open("kv", type="keyvalue")
    assert isinstance(kv, KeyValue)
    await kv.put("a", 1)
    since = kv.last_seq
    got: list[dict[str, Any]] = []
    async with running_api(node) as base, httpx.AsyncClient(base_url=base) as client:

        async def poll() -> None:
            r = await client.get(f"/v1/databases/kv/changes?since={since}&feed=longpoll&timeout=30")
            got.append(r.json())

        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll)
                await trio.testing.wait_all_tasks_blocked()
                await kv.put("b", 2)
    assert [c["payload"]["key"] for c in got[0]["results"]] == ["b"]
    assert got[0]["last_seq"] == kv.last_seq


async def test_live_query_over_websocket(node: Node) -> None:
    kv = await node.open("scores", type="keyvalue")
    assert isinstance(kv, KeyValue)
    await kv.put("ada", 3)
    request = {"sql": "SELECT key, value FROM scores WHERE value > ? ORDER BY key", "params": [1]}
    async with running_api(node) as base, open_ws(ws_url(base, "/v1/watch")) as ws:
        await ws.send(json.dumps(request))
        first = await next_json(ws)
        assert first == {"type": "result", "columns": ["key", "value"], "rows": [["ada", 3]]}
        await kv.put("bob", 0)  # does not change the result: nothing is sent for it
        await kv.put("cy", 5)
        second = await next_json(ws)
        assert second["rows"] == [["ada", 3], ["cy", 5]]


# trio-websocket (the test's client) leaves its own socket to the garbage collector when
# the server closes first (the socket it leaks is allocated in its open_tcp_stream).
CLIENT_SOCKET_LEAK = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.mark.parametrize(
    ("request_text", "code"),
    [
        ('{"sql": "SELECT FROM"}', "query"),
        ("{nope", "invalid_value"),
        ('{"sql": "SELECT key FROM this", "database": "missing"}', "not_found"),
    ],
)
async def test_live_query_errors_close_the_socket(node: Node, request_text: str, code: str) -> None:
    async with running_api(node) as base, open_ws(ws_url(base, "/v1/watch")) as ws:
        await ws.send(request_text)
        error = await next_json(ws)
        assert error["type"] == "error" and error["error"]["code"] == code
        with pytest.raises(WsClosed) as closed, trio.fail_after(DEADLINE):
            await ws.receive()
        assert closed.value.code in (4400, 4404)


async def test_websockets_need_the_token_too(node: Node) -> None:
    token = "a-token-of-sixteen-chars"
    await node.open("kv", type="keyvalue")
    async with running_api(node, ApiConfig(port=0, token=token)) as base:
        with pytest.raises(WsRejected) as rejected:
            async with open_ws(ws_url(base, "/v1/databases/kv/changes/ws")):
                pass
        assert rejected.value.status == 403  # ASGI can only refuse a handshake with 403
        async with open_ws(ws_url(base, f"/v1/databases/kv/changes/ws?token={token}")) as ws:
            assert (await next_json(ws))["type"] == "caught_up"
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/v1/databases")).status_code == 401
            ok = await client.get("/v1/databases", headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200


async def test_changes_feed_of_unknown_database(node: Node) -> None:
    async with (
        running_api(node) as base,
        open_ws(ws_url(base, "/v1/databases/nope/changes/ws")) as ws,
    ):
        error = await next_json(ws)
        assert error["error"]["code"] == "not_found"


async def test_clients_that_die_leave_the_node_serving(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    kv = await node.open("kv", type="keyvalue")
    assert isinstance(kv, KeyValue)
    async with running_api(node) as base:
        async with open_ws(ws_url(base, "/v1/databases/kv/changes/ws")) as feed:
            assert (await next_json(feed))["type"] == "caught_up"
            await feed.abort()
        async with open_ws(ws_url(base, "/v1/watch")) as live:
            await live.send('{"sql": "SELECT key FROM kv"}')
            assert (await next_json(live))["type"] == "result"
            await live.abort()
        for i in range(20):
            await kv.put(f"k{i}", i)
        async with open_ws(ws_url(base, "/v1/databases/kv/changes/ws?since=0")) as feed:
            backlog, _ = await changes_until_caught_up(feed)
            assert len(backlog) == 20
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_a_long_poll_ends_when_its_database_closes(node: Node) -> None:
    await node.open("kv", type="keyvalue")
    answers: list[httpx.Response] = []
    async with running_api(node) as base, httpx.AsyncClient(base_url=base) as client:

        async def poll() -> None:
            answers.append(await client.get("/v1/databases/kv/changes?feed=longpoll&timeout=30"))

        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll)
                await trio.testing.wait_all_tasks_blocked()
                assert (await client.post("/v1/databases/kv/close")).status_code == 200
    assert answers[0].status_code == 409 and answers[0].json()["error"]["code"] == "closed"
