"""Replication end to end over real libp2p: nodes in separate OS processes on 127.0.0.1.

Each node is ``tests/helpers/sync_node.py``: ``open_node(home, config=NodeConfig(
network=Libp2pConfig(...)))``, the production wiring, driven by JSON lines. The tests
wait on the nodes' answers under deadlines; nothing sleeps.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

HELPER = Path(__file__).parent / "helpers" / "sync_node.py"
# Generous: a fresh process imports libp2p in ~1 s, much longer on a loaded 2-core VM.
START_DEADLINE = 60.0
DEADLINE = 60.0

pytestmark = pytest.mark.slow


class NodeProcess:
    """One helper node; ``request`` sends a line and returns its answer."""

    def __init__(self, process: trio.Process, home: Path) -> None:
        self.process = process
        self.home = home
        assert process.stdin is not None and process.stdout is not None
        self._stdin = process.stdin
        self._stdout = process.stdout
        self._buffer = b""
        self._lock = trio.Lock()  # one request at a time: the node answers in order
        self.ready: dict[str, Any] = {}

    @property
    def address(self) -> str:
        addresses: list[str] = self.ready["addresses"]
        return addresses[0]

    @property
    def peer_id(self) -> str:
        peer: str = self.ready["peer_id"]
        return peer

    async def _line(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            data = await self._stdout.receive_some()
            assert data, "the node process exited"
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        result: dict[str, Any] = json.loads(line)
        return result

    async def send(self, op: str, **fields: Any) -> None:
        await self._stdin.send_all(json.dumps({"op": op, **fields}).encode() + b"\n")

    async def answer(self, deadline: float = DEADLINE) -> dict[str, Any]:
        with trio.fail_after(deadline):
            reply = await self._line()
        assert reply["ok"], reply["error"]
        return reply

    async def request(self, op: str, deadline: float = DEADLINE, **fields: Any) -> dict[str, Any]:
        async with self._lock:
            await self.send(op, **fields)
            return await self.answer(deadline)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)


@asynccontextmanager
async def node_process(home: Path, *args: str) -> AsyncIterator[NodeProcess]:
    command = [sys.executable, str(HELPER), "--home", str(home), *args]
    process = await trio.lowlevel.open_process(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    node = NodeProcess(process, home)
    try:
        with trio.fail_after(START_DEADLINE):
            node.ready = await node._line()
        assert node.ready["event"] == "ready"
        yield node
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
            await node._stdin.aclose()
            await node._stdout.aclose()


async def start_all(
    stack: AsyncExitStack, specs: list[tuple[Path, tuple[str, ...]]]
) -> list[NodeProcess]:
    """Start processes one after the other (each may bootstrap to the previous ones)."""
    return [await stack.enter_async_context(node_process(home, *args)) for home, args in specs]


async def gather(*calls: Any) -> list[dict[str, Any]]:
    """Run ``(node, op, fields)`` requests concurrently; answers in order."""
    results: list[dict[str, Any]] = [{} for _ in calls]

    async def one(i: int, node: NodeProcess, op: str, fields: dict[str, Any]) -> None:
        results[i] = await node.request(op, **fields)

    async with trio.open_nursery() as nursery:
        for i, (node, op, fields) in enumerate(calls):
            nursery.start_soon(one, i, node, op, fields)
    return results


async def test_three_peers_replicate_feed_and_keyvalue_both_ways(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(node_process(tmp_path / "a"))
        # A line: c - b - a. What c writes reaches a through b (gossip forwarding, then
        # a sync with whoever a is connected to).
        b = await stack.enter_async_context(node_process(tmp_path / "b", "--bootstrap", a.address))
        c = await stack.enter_async_context(node_process(tmp_path / "c", "--bootstrap", b.address))
        feed = await a.request("create", name="chat", type="feed")
        kv = await a.request("create", name="settings", type="keyvalue")
        for node in (b, c):
            for db, kind in ((feed, "feed"), (kv, "keyvalue")):
                await node.request(
                    "open", address=db["address"], type=kind, manifest=db["manifest"]
                )
        per_peer = 25
        await gather(
            *(
                (node, "write", {"address": db["address"], "count": per_peer, "tag": tag})
                for node, tag in ((a, "a"), (b, "b"), (c, "c"))
                for db in (feed, kv)
            )
        )
        total = 3 * per_peer
        for db in (feed, kv):
            states = await gather(
                *(
                    (node, "wait", {"address": db["address"], "entries": total, "synced": True})
                    for node in (a, b, c)
                )
            )
            assert states[0]["entries"] == total
            assert states[0] == states[1] == states[2]
        feed_state = states = await gather(
            *((node, "state", {"address": feed["address"]}) for node in (a, b, c))
        )
        values = feed_state[0]["view"]
        assert sorted(values) == sorted(f"{t}-{i}" for t in "abc" for i in range(per_peer))
        # Each writer's items keep their order (the feed follows the total order).
        for tag in "abc":
            mine = [v for v in values if v.startswith(tag + "-")]
            assert mine == [f"{tag}-{i}" for i in range(per_peer)]
        kv_state = await a.request("state", address=kv["address"])
        assert len(kv_state["view"]) == 10
        assert states[0] == states[1] == states[2]


async def test_a_peer_killed_mid_sync_restarts_from_its_store_and_converges(
    tmp_path: Path,
) -> None:
    n = 8000
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(node_process(tmp_path / "a"))
        feed = await a.request("create", name="big", type="feed")
        await a.request("bulk", address=feed["address"], count=n, deadline=120)
        async with node_process(tmp_path / "c", "--bootstrap", a.address) as c:
            first_peer_id = c.peer_id
            await c.request("open", address=feed["address"], type="feed", manifest=feed["manifest"])
            partial = await c.request("wait", address=feed["address"], entries=1)
            c.kill()
        assert 0 < partial["entries"] < n  # killed while it was catching up
        # Restarted on the same directory: same peer id (peer.key), same store.
        c = await stack.enter_async_context(node_process(tmp_path / "c", "--bootstrap", a.address))
        assert c.peer_id == first_peer_id
        reopened = await c.request("open", address=feed["address"], type="feed")
        assert reopened["entries"] >= partial["entries"]
        done = await c.request("wait", address=feed["address"], entries=n, synced=True)
        mine = await a.request("state", address=feed["address"])
        assert done == mine
        assert done["view"] == list(range(n))


async def test_a_reader_opening_by_address_catches_up_and_follows(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(node_process(tmp_path / "a"))
        kv = await a.request("create", name="profile", type="keyvalue")
        await a.request("write", address=kv["address"], count=40, tag="before", keys=40)
        reader = await stack.enter_async_context(
            node_process(tmp_path / "r", "--bootstrap", a.address)
        )
        # No manifest handed over: the reader fetches it from the writer it bootstrapped to.
        await reader.request("open", address=kv["address"], type="keyvalue")
        caught_up = await reader.request("wait", address=kv["address"], entries=40, synced=True)
        assert caught_up == await a.request("state", address=kv["address"])
        # Connected and idle: new writes arrive by announcement.
        await a.request("write", address=kv["address"], count=5, tag="after", keys=40)
        live = await reader.request("wait", address=kv["address"], entries=45)
        assert live == await a.request("state", address=kv["address"])
        assert dict(live["view"])["k0"] == "after-0"


async def test_a_reader_finds_the_writer_through_dht_provider_records(tmp_path: Path) -> None:
    """hub: a DHT node without the database; writer and reader only know the hub. The
    reader finds the writer as a provider of the address, dials it and syncs."""
    async with AsyncExitStack() as stack:
        hub = await stack.enter_async_context(node_process(tmp_path / "hub", "--dht"))
        writer = await stack.enter_async_context(
            node_process(tmp_path / "w", "--dht", "--bootstrap", hub.address)
        )
        feed = await writer.request("create", name="news", type="feed")
        await writer.request("write", address=feed["address"], count=10, tag="w")
        reader = await stack.enter_async_context(
            node_process(tmp_path / "r", "--dht", "--bootstrap", hub.address)
        )
        await reader.request(
            "open", address=feed["address"], type="feed", manifest=feed["manifest"]
        )
        got = await reader.request("wait", address=feed["address"], entries=10, within=30)
        assert got == await writer.request("state", address=feed["address"])
        stats = await reader.request("stats")
        assert writer.peer_id in stats["connected"]


def _bad_announcement(address: str, depth: int) -> str:
    """An announcement whose inline entry nests ``depth`` levels deep (hex)."""
    from orbitstore.core import codec
    from orbitstore.core.cid import Cid

    db = Cid.parse(address.rsplit("/", 1)[1])
    block = b"\xa1\x61v" + b"\x81" * depth + b"\x01"
    cid = Cid.for_block(block)
    return codec.encode({"db": db, "heads": [cid], "entries": [[cid, block]]}).hex()


async def test_a_bad_announcement_is_refused_before_it_is_forwarded(tmp_path: Path) -> None:
    """A line a - b - c: a (hostile, without the database) publishes an announcement that
    breaks decoders. b refuses it in its topic validator, so c, which only hears a
    through b, never sees it; everyone stays up and b - c keep replicating."""
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(node_process(tmp_path / "a"))
        b = await stack.enter_async_context(node_process(tmp_path / "b", "--bootstrap", a.address))
        c = await stack.enter_async_context(node_process(tmp_path / "c", "--bootstrap", b.address))
        feed = await b.request("create", name="chat", type="feed")
        await c.request("open", address=feed["address"], type="feed", manifest=feed["manifest"])
        await b.request("write", address=feed["address"], count=3, tag="b")
        await c.request("wait", address=feed["address"], entries=3)
        reached = False
        for attempt in range(40):  # until b's subscription reached a (gossip fanout)
            data = _bad_announcement(feed["address"], 3000 + attempt)
            await a.request("publish_raw", address=feed["address"], data=data)
            got = await b.request("wait_stat", key="rejected", at_least=1, within=0.5)
            if got["reached"]:
                reached = True
                break
        assert reached, "b never received the bad announcement"
        # b and c are alive and keep replicating; c never heard of the bad message.
        await b.request("write", address=feed["address"], count=2, tag="after")
        state = await c.request("wait", address=feed["address"], entries=5)
        assert state == await b.request("state", address=feed["address"])
        stats_b, stats_c = await b.request("stats"), await c.request("stats")
        assert stats_b["rejected"] >= 1 and stats_b["gossip_refused"] >= 1
        assert stats_c["rejected"] == 0 and stats_c["gossip_refused"] == 0
        # b's decoder may have raised something untyped (counted, contained); c's never ran.
        assert stats_c["unexpected"] == 0
        assert (await a.request("stats"))["connected"]  # a is up too
