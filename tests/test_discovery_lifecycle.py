"""DHT discovery follows the life of a database handle: it stops when the handle
closes or the database is dropped, and a reopened handle is provided and synced anew.

Unit tests: a fake provider transport (what the DHT would answer) and a recording
replication service around a real SQLite-backed node, on trio's virtual clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
import trio.testing

import orbitstore
from orbitstore.node.config import DiscoveryConfig
from orbitstore.node.database import Database
from orbitstore.node.discovery import ProviderDiscovery
from orbitstore.node.node import Node

CONFIG = DiscoveryConfig(provide_interval=10.0, search_interval=5.0, retry_delay=1.0)


class _Record:
    def __init__(self, peer_id: str) -> None:
        self.peer_id = peer_id

    def dial_addresses(self) -> list[str]:
        return [f"/mem/{self.peer_id}"]


class _Transport:
    """Every key is provided at once; one other peer provides every key."""

    peer_id = "me"

    def __init__(self) -> None:
        self.provided: Counter[str] = Counter()
        self.connected: set[str] = set()

    def connected_peers(self) -> set[str]:
        return set(self.connected)

    async def connect(self, address: str) -> str:
        peer = address.rsplit("/", 1)[-1]
        self.connected.add(peer)
        return peer

    async def provide(self, key: str) -> bool:
        self.provided[key] += 1
        return True

    async def find_providers(self, key: str, *, count: int = 20) -> list[_Record]:
        return [_Record("other"), _Record("me")]


class _Replication:
    def __init__(self) -> None:
        self.requests: list[tuple[Database, str]] = []

    def request_sync(self, database: Database, peer: str) -> None:
        self.requests.append((database, peer))


@asynccontextmanager
async def running(
    home: Path,
) -> AsyncIterator[tuple[Node, ProviderDiscovery, _Transport, _Replication]]:
    """A node on ``home`` and a running discovery over the fakes (not wired into it)."""
    transport, replication = _Transport(), _Replication()
    discovery = ProviderDiscovery(
        transport=transport,
        replication=replication,  # type: ignore[arg-type]
        config=CONFIG,
    )
    async with orbitstore.open_node(home) as node, trio.open_nursery() as nursery:
        await nursery.start(discovery.run)
        yield node, discovery, transport, replication
        nursery.cancel_scope.cancel()


async def test_closing_a_handle_ends_its_discovery_and_reopening_restarts_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with running(tmp_path) as (node, discovery, transport, replication):
        db = await node.open("notes", type="keyvalue")
        discovery.add_database(db)
        await trio.sleep(25)  # t=0, 10, 20
        assert transport.provided[db.address] == 3
        assert replication.requests and all(d is db for d, _ in replication.requests)
        assert db.address in discovery.statistics().providers

        await db.aclose()
        await trio.sleep(30)
        assert transport.provided[db.address] == 3  # nothing after the close
        assert db.address not in discovery.statistics().providers

        again = await node.open("notes", type="keyvalue")
        assert again is not db
        before = len(replication.requests)
        discovery.add_database(again)
        await trio.sleep(1)
        assert transport.provided[again.address] == 4
        assert [d for d, _ in replication.requests[before:]] == [again]


async def test_a_new_handle_replaces_a_closed_one_before_its_loops_wake(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with running(tmp_path) as (node, discovery, transport, replication):
        db = await node.open("notes", type="keyvalue")
        discovery.add_database(db)
        await trio.sleep(1)
        await db.aclose()
        again = await node.open("notes", type="keyvalue")
        discovery.add_database(again)  # the old loops are still asleep
        await trio.sleep(12)
        assert transport.provided[db.address] == 3  # t=0 (old), t=1 and t=11 (new)
        assert all(d is again for d, _ in replication.requests[1:])


async def test_drop_stops_announcing_at_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with running(tmp_path) as (node, discovery, transport, _):
        node.discovery = discovery
        db = await node.open("chat", type="feed")
        discovery.add_database(db)
        await trio.sleep(1)
        assert transport.provided[db.address] == 1
        report = await node.drop("chat")
        assert report.address == db.address
        assert db.address not in discovery.statistics().providers
        await trio.sleep(100)
        assert transport.provided[db.address] == 1
        node.discovery = None
