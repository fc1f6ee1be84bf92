"""Opening a database by address on a node that has never seen it: the manifest comes
from the connected peers (in-memory network, trio's virtual clock)."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import pytest
import trio

from orbitstore.core.cid import Cid
from orbitstore.core.identity import Identity
from orbitstore.errors import NotFoundError, WrongDatabaseTypeError
from orbitstore.net.transport import Stream
from orbitstore.node import NodeConfig, open_node
from orbitstore.node.config import ReplicationConfig
from orbitstore.node.counter import Counter
from orbitstore.sync.frames import (
    Entries,
    Error,
    FrameDecoder,
    GetManifest,
    Hello,
    ManifestBlock,
    Message,
    NotFound,
    encode_frame,
)
from orbitstore.sync.manifest_fetch import answer_manifest_request
from orbitstore.testing.network import MemoryNetwork
from orbitstore.testing.pairs import NodePair, open_memory_pair

CONFIG = NodeConfig(
    timestamps=False,
    replication=ReplicationConfig(
        # thread_verify_min_blocks: verify inline, the virtual clock jumps while a thread runs
        manifest_timeout=5.0,
        idle_timeout=5.0,
        thread_verify_min_blocks=1_000_000,
    ),
)
ALICE, BOB, CAROL = (Identity(bytes([i]) * 32) for i in (1, 2, 3))


def alice_and_bob(net: MemoryNetwork) -> AbstractAsyncContextManager[NodePair]:
    """Alice's and Bob's nodes on ``net``, not connected yet."""
    return open_memory_pair(
        network=net, names=("alice", "bob"), identities=(ALICE, BOB), config=CONFIG
    )


def network() -> MemoryNetwork:
    return MemoryNetwork(rng=random.Random(5), latency=(0.001, 0.01))


async def read_message(stream: Stream) -> Message:
    decoder = FrameDecoder()
    with trio.fail_after(5):
        while True:
            data = await stream.receive_some()
            assert data, "the stream ended without a message"
            messages = decoder.feed(data)
            if messages:
                return messages[0]


async def test_fresh_node_opens_by_address_and_converges(autojump_clock: trio.abc.Clock) -> None:
    net = network()
    async with alice_and_bob(net) as pair:
        alice, bob = pair.nodes
        hits = await alice.open("hits", type="counter", write=["*"])
        assert isinstance(hits, Counter)
        for _ in range(20):
            await hits.increment(2)
        assert alice.replication is not None
        await pair.connect()
        assert not bob.store.blocks.has(hits.cid)
        start = trio.current_time()
        replica = await bob.open(hits.address, type="counter")
        assert trio.current_time() - start < 1.0  # one round trip, not a timeout
        assert isinstance(replica, Counter)
        assert replica.manifest == hits.manifest
        assert bob.store.blocks.get(hits.cid) == alice.store.blocks.get(hits.cid)
        await replica.wait_synced(timeout=10)
        assert replica.heads == hits.heads and replica.value == 40
        # And back: bob's writes reach alice.
        await replica.increment(2)
        with trio.fail_after(10):
            while hits.value != 42:
                await hits.wait_synced(timeout=10)
                await trio.sleep(0.1)
        assert bob.replication.statistics().manifests_fetched == 1
        assert alice.replication.statistics().manifests_served == 1
        # The manifest is stored now: reopening needs no peer.
        await replica.aclose()
        again = await bob.open(hits.address, type="counter")
        assert again.manifest == hits.manifest
        assert bob.replication.statistics().manifests_fetched == 1


async def test_pre_seeded_manifest_needs_no_peer(autojump_clock: trio.abc.Clock) -> None:
    """The other path: the manifest block is already in the store (copied by hand)."""
    async with open_node(identity=ALICE, config=CONFIG) as alice, open_node(config=CONFIG) as bob:
        chat = await alice.open("chat", write=["*"])
        await chat.append("hello")
        bob.store.blocks.put(chat.cid, chat.manifest.to_block()[1])
        replica = await bob.open(chat.address)
        await replica.receive((e.cid, e.block) for e in chat.entries())
        assert replica.heads == chat.heads


async def test_no_transport_says_so() -> None:
    async with open_node(identity=ALICE) as alice, open_node(identity=BOB) as bob:
        chat = await alice.open("chat")
        with pytest.raises(NotFoundError, match="no transport") as info:
            await bob.open(chat.address)
        assert info.value.details["asked"] == 0


async def test_no_peers_fails_fast_with_a_clear_message(autojump_clock: trio.abc.Clock) -> None:
    net = network()
    async with alice_and_bob(net) as pair:
        alice, bob = pair.nodes
        chat = await alice.open("chat", write=["*"])
        start = trio.current_time()
        with pytest.raises(NotFoundError) as info:
            await bob.open(chat.address)
        assert trio.current_time() == start  # nobody to wait for
        message = str(info.value)
        assert chat.address in message
        assert "0 peers asked" in message and "connect to a peer" in message
        assert info.value.details["asked"] == 0
        assert not bob.store.blocks.has(chat.cid)
        # Connecting, then opening again, works.
        await pair.connect()
        replica = await bob.open(chat.address)
        assert replica.manifest == chat.manifest


async def test_peers_without_the_database_say_so(autojump_clock: trio.abc.Clock) -> None:
    net = network()
    async with (
        net.open_transport("alice") as ta,
        net.open_transport("carol") as tc,
        net.open_transport("bob") as tb,
        open_node(transport=ta, identity=ALICE, config=CONFIG) as alice,
        open_node(transport=tc, identity=CAROL, config=CONFIG),
        open_node(transport=tb, identity=BOB, config=CONFIG) as bob,
    ):
        chat = await alice.open("chat")
        await chat.aclose()
        assert bob.replication is not None
        await bob.replication.connect("mem/carol")
        start = trio.current_time()
        with pytest.raises(NotFoundError) as info:
            await bob.open(chat.address)
        assert trio.current_time() - start < 1.0  # an answer, not the 5 s timeout
        assert "none of the 1 connected peers" in str(info.value)
        assert "1 do not have it" in str(info.value)
        assert info.value.details["not_found"] == 1


async def test_type_is_checked_after_the_fetch(autojump_clock: trio.abc.Clock) -> None:
    net = network()
    async with alice_and_bob(net) as pair:
        alice, bob = pair.nodes
        chat = await alice.open("chat", type="feed")
        await pair.connect()
        with pytest.raises(WrongDatabaseTypeError):
            await bob.open(chat.address, type="keyvalue")
        feed = await bob.open(chat.address, type="feed")
        assert feed.manifest == chat.manifest


# --- scripted peers -------------------------------------------------------------------

Handler = Callable[[Stream], Awaitable[None]]


def scripted(answer: Callable[[GetManifest], Message | None], delay: float = 0.0) -> Handler:
    """A peer that answers manifest requests with ``answer(request)`` after ``delay``
    (None: never answers), and records what it hears back."""

    async def handler(stream: Stream) -> None:
        request = await read_message(stream)
        if not isinstance(request, GetManifest):
            return  # a sync exchange: these peers do not speak it
        await trio.sleep(delay)
        reply = answer(request)
        if reply is None:
            await trio.sleep_forever()
        await stream.send_all(encode_frame(reply))
        with trio.move_on_after(5):
            data = b""
            while chunk := await stream.receive_some():
                data += chunk
            heard.extend(FrameDecoder().feed(data))

    heard: list[Message] = []
    handler.heard = heard  # type: ignore[attr-defined]
    return handler


async def test_wrong_block_is_refused_and_the_next_answer_used(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = network()
    async with (
        alice_and_bob(net) as pair,
        net.open_transport("evil") as te,
        net.open_transport("slow") as ts,
    ):
        alice, bob = pair.nodes
        chat = await alice.open("chat", write=["*"])
        await chat.append("hi")
        other = await alice.open("other")
        _, block = chat.manifest.to_block()
        _, other_block = other.manifest.to_block()
        evil = scripted(lambda r: ManifestBlock(db=r.db, block=other_block))
        honest = scripted(lambda r: answer_manifest_request(r, block), delay=1.0)
        te.set_stream_handler(evil)
        ts.set_stream_handler(honest)
        assert bob.replication is not None
        for name in ("evil", "slow"):
            await bob.replication.connect(f"mem/{name}")
        replica = await bob.open(chat.address)
        assert replica.manifest == chat.manifest
        assert bob.store.blocks.get(chat.cid) == block
        stats = bob.replication.statistics()
        assert stats.manifest_answers_refused == 1 and stats.manifests_fetched == 1
        # The hostile peer was told why.
        with trio.fail_after(10):
            while not evil.heard:  # type: ignore[attr-defined]
                await trio.sleep(0.1)
        (told,) = evil.heard  # type: ignore[attr-defined]
        assert isinstance(told, Error) and told.code == "protocol"
        # Replication starts as usual once a peer with the database is connected.
        await bob.replication.connect("mem/alice")
        await replica.wait_synced(peer="alice", timeout=10)
        assert replica.heads == chat.heads


async def test_only_bad_or_silent_peers(autojump_clock: trio.abc.Clock) -> None:
    net = network()
    async with (
        alice_and_bob(net) as pair,
        net.open_transport("evil") as te,
        net.open_transport("mute") as tm,
        net.open_transport("liar") as tl,
    ):
        alice, bob = pair.nodes
        chat = await alice.open("chat")
        te.set_stream_handler(scripted(lambda r: ManifestBlock(db=r.db, block=b"\xa0")))
        tm.set_stream_handler(scripted(lambda r: None))
        tl.set_stream_handler(scripted(lambda r: Hello(db=r.db)))
        assert bob.replication is not None
        for name in ("evil", "mute", "liar"):
            await bob.replication.connect(f"mem/{name}")
        start = trio.current_time()
        with pytest.raises(NotFoundError) as info:
            await bob.open(chat.address)
        assert trio.current_time() - start == pytest.approx(5.0, abs=0.1)  # manifest_timeout
        message = str(info.value)
        assert "none of the 3 connected peers" in message
        assert "2 sent an invalid answer" in message and "1 did not answer within 5 s" in message
        assert not bob.store.blocks.has(chat.cid)


async def test_a_node_answers_only_for_manifests_it_holds(autojump_clock: trio.abc.Clock) -> None:
    """Raw requests: the manifest of an open database, not_found for everything else —
    an entry block it holds, an unknown CID — and an error for another version."""
    net = network()
    async with (
        net.open_transport("alice") as ta,
        open_node(transport=ta, identity=ALICE, config=CONFIG) as alice,
        net.open_transport("probe") as tp,
    ):
        chat = await alice.open("chat")
        entry = await chat.append("secret")
        _, block = chat.manifest.to_block()
        await tp.connect("mem/alice")

        async def ask(request: GetManifest) -> Message:
            stream = await tp.open_stream("alice")
            await stream.send_all(encode_frame(request))
            return await read_message(stream)

        assert await ask(GetManifest(db=chat.cid)) == ManifestBlock(db=chat.cid, block=block)
        assert await ask(GetManifest(db=entry.cid)) == NotFound(db=entry.cid)
        assert alice.store.blocks.has(entry.cid)
        unknown = Cid.for_block(b"never seen")
        assert await ask(GetManifest(db=unknown)) == NotFound(db=unknown)
        answer = await ask(GetManifest(v=2, db=chat.cid))
        assert isinstance(answer, Error) and answer.code == "protocol"
        # A fetch stream is not a sync stream: entries after a get are never read.
        stream = await tp.open_stream("alice")
        await stream.send_all(
            encode_frame(GetManifest(db=chat.cid)) + encode_frame(Entries(blocks=()))
        )
        assert await read_message(stream) == ManifestBlock(db=chat.cid, block=block)
