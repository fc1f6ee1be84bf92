"""Serving our blocks over IPFS Bitswap: real libp2p hosts on 127.0.0.1, one process.

Two kinds of client: py-libp2p's own ``BitswapClient`` on a plain py-libp2p host (what an
IPFS peer does), and a raw client that writes Bitswap messages by hand, to test the
edges (pushing blocks, over-long want-lists) precisely. The raw client reads our replies
until the server ends its reply stream, so every test knows when the server is done
without waiting for time to pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from libp2p import new_host
from libp2p.abc import IHost, INetStream
from libp2p.bitswap import BitswapClient, MemoryBlockStore
from libp2p.bitswap.cid import get_cid_prefix, verify_cid
from libp2p.bitswap.errors import TimeoutError as BitswapTimeoutError
from libp2p.bitswap.messages import create_message
from libp2p.bitswap.pb.bitswap_pb2 import Message
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.host.exceptions import StreamFailure
from libp2p.network.config import ConnectionConfig
from libp2p.network.stream.exceptions import StreamError
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from multiaddr import Multiaddr

from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import DAG_CBOR, RAW, Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.errors import InvalidCidError, InvalidValueError, StorageError, UsageError
from orbitstore.net._libp2p_bitswap import TokenBucket, from_libp2p_cid, to_libp2p_cid
from orbitstore.net.libp2p_config import BitswapConfig, Libp2pConfig
from orbitstore.net.libp2p_transport import Libp2pTransport, open_libp2p_transport
from orbitstore.storage.memory import MemoryBlockStore as OurBlockStore

V120 = "/ipfs/bitswap/1.2.0"
ALICE = Identity(b"\x01" * 32)
MANIFEST = Manifest(name="shared", type="feed", access=StaticAccess.of(["*"]))
DB, MANIFEST_BLOCK = MANIFEST.to_block()
ENTRY = Entry.create(ALICE, db=DB, clock=1, next=(), payload={"text": "hello, IPFS"})
MISSING = Cid.for_block(b"a block nobody has", RAW)


def our_store(*blocks: tuple[Cid, bytes]) -> OurBlockStore:
    store = OurBlockStore()
    store.put(DB, MANIFEST_BLOCK)
    store.put(ENTRY.cid, ENTRY.block)
    for cid, block in blocks:
        store.put(cid, block)
    return store


def raw_blocks(count: int, size: int) -> list[tuple[Cid, bytes]]:
    blocks = []
    for i in range(count):
        data = bytes([i % 256]) * size + i.to_bytes(4, "big")
        blocks.append((Cid.for_block(data, RAW), data))
    return blocks


@asynccontextmanager
async def serving(
    store: OurBlockStore, config: BitswapConfig | None = None
) -> AsyncIterator[Libp2pTransport]:
    bitswap = config if config is not None else BitswapConfig(enabled=True)
    async with open_libp2p_transport(Libp2pConfig(bitswap=bitswap), key_path=None) as server:
        server.serve_blocks(store)
        yield server


def full_address(server: Libp2pTransport) -> str:
    return f"{server.listen_addresses()[0]}/p2p/{server.peer_id}"


@asynccontextmanager
async def library_client(server: Libp2pTransport) -> AsyncIterator[tuple[BitswapClient, ID]]:
    """A plain py-libp2p host running the library's own Bitswap, connected to ``server``."""
    key_pair = create_new_key_pair()
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    host = new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        connection_config=ConnectionConfig(max_connections_per_peer=1),
    )
    async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        try:
            async with trio.open_nursery() as nursery:
                client = BitswapClient(host, block_store=MemoryBlockStore())
                client.set_nursery(nursery)
                await client.start()
                info = info_from_p2p_addr(Multiaddr(full_address(server)))
                with trio.fail_after(10):
                    await host.connect(info)
                try:
                    yield client, info.peer_id
                finally:
                    await client.stop()
                    nursery.cancel_scope.cancel()
        finally:
            # Inside run(), shielded: closed any other way, py-libp2p leaks the socket.
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await host.close()


# --- the library's client fetches our blocks ---------------------------------------------


async def test_library_client_fetches_an_entry_and_a_manifest_by_cid() -> None:
    async with serving(our_store()) as server, library_client(server) as (client, server_id):
        session = client.new_session()
        with trio.fail_after(20):
            entry_block = await session.get_block(
                to_libp2p_cid(ENTRY.cid), peer_id=server_id, timeout=15
            )
            # No peer named: WANT-HAVE to everyone, our HAVE, then WANT-BLOCK.
            manifest_block = await client.new_session().get_block(to_libp2p_cid(DB), timeout=15)
    assert entry_block == ENTRY.block
    assert verify_cid(to_libp2p_cid(ENTRY.cid), entry_block)
    assert Entry.from_block(ENTRY.cid, entry_block) == ENTRY
    assert manifest_block == MANIFEST_BLOCK
    assert Manifest.from_block(DB, manifest_block) == MANIFEST
    stats = server.statistics().bitswap
    assert stats.blocks_sent >= 2
    assert stats.haves_sent >= 1
    assert stats.bytes_sent >= len(ENTRY.block) + len(MANIFEST_BLOCK)


async def test_library_client_fetches_a_batch() -> None:
    blocks = raw_blocks(40, 1000)
    async with (
        serving(our_store(*blocks)) as server,
        library_client(server) as (client, server_id),
    ):
        wanted = [to_libp2p_cid(cid) for cid, _ in blocks] + [to_libp2p_cid(ENTRY.cid)]
        with trio.fail_after(20):
            got = await client.new_session().get_blocks_batch(wanted, peer_id=server_id, timeout=15)
    expected = {bytes(cid): data for cid, data in [*blocks, (ENTRY.cid, ENTRY.block)]}
    assert got == expected


async def test_a_missing_cid_is_not_served_and_the_client_gives_up_in_time() -> None:
    async with serving(our_store()) as server, library_client(server) as (client, server_id):
        with trio.fail_after(10), pytest.raises(BitswapTimeoutError):
            await client.new_session().get_block(
                to_libp2p_cid(MISSING), peer_id=server_id, timeout=1.0
            )
        assert server.statistics().bitswap.dont_haves_sent >= 1
        assert server.statistics().bitswap.blocks_sent == 0


# --- a raw client, for the edges ----------------------------------------------------------


def frame(message: Message) -> bytes:
    payload = message.SerializeToString()
    n, prefix = len(payload), bytearray()
    while n >= 0x80:
        prefix.append((n & 0x7F) | 0x80)
        n >>= 7
    prefix.append(n)
    return bytes(prefix) + payload


def wants(*cids: Cid, want_have: bool = False, dont_have: bool = True) -> Message:
    message = Message()
    for cid in cids:
        entry = message.wantlist.entries.add()
        entry.block = bytes(cid)
        entry.priority = 1
        entry.wantType = 1 if want_have else 0  # type: ignore[assignment]
        entry.sendDontHave = dont_have
    return message


async def read_exactly(stream: INetStream, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        try:
            chunk = await stream.read(n - len(data))
        except StreamError:
            chunk = b""
        if not chunk:
            return None
        data += chunk
    return data


async def read_messages(stream: INetStream, on_message: Callable[[Message], None]) -> None:
    while True:
        length, shift = 0, 0
        while True:
            byte = await read_exactly(stream, 1)
            if byte is None:
                return
            length |= (byte[0] & 0x7F) << shift
            shift += 7
            if not byte[0] & 0x80:
                break
        body = await read_exactly(stream, length)
        assert body is not None
        message = Message()
        message.ParseFromString(body)
        on_message(message)


class RawClient:
    """Writes Bitswap messages by hand; collects the server's replies."""

    def __init__(self, host: IHost, server: ID) -> None:
        self.host = host
        self.server = server
        self.replies: list[Message] = []
        self.reply_ended = trio.Event()
        self.reply_arrived = trio.Event()
        self.reading = trio.Event()  # clear it to leave reply streams unread
        self.reading.set()
        host.set_stream_handler(TProtocol(V120), self._on_reply_stream)

    def _on_message(self, message: Message) -> None:
        self.replies.append(message)
        self.reply_arrived.set()

    async def _on_reply_stream(self, stream: INetStream) -> None:
        await self.reading.wait()
        await read_messages(stream, self._on_message)
        self.reply_ended.set()

    async def open(self) -> INetStream:
        with trio.fail_after(10):
            return await self.host.new_stream(self.server, [TProtocol(V120)])

    async def exchange(self, *messages: Message | bytes) -> list[Message]:
        """Send ``messages`` on one stream, end it, and return every reply (the server
        ends its reply stream once it has read ours to the end)."""
        stream = await self.open()
        for message in messages:
            await stream.write(message if isinstance(message, bytes) else frame(message))
        await stream.close()
        with trio.fail_after(10):
            await self.reply_ended.wait()
        self.reply_ended = trio.Event()
        replies, self.replies = self.replies, []
        return replies


@asynccontextmanager
async def raw_client(server: Libp2pTransport) -> AsyncIterator[RawClient]:
    async with open_libp2p_transport(Libp2pConfig(), key_path=None) as transport:
        await transport.connect(full_address(server))
        yield RawClient(transport.host, ID.from_base58(server.peer_id))


def blocks_of(replies: list[Message]) -> list[bytes]:
    return [item.data for reply in replies for item in reply.payload]


def presences_of(replies: list[Message]) -> list[tuple[Cid, bool]]:
    return [(Cid(p.cid), p.type == Message.Have) for reply in replies for p in reply.blockPresences]


async def test_want_have_and_dont_have_and_block_prefixes() -> None:
    async with serving(our_store()) as server, raw_client(server) as client:
        replies = await client.exchange(
            wants(ENTRY.cid, MISSING, want_have=True), wants(DB), wants(MISSING, dont_have=False)
        )
    assert presences_of(replies) == [(ENTRY.cid, True), (MISSING, False)]
    [item] = [item for reply in replies for item in reply.payload]
    assert item.data == MANIFEST_BLOCK
    assert item.prefix == bytes(DB)[:4]  # CIDv1, dag-cbor, sha2-256, 32 bytes


async def test_cids_we_cannot_hold_are_not_found() -> None:
    cid_v0 = b"\x12\x20" + bytes(ENTRY.cid)[4:]  # same digest, as a CIDv0
    message = Message()
    for raw in (cid_v0, b"\x01\x70\x12\x20" + bytes(32), b"junk"):
        entry = message.wantlist.entries.add()
        entry.block = raw
        entry.sendDontHave = True
    async with serving(our_store()) as server, raw_client(server) as client:
        replies = await client.exchange(message)
    assert blocks_of(replies) == []
    assert [p.type for r in replies for p in r.blockPresences] == [Message.DontHave] * 3


async def test_pushed_blocks_are_dropped_and_stay_unknown() -> None:
    store = our_store()
    before = {cid: store.get(cid) for cid in store}
    pushed = raw_blocks(3, 200)
    # Encoded by py-libp2p itself, in both formats (1.1+ payload with prefixes, and 1.0).
    push = create_message(blocks_v110=[(get_cid_prefix(to_libp2p_cid(c)), d) for c, d in pushed])
    push_v100 = create_message(blocks_v100=[pushed[0][1]])
    async with serving(store) as server, raw_client(server) as client:
        replies = await client.exchange(push, push_v100, wants(*(cid for cid, _ in pushed)))
        stats = server.statistics().bitswap
    assert presences_of(replies) == [(cid, False) for cid, _ in pushed]
    assert stats.unsolicited_blocks_dropped == 4
    assert {cid: store.get(cid) for cid in store} == before


async def test_a_long_want_list_is_truncated_to_the_limit() -> None:
    blocks = raw_blocks(10, 100)
    config = BitswapConfig(enabled=True, max_wants_per_message=4, max_wants_per_second=1e9)
    async with serving(our_store(*blocks), config) as server, raw_client(server) as client:
        replies = await client.exchange(wants(*(cid for cid, _ in blocks)), wants(MISSING))
        stats = server.statistics().bitswap
    assert blocks_of(replies) == [data for _, data in blocks[:4]]
    assert presences_of(replies) == [(MISSING, False)]  # the next message is answered
    assert stats.wants_truncated == 6
    assert stats.blocks_sent == 4


async def test_wants_over_the_rate_are_ignored() -> None:
    blocks = raw_blocks(8, 100)
    config = BitswapConfig(enabled=True, max_wants_per_message=4, max_wants_per_second=0.001)
    async with serving(our_store(*blocks), config) as server, raw_client(server) as client:
        cids = [cid for cid, _ in blocks]
        replies = await client.exchange(wants(*cids[:3]), wants(*cids[3:6]))
        stats = server.statistics().bitswap
    assert blocks_of(replies) == [data for _, data in blocks[:4]]
    assert stats.wants_rate_limited == 2


async def test_bytes_in_flight_per_peer_are_bounded() -> None:
    blocks = raw_blocks(5, 30_000)
    config = BitswapConfig(enabled=True, max_bytes_in_flight_per_peer=64 * 1024)
    async with serving(our_store(*blocks), config) as server, raw_client(server) as client:
        replies = await client.exchange(wants(*(cid for cid, _ in blocks)))
        # The budget is returned once a reply is written: the next want-list is served.
        again = await client.exchange(wants(*(cid for cid, _ in blocks[2:])))
        stats = server.statistics().bitswap
    assert blocks_of(replies) == [data for _, data in blocks[:2]]
    assert blocks_of(again) == [data for _, data in blocks[2:4]]
    assert stats.wants_over_budget == 4


async def test_oversized_messages_and_extra_streams_are_reset() -> None:
    config = BitswapConfig(enabled=True, max_message_size=1024, max_streams_per_peer=1)
    async with serving(our_store(), config) as server, raw_client(server) as client:
        big = Message()
        big.blocks.append(bytes(2000))
        first = await client.open()
        await first.write(frame(big))
        with trio.fail_after(10):
            assert await read_exactly(first, 1) is None  # reset by the server
        held = await client.open()
        await held.write(frame(wants(ENTRY.cid)))
        with trio.fail_after(10):
            await client.reply_arrived.wait()  # the server holds `held` now
            try:
                extra = await client.open()
            except StreamFailure:
                pass  # reset while the client was still negotiating
            else:
                assert await read_exactly(extra, 1) is None
        stats = server.statistics().bitswap
    assert stats.unsolicited_blocks_dropped == 0  # never even parsed
    assert stats.streams_reset >= 1
    assert stats.streams_refused == 1


class BrokenStore:
    def get(self, cid: Cid) -> bytes | None:
        raise StorageError("disk on fire")


async def test_a_failing_block_store_ends_the_stream_not_the_transport() -> None:
    async with serving(our_store()) as server, raw_client(server) as client:
        server.serve_blocks(BrokenStore())
        stream = await client.open()
        await stream.write(frame(wants(ENTRY.cid)))
        with trio.fail_after(10):
            assert await read_exactly(stream, 1) is None
        assert server.statistics().bitswap.streams_reset == 1
        server.serve_blocks(our_store())  # a second call replaces the source
        replies = await client.exchange(wants(ENTRY.cid))
    assert blocks_of(replies) == [ENTRY.block]


async def test_a_reply_cut_by_send_timeout_leaves_the_connection_usable() -> None:
    """A peer that does not read its replies: the write is cancelled at send_timeout,
    which resets that reply stream only; the same connection then serves the next
    want-list at once."""
    blocks = raw_blocks(12, 400_000)
    config = BitswapConfig(enabled=True, send_timeout=0.3, max_bytes_in_flight_per_peer=8 << 20)
    async with serving(our_store(*blocks), config) as server, raw_client(server) as client:
        client.reading = trio.Event()  # leave the first reply stream unread
        stream = await client.open()
        await stream.write(frame(wants(*(cid for cid, _ in blocks))))
        with trio.fail_after(10):
            assert await read_exactly(stream, 1) is None  # the server gave up: reset
        assert server.statistics().bitswap.streams_reset == 1
        client.reading.set()
        with trio.fail_after(5):
            await client.reply_ended.wait()  # the cut reply stream, read to its reset
            client.reply_ended, client.replies = trio.Event(), []
            replies = await client.exchange(wants(ENTRY.cid))
        stats = server.statistics().bitswap
    assert ENTRY.block in blocks_of(replies)
    assert stats.internal_errors == 0


class BuggyStore:
    def get(self, cid: Cid) -> bytes | None:
        raise RuntimeError("a bug in the block source")


async def test_an_unexpected_error_resets_the_stream_is_counted_and_serving_goes_on() -> None:
    async with serving(our_store()) as server, raw_client(server) as client:
        server.serve_blocks(BuggyStore())
        stream = await client.open()
        await stream.write(frame(wants(ENTRY.cid)))
        with trio.fail_after(10):
            assert await read_exactly(stream, 1) is None  # reset
        stats = server.statistics().bitswap
        assert (stats.internal_errors, stats.streams_reset) == (1, 1)
        server.serve_blocks(our_store())
        replies = await client.exchange(wants(ENTRY.cid))
    assert blocks_of(replies) == [ENTRY.block]


async def test_an_idle_stream_is_reset() -> None:
    config = BitswapConfig(enabled=True, stream_idle_timeout=0.2)
    async with serving(our_store(), config) as server, raw_client(server) as client:
        stream = await client.open()
        with trio.fail_after(10):
            assert await read_exactly(stream, 1) is None
        assert server.statistics().bitswap.streams_reset == 1


# --- configuration and CIDs ------------------------------------------------------------------


async def test_serve_blocks_needs_bitswap_enabled() -> None:
    async with open_libp2p_transport(Libp2pConfig(), key_path=None) as transport:
        with pytest.raises(UsageError, match="Bitswap is off"):
            transport.serve_blocks(our_store())
        assert transport.statistics().bitswap.blocks_sent == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"enabled": 1},
        {"max_wants_per_message": 0},
        {"max_wants_per_message": 2.5},
        {"max_wants_per_second": -1},
        {"max_bytes_in_flight_per_peer": True},
        {"max_message_size": 100},
        {"max_streams_per_peer": 0},
        {"stream_idle_timeout": 0},
    ],
)
def test_bad_bitswap_config_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidValueError):
        BitswapConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError):
        Libp2pConfig(bitswap=True)  # type: ignore[arg-type]


@given(st.binary(min_size=32, max_size=32), st.sampled_from([DAG_CBOR, RAW]))
def test_cids_translate_both_ways(digest: bytes, codec: int) -> None:
    cid = Cid(bytes([1, codec, 0x12, 0x20]) + digest)
    theirs = to_libp2p_cid(cid)
    assert theirs.buffer == bytes(cid)
    assert theirs.version == 1
    assert from_libp2p_cid(theirs) == cid
    assert from_libp2p_cid(bytes(cid)) == cid


@given(st.binary(max_size=40))
def test_other_bytes_are_not_our_cids(raw: bytes) -> None:
    try:
        cid = from_libp2p_cid(raw)
    except InvalidCidError:
        return
    assert bytes(cid) == raw


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert bucket.take(8, 0.0) == 5
    assert bucket.take(1, 0.0) == 0
    assert bucket.take(3, 0.25) == 2  # 2.5 tokens refilled
    assert bucket.take(100, 100.0) == 5  # never more than the burst
