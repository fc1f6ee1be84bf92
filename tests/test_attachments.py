"""Attachments on a node: attach, read, stream, pin; limits and typed errors; a replica
that fetches lazily over real libp2p (Bitswap between our nodes); hostile peers.

Everything networked runs real libp2p hosts on 127.0.0.1 in this process and waits on
results under deadlines; nothing sleeps.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetStream
from libp2p.bitswap.pb.bitswap_pb2 import Message
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from multiaddr import Multiaddr

from orbitstore.core.cid import DAG_PB, RAW, Cid
from orbitstore.core.dagpb import (
    UNIXFS_FILE,
    PBLink,
    PBNode,
    UnixfsData,
    encode_node,
    encode_unixfs,
)
from orbitstore.core.unixfs import AttachmentLimits, ReadProgress, build_file
from orbitstore.errors import (
    AttachmentTooLargeError,
    AttachmentUnavailableError,
    HashMismatchError,
    InvalidCidError,
    InvalidValueError,
    PayloadTooLargeError,
)
from orbitstore.net._bitswap_wire import FrameReader, decode_request, frame
from orbitstore.net._libp2p_stream import Libp2pStream
from orbitstore.net.libp2p_config import BitswapConfig, Libp2pConfig
from orbitstore.net.transport import FetchOptions, PeerId
from orbitstore.node import Node, open_node
from orbitstore.node.attachments import Attachments, AttachmentsConfig
from orbitstore.node.config import NodeConfig
from orbitstore.storage.memory import MemoryStore

DEADLINE = 60.0
QUICK = AttachmentsConfig(fetch=FetchOptions(peer_timeout=1.0, resend_interval=0.25))


def serving_config(**attachments: object) -> NodeConfig:
    return NodeConfig(
        network=Libp2pConfig(bitswap=BitswapConfig(enabled=True)),
        attachments=AttachmentsConfig(**attachments),  # type: ignore[arg-type]
    )


def fetching_config(attachments: AttachmentsConfig = QUICK) -> NodeConfig:
    return NodeConfig(network=Libp2pConfig(), attachments=attachments)


# --- one node -------------------------------------------------------------------------------


async def test_attach_bytes_a_path_and_a_file_object_give_one_cid(tmp_path: Path) -> None:
    data = os.urandom(3 * 262144 + 17)
    (tmp_path / "photo.jpg").write_bytes(data)
    async with open_node(tmp_path / "node") as node:
        db = await node.open("chat", type="feed")
        cid = await db.attach(data)
        assert await db.attach(tmp_path / "photo.jpg") == cid
        assert await db.attach(str(tmp_path / "photo.jpg")) == cid
        with (tmp_path / "photo.jpg").open("rb") as handle:
            assert await db.attach(handle) == cid
        assert await db.attach(io.BytesIO(data)) == cid
        assert cid == build_file(data)[0]
        await db.add({"text": "look", "image": cid})
    async with open_node(tmp_path / "node") as node:  # durable, and linked by an entry
        db = await node.open("chat", type="feed")
        (event,) = db.items()
        linked = event.value["image"]
        assert isinstance(linked, Cid)
        assert await db.read_attachment(linked) == data
        assert await db.read_attachment(str(linked)) == data
        chunks = [chunk async for chunk in db.open_attachment(linked)]
        assert len(chunks) == 4 and b"".join(chunks) == data
        assert node.attachments.is_complete(linked)


async def test_progress_counts_bytes_and_knows_the_total() -> None:
    async with open_node(None) as node:
        db = await node.open("files")
        data = os.urandom(1_000_000)
        cid = await db.attach(data)
        seen: list[ReadProgress] = []
        assert await db.read_attachment(cid, progress=seen.append) == data
        assert seen and all(p.total_bytes == 1_000_000 for p in seen)
        assert [p.bytes_read for p in seen] == sorted(p.bytes_read for p in seen)
        assert seen[-1].bytes_read == 1_000_000 and seen[-1].blocks_received == 5
        stats = await node.attachments.pin(cid)
        assert (stats.size, stats.blocks_local, stats.blocks_fetched) == (1_000_000, 5, 0)


async def test_user_mistakes_get_typed_errors() -> None:
    config = NodeConfig(attachments=AttachmentsConfig(limits=AttachmentLimits(max_size=1000)))
    async with open_node(None, config=config) as node:
        db = await node.open("files")
        with pytest.raises(PayloadTooLargeError, match="over 1000 bytes"):
            await db.attach(b"x" * 1001)
        with pytest.raises(InvalidValueError, match="binary mode"):
            await db.attach(io.StringIO("text"))  # type: ignore[arg-type]
        with pytest.raises(InvalidValueError, match="cannot read"):
            await db.attach("/nonexistent/file")
        with pytest.raises(InvalidValueError, match="not int"):
            await db.attach(42)  # type: ignore[arg-type]
        with pytest.raises(InvalidCidError):
            await db.read_attachment("not a cid")
        missing = Cid.for_block(b"nobody has this", RAW)
        with pytest.raises(AttachmentUnavailableError, match="no network"):
            await db.read_attachment(missing)
        assert not node.attachments.is_complete(missing)


class _Fetcher:
    """A stand-in network (unit test): answers from a dict, and counts what it was asked."""

    def __init__(self, blocks: dict[Cid, bytes]) -> None:
        self.blocks = blocks
        self.asked: list[Cid] = []

    async def fetch_blocks(
        self,
        cids: Sequence[Cid],
        *,
        peers: Iterable[PeerId] | None = None,
        options: FetchOptions | None = None,
    ) -> dict[Cid, bytes]:
        self.asked += cids
        return {cid: self.blocks[cid] for cid in cids if cid in self.blocks}


async def test_fetched_blocks_are_checked_before_they_are_stored() -> None:
    store = MemoryStore()
    # A root that hashes right but declares a 1 TiB file.
    huge = encode_node(
        PBNode(
            links=(PBLink(cid=Cid.for_block(b"x", RAW), tsize=1),),
            data=encode_unixfs(UnixfsData(type=UNIXFS_FILE, filesize=2**40, blocksizes=(2**40,))),
        )
    )
    huge_cid = Cid.for_block(huge, DAG_PB)
    data = os.urandom(600_000)
    root, blocks = build_file(data)
    liar = dict(blocks)
    leaf = next(cid for cid in liar if cid != root)
    liar[leaf] = b"not the leaf"
    attachments = Attachments(store, QUICK, _Fetcher({huge_cid: huge, **liar}))
    with pytest.raises(AttachmentTooLargeError):
        await attachments.read(huge_cid)
    assert not store.blocks.has(huge_cid)
    with pytest.raises(HashMismatchError):
        await attachments.read(root)
    assert not store.blocks.has(leaf)
    honest = _Fetcher(dict(blocks))
    attachments.fetcher = honest
    assert await attachments.read(root) == data
    assert await attachments.read(root) == data  # the second read is local
    assert len(honest.asked) == len(set(honest.asked)) == len(blocks) - 1  # root was kept


# --- over libp2p ------------------------------------------------------------------------------


async def _connect(replica: Node, holder: Node) -> None:
    assert replica.replication is not None and holder.replication is not None
    address = holder.replication.transport.listen_addresses()[0]
    await replica.replication.connect(address)


async def test_a_replica_fetches_an_attachment_lazily_over_libp2p() -> None:
    data = os.urandom(5 * 262144 + 3)
    with trio.fail_after(DEADLINE):
        async with (
            open_node(None, config=serving_config()) as writer,
            open_node(None, config=fetching_config()) as replica,
        ):
            db = await writer.open("chat", type="feed", write=["*"])
            cid = await db.attach(data)
            await db.add({"text": "see attached", "file": cid})
            await _connect(replica, writer)
            copy = await replica.open(db.address, type="feed")
            await copy.wait_synced(timeout=DEADLINE)
            (event,) = copy.items()
            linked = event.value["file"]
            assert linked == cid
            assert not replica.attachments.is_complete(cid)  # entries came, the file did not
            assert not replica.store.blocks.has(cid)
            seen: list[ReadProgress] = []
            assert await copy.read_attachment(linked, progress=seen.append) == data
            assert seen[0].total_bytes == len(data)
            assert replica.attachments.is_complete(cid)
            transport = replica.replication.transport  # type: ignore[union-attr]
            stats = transport.statistics().bitswap  # type: ignore[attr-defined]
            assert stats.blocks_received == 7  # the root and 6 leaves, each verified
            assert stats.unsolicited_blocks_dropped == 0
            assert await copy.read_attachment(linked) == data  # local now: nothing more asked
            assert transport.statistics().bitswap.wants_sent == stats.wants_sent  # type: ignore[attr-defined]


async def test_a_replica_gets_a_typed_error_when_no_peer_has_the_attachment() -> None:
    with trio.fail_after(DEADLINE):
        async with (
            open_node(None, config=serving_config()) as holder,
            open_node(None, config=fetching_config()) as replica,
        ):
            await _connect(replica, holder)
            missing = build_file(b"never attached")[0]
            with pytest.raises(AttachmentUnavailableError, match="no connected peer gave"):
                await replica.attachments.read(missing)


async def test_a_hostile_root_from_a_peer_is_refused_and_not_stored() -> None:
    huge = encode_node(
        PBNode(
            links=(PBLink(cid=Cid.for_block(b"x", RAW), tsize=1),),
            data=encode_unixfs(UnixfsData(type=UNIXFS_FILE, filesize=2**40, blocksizes=(2**40,))),
        )
    )
    huge_cid = Cid.for_block(huge, DAG_PB)
    with trio.fail_after(DEADLINE):
        async with (
            open_node(None, config=serving_config()) as holder,
            open_node(None, config=fetching_config()) as replica,
        ):
            holder.store.blocks.put(huge_cid, huge)
            await _connect(replica, holder)
            with pytest.raises(AttachmentTooLargeError):
                await replica.attachments.read(huge_cid)
            assert not replica.store.blocks.has(huge_cid)


# --- a hostile Bitswap peer ---------------------------------------------------------------------


@asynccontextmanager
async def lying_peer(answer: bytes) -> AsyncIterator[tuple[IHost, str]]:
    """A plain py-libp2p host speaking Bitswap 1.2.0 that answers every want with the
    block ``answer`` (under the wanted CID's prefix), on a stream it opens, as kubo does."""
    key_pair = create_new_key_pair()
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    host = new_host(key_pair=key_pair, sec_opt={NOISE_PROTOCOL_ID: noise})
    protocol = TProtocol("/ipfs/bitswap/1.2.0")

    async def handler(raw: INetStream) -> None:
        reader = FrameReader(Libp2pStream(raw, write_chunk_size=65536), 1 << 20)
        peer = raw.muxed_conn.peer_id
        while (message := await reader.next()) is not None:
            reply = Message()
            for want in decode_request(message).wants:
                item = reply.payload.add()
                item.prefix = want.cid[:4]
                item.data = answer
            out = await host.new_stream(peer, [protocol])
            await out.write(frame(reply.SerializeToString()))
            await out.close()

    host.set_stream_handler(protocol, handler)
    async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        try:
            address = f"{host.get_addrs()[0]}"
            if "/p2p/" not in address:
                address += f"/p2p/{host.get_id()}"
            yield host, address
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await host.close()


@pytest.mark.parametrize(
    ("answer", "counter"),
    [
        (b"not the block you asked for", "unsolicited_blocks_dropped"),
        (b"\x00" * (3 * 1024 * 1024), "oversized_blocks_dropped"),
    ],
    ids=["wrong-hash", "huge"],
)
async def test_blocks_that_do_not_verify_are_dropped_and_the_read_fails_typed(
    answer: bytes, counter: str
) -> None:
    data = os.urandom(1000)
    cid = build_file(data)[0]
    with trio.fail_after(DEADLINE):
        async with (
            lying_peer(answer) as (_host, address),
            open_node(None, config=fetching_config()) as replica,
        ):
            assert replica.replication is not None
            await replica.replication.connect(address)
            with pytest.raises(AttachmentUnavailableError):
                await replica.attachments.read(cid)
            assert not replica.store.blocks.has(cid)
            stats = replica.replication.transport.statistics().bitswap  # type: ignore[attr-defined]
            assert getattr(stats, counter) >= 1
            assert stats.blocks_received == 0 and stats.fetch_peer_timeouts == 1
