"""Remote boundaries never take the node down; closed databases stop replicating
(in-memory network, trio's virtual clock)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from orbitstore.core import codec
from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.errors import NetworkError
from orbitstore.net.transport import Stream
from orbitstore.node import NodeConfig, open_node
from orbitstore.node.config import ReplicationConfig
from orbitstore.node.database import Database
from orbitstore.node.node import Node
from orbitstore.node.replication import topic_for
from orbitstore.storage.base import NodeStore
from orbitstore.storage.memory import MemoryStore
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.sync.frames import (
    Done,
    Entries,
    Error,
    FrameDecoder,
    Hello,
    Message,
    Want,
    encode_frame,
)
from orbitstore.testing.network import MemoryNetwork, MemoryTransport

CONFIG = NodeConfig(
    timestamps=False,
    replication=ReplicationConfig(idle_timeout=5.0, thread_verify_min_blocks=1_000_000),
)
VICTIM, EVIL = Identity(b"\x02" * 32), Identity(b"\x03" * 32)
MANIFEST = Manifest(name="h", type="log", access=StaticAccess.of(["*"]), meta={})
DB, MANIFEST_BLOCK = MANIFEST.to_block()
ADDRESS = f"/orbitstore/{DB}"


def deep_block(depth: int = 5000) -> tuple[Cid, bytes]:
    """A block that hashes fine but nests ``depth`` levels deep in a field the entry
    decoder looks at before the payload depth check."""
    block = b"\xa1\x61v" + b"\x81" * depth + b"\x01"
    return Cid.for_block(block), block


def good_entry(payload: Any = "fine", *, clock: int = 1, parents: list[Cid] | None = None) -> Entry:
    return Entry.create(EVIL, db=DB, clock=clock, next=parents or [], payload=payload)


@asynccontextmanager
async def victim_node(
    net: MemoryNetwork, config: NodeConfig = CONFIG, store: NodeStore | None = None
) -> AsyncIterator[tuple[Node, Database, MemoryTransport]]:
    store = store or MemoryStore()
    store.blocks.put(DB, MANIFEST_BLOCK)
    async with (
        net.open_transport("victim") as transport,
        open_node(store=store, identity=VICTIM, transport=transport, config=config) as node,
    ):
        yield node, await node.open(ADDRESS), transport


async def talk(transport: MemoryTransport, peer: str, payload: bytes) -> list[Message]:
    """Open a stream, send ``payload``, read what comes back until the peer hangs up."""
    stream = await transport.open_stream(peer)
    await stream.send_all(payload)
    return await read_all(stream)


async def read_all(stream: Stream) -> list[Message]:
    decoder, out = FrameDecoder(), []
    with trio.move_on_after(10):
        try:
            while data := await stream.receive_some():
                out.extend(decoder.feed(data))
        except NetworkError:  # the victim resets the stream it drops
            pass
    return out


def peer_status(node: Node, peer: str) -> Any:
    assert node.replication is not None
    (status,) = [
        p for d in node.replication.statistics().databases for p in d.peers if p.peer == peer
    ]
    return status


async def still_replicates(net: MemoryNetwork, node: Node, db: Database) -> None:
    """An honest peer still syncs with the victim: the node is alive and well."""
    store = MemoryStore()
    store.blocks.put(DB, MANIFEST_BLOCK)
    async with (
        net.open_transport("honest") as transport,
        open_node(
            store=store, identity=Identity(b"\x05" * 32), transport=transport, config=CONFIG
        ) as honest,
    ):
        h = await honest.open(ADDRESS)
        await h.append_many(range(5))
        assert honest.replication is not None
        await honest.replication.connect("mem/victim")
        with trio.fail_after(30):
            await db.wait_synced(peer="honest", timeout=30)
        assert h.heads <= db.heads


# --- a: session frames --------------------------------------------------------------


async def test_a_deeply_nested_entry_in_a_frame_drops_the_session(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = MemoryNetwork(rng=random.Random(1))
    async with victim_node(net) as (node, db, _), net.open_transport("evil") as te:
        await te.connect("mem/victim")
        cid, block = deep_block()
        answer = await talk(
            te, "victim", encode_frame(Hello(db=DB)) + encode_frame(Entries(blocks=((cid, block),)))
        )
        assert any(isinstance(m, Error) for m in answer)  # told, then dropped
        assert len(db) == 0
        status = peer_status(node, "evil")
        assert status.failures == 1 and status.last_failure is not None
        await still_replicates(net, node, db)


def break_apply(patch: pytest.MonkeyPatch, db: Database, message: str) -> None:
    """Make every fold into ``db``'s view raise RuntimeError(``message``): a bug in our
    own apply path, which a peer's entry triggers."""

    def broken_view(*args: object, **kwargs: object) -> None:
        raise RuntimeError(message)

    patch.setattr(type(db), "_apply", broken_view)


async def test_an_exception_in_the_apply_path_drops_the_session_and_stores_nothing(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    net = MemoryNetwork(rng=random.Random(2))
    store = SqliteStore(tmp_path / "victim.sqlite")  # rolls back for real
    async with victim_node(net, store=store) as (node, db, _), net.open_transport("evil") as te:
        await te.connect("mem/victim")

        with monkeypatch.context() as patch:
            break_apply(patch, db, "a view bug the peer's entry triggers")
            entry = good_entry()
            answer = await talk(
                te,
                "victim",
                encode_frame(Hello(db=DB))
                + encode_frame(Entries(blocks=((entry.cid, entry.block),))),
            )
        errors = [m for m in answer if isinstance(m, Error)]
        assert [e.code for e in errors] == ["internal"]
        assert len(db) == 0 and not db.log.has(entry.cid)
        assert node.replication is not None
        assert node.replication.statistics().unexpected_errors == 1
        status = peer_status(node, "evil")
        assert status.last_failure.code == "internal"
        assert status.last_failure.error == "RuntimeError"
        await still_replicates(net, node, db)


async def test_an_exception_while_serving_drops_the_session(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = MemoryNetwork(rng=random.Random(3))
    async with victim_node(net) as (node, db, _), net.open_transport("evil") as te:
        await db.append_many(range(10))
        await te.connect("mem/victim")
        from orbitstore.sync import session as session_module

        def broken_plan(*args: object, **kwargs: object) -> list[Entry]:
            raise RuntimeError("a bug in the walk")

        with monkeypatch.context() as patch:
            patch.setattr(session_module, "unknown_ancestors", broken_plan)
            first = next(db.entries())  # shared history: the victim plans with a walk
            answer = await talk(te, "victim", encode_frame(Hello(db=DB, heads=(first.cid,))))
        assert [m.code for m in answer if isinstance(m, Error)] == ["internal"]
        assert node.replication is not None
        assert node.replication.statistics().unexpected_errors == 1
        await still_replicates(net, node, db)


# --- a: announcements ---------------------------------------------------------------


def announcement(*, heads: list[Cid], blocks: list[tuple[Cid, bytes]]) -> bytes:
    return codec.encode({"db": DB, "heads": heads, "entries": [[c, b] for c, b in blocks]})


async def test_bad_announcements_are_refused_by_the_validator(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = MemoryNetwork(rng=random.Random(4))
    async with victim_node(net) as (node, db, tv), net.open_transport("evil") as te:
        await te.connect("mem/victim")
        cid, block = deep_block()
        forged = bytearray(good_entry("x").block)
        forged[-5] ^= 1
        bad = [
            b"\xff" * 10,  # not DAG-CBOR
            b"\x81" * 3000 + b"\x01",  # nested deep as a whole message
            announcement(heads=[cid], blocks=[(cid, block)]),  # a deep inline entry
            announcement(heads=[], blocks=[(Cid.for_block(bytes(forged)), bytes(forged))]),
            announcement(heads=[], blocks=[(good_entry().cid, b"not the block")]),
            codec.encode({"db": DB, "heads": "nope", "entries": []}),
        ]
        for data in bad:
            await te.publish(topic_for(DB), data)
        await trio.sleep(1)
        assert tv.gossip_rejected == len(bad)
        assert node.replication is not None
        stats = node.replication.statistics()
        assert stats.announcements_rejected == len(bad)
        assert stats.announcements_received == 0  # none reached the handler
        assert len(db) == 0
        # A good one still goes through, inline entries verified once and applied.
        entry = good_entry()
        await te.publish(
            topic_for(DB), announcement(heads=[entry.cid], blocks=[(entry.cid, entry.block)])
        )
        with trio.fail_after(5):
            while not db.log.has(entry.cid):
                await trio.sleep(0.1)
        await still_replicates(net, node, db)


async def test_an_exception_applying_an_announcement_is_contained(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    net = MemoryNetwork(rng=random.Random(5))
    store = SqliteStore(tmp_path / "victim.sqlite")  # rolls back for real
    async with victim_node(net, store=store) as (node, db, _), net.open_transport("evil") as te:
        await te.connect("mem/victim")

        entry = good_entry()
        with monkeypatch.context() as patch:
            break_apply(patch, db, "boom")
            await te.publish(
                topic_for(DB), announcement(heads=[entry.cid], blocks=[(entry.cid, entry.block)])
            )
            await trio.sleep(1)
        assert node.replication is not None
        assert node.replication.statistics().unexpected_errors == 1
        assert not db.log.has(entry.cid)
        await still_replicates(net, node, db)


# --- b: closed databases ------------------------------------------------------------


async def test_a_closed_database_stops_replicating_and_reopens_live(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = MemoryNetwork(rng=random.Random(6))
    async with victim_node(net) as (node, db, tv), net.open_transport("evil") as te:
        await te.connect("mem/victim")
        await db.aclose()
        await trio.sleep(1)
        assert node.replication is not None
        assert node.replication.statistics().databases == ()
        assert topic_for(DB) not in tv._topics
        # Gossip for it (inline entries would hit the closed handle) is not delivered.
        entry = good_entry()
        await te.publish(
            topic_for(DB), announcement(heads=[entry.cid], blocks=[(entry.cid, entry.block)])
        )
        # A sync stream for it is answered "not found".
        answer = await talk(te, "victim", encode_frame(Hello(db=DB)))
        assert [m.code for m in answer if isinstance(m, Error)] == ["not_found"]
        await trio.sleep(60)  # anti-entropy rounds pass: nothing touches the closed handle
        reopened = await node.open(ADDRESS)
        assert reopened is not db and not reopened._closed
        assert [d.db for d in node.replication.statistics().databases] == [DB]
        await still_replicates(net, node, reopened)


# --- e: protocol details ------------------------------------------------------------


@pytest.mark.parametrize(
    "opening", [Done(), Entries(blocks=((good_entry().cid, good_entry().block),)), Want()]
)
async def test_a_stream_must_open_with_hello(
    opening: Message, autojump_clock: trio.abc.Clock
) -> None:
    net = MemoryNetwork(rng=random.Random(7))
    async with victim_node(net) as (_, db, _tv), net.open_transport("evil") as te:
        await te.connect("mem/victim")
        answer = await talk(te, "victim", encode_frame(opening))
        assert [m.code for m in answer if isinstance(m, Error)] == ["protocol"]
        assert len(db) == 0


async def test_an_exception_reading_a_manifest_answer_is_contained(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orbitstore.errors import NotFoundError
    from orbitstore.sync import manifest_fetch

    net = MemoryNetwork(rng=random.Random(8))
    async with (
        victim_node(net) as (_holder, _, _t),
        net.open_transport("fresh") as tf,
        open_node(
            store=MemoryStore(), identity=Identity(b"\x06" * 32), transport=tf, config=CONFIG
        ) as fresh,
    ):
        assert fresh.replication is not None
        await fresh.replication.connect("mem/victim")

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("a bug in the manifest decoder")

        with monkeypatch.context() as patch:
            patch.setattr(manifest_fetch.Manifest, "from_block", broken)
            with pytest.raises(NotFoundError):
                await fresh.open(ADDRESS)
        assert fresh.replication.statistics().unexpected_errors == 1
        db = await fresh.open(ADDRESS)  # still alive: the next answer is read fine
        assert db.cid == DB
