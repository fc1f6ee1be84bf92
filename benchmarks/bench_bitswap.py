"""Serving blocks over IPFS Bitswap: py-libp2p's own client fetching from our server.

Both hosts run in one process on 127.0.0.1 (one trio loop, one CPU core), so every
figure includes the client's work too; py-libp2p's client is the slower end.

- ``bitswap_batch_entries``: ``get_blocks_batch`` of ``n`` signed entries (~250 B each)
  from a peer named up front; blocks per second.
- ``bitswap_single_get``: one ``get_block`` of an entry (WANT-BLOCK, block back);
  milliseconds, median over ``n`` fetches.
- ``bitswap_large_blocks``: ``get_blocks_batch`` of ``n`` raw 256 KiB blocks; MB/s.
- ``bitswap_server_answer``: the server alone answering 256-want want-lists from a memory
  block store (look-up, re-hash, reply building; no network); microseconds per want.

Run: ``.venv/bin/python benchmarks/bench_bitswap.py [--quick]``
"""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from _common import emit, machine, parse_args
from libp2p import new_host
from libp2p.bitswap import BitswapClient, MemoryBlockStore
from libp2p.bitswap.pb.bitswap_pb2 import Message
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from multiaddr import Multiaddr

from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import RAW, Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.net._libp2p_bitswap import BitswapServer, TokenBucket, _Peer, to_libp2p_cid
from orbitstore.net.libp2p_config import BitswapConfig, Libp2pConfig
from orbitstore.net.libp2p_transport import Libp2pTransport, open_libp2p_transport
from orbitstore.storage.memory import MemoryBlockStore as OurBlockStore

ALICE = Identity(b"\x07" * 32)
DB = Manifest(name="bench", type="feed", access=StaticAccess.of(["*"])).cid
# Limits raised so the benchmark measures throughput, not our rate limiter.
CONFIG = BitswapConfig(
    enabled=True,
    max_wants_per_second=1e9,
    max_wants_per_message=4096,
    max_bytes_in_flight_per_peer=64 * 1024 * 1024,
)


def entries(n: int) -> list[Entry]:
    made: list[Entry] = []
    for i in range(n):
        nxt = (made[-1].cid,) if made else ()
        payload = {"text": f"message {i}", "room": "general"}
        made.append(Entry.create(ALICE, db=DB, clock=i + 1, next=nxt, payload=payload))
    return made


@asynccontextmanager
async def pair(store: OurBlockStore) -> AsyncIterator[tuple[BitswapClient, ID]]:
    config = Libp2pConfig(bitswap=CONFIG)
    async with open_libp2p_transport(config, key_path=None) as server:
        server.serve_blocks(store)
        async with client_for(server) as client:
            yield client


@asynccontextmanager
async def client_for(server: Libp2pTransport) -> AsyncIterator[tuple[BitswapClient, ID]]:
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
                address = f"{server.listen_addresses()[0]}/p2p/{server.peer_id}"
                info = info_from_p2p_addr(Multiaddr(address))
                await host.connect(info)
                try:
                    yield client, info.peer_id
                finally:
                    await client.stop()
                    nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await host.close()


async def batch_rate(blocks: list[tuple[Cid, bytes]], reps: int) -> list[float]:
    store = OurBlockStore()
    store.put_many(blocks)
    runs = []
    for _ in range(reps):
        async with pair(store) as (client, server_id):
            wanted = [to_libp2p_cid(cid) for cid, _ in blocks]
            start = time.perf_counter()
            got = await client.new_session().get_blocks_batch(
                wanted, peer_id=server_id, timeout=120, batch_size=64
            )
            elapsed = time.perf_counter() - start
            assert len(got) == len(blocks), "not every block arrived"
            runs.append(elapsed)
    return runs


async def single_gets(made: list[Entry], n: int) -> list[float]:
    store = OurBlockStore()
    store.put_many((e.cid, e.block) for e in made)
    times = []
    async with pair(store) as (client, server_id):
        for entry in made[:n]:
            start = time.perf_counter()
            data = await client.new_session().get_block(
                to_libp2p_cid(entry.cid), peer_id=server_id, timeout=30
            )
            times.append((time.perf_counter() - start) * 1000)
            assert data == entry.block
    return times


def answer_cost(made: list[Entry], reps: int) -> list[float]:
    store = OurBlockStore()
    store.put_many((e.cid, e.block) for e in made)
    server = BitswapServer(None, CONFIG, None, store)  # type: ignore[arg-type]
    peer = _Peer(bucket=TokenBucket(rate=1e12, burst=1e12, now=0.0))
    message = Message()
    for entry in made[:256]:
        want = message.wantlist.entries.add()
        want.block = bytes(entry.cid)
    frame = message.SerializeToString()
    runs = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(20):
            reply = server._answer(frame, peer, "/ipfs/bitswap/1.2.0")
            peer.in_flight -= reply.reserved
        runs.append((time.perf_counter() - start) / (20 * len(message.wantlist.entries)) * 1e6)
    return runs


async def main() -> None:
    args = parse_args(__doc__ or "")
    n_entries = 200 if args.quick else 2000
    n_single = 5 if args.quick else 50
    n_large = 4 if args.quick else 40
    reps = 1 if args.quick else 3
    extra = {"mode": "one-process", **machine()}

    made = entries(n_entries)
    runs = await batch_rate([(e.cid, e.block) for e in made], reps)
    emit("bitswap_batch_entries", [n_entries / r for r in runs], "blocks/s", n_entries, **extra)

    times = await single_gets(made, n_single)
    emit("bitswap_single_get", [statistics.median(times)], "ms", n_single, **extra)

    large = []
    for i in range(n_large):
        data = i.to_bytes(4, "big") * (64 * 1024)
        large.append((Cid.for_block(data, RAW), data))
    runs = await batch_rate(large, reps)
    size_mb = n_large * 256 * 1024 / 1e6
    emit("bitswap_large_blocks", [size_mb / r for r in runs], "MB/s", n_large, **extra)

    emit("bitswap_server_answer", answer_cost(made, 5 if args.quick else 20), "us/want", 256)


if __name__ == "__main__":
    trio.run(main)
