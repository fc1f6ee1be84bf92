"""Cancellation and dead connections over real libp2p hosts on 127.0.0.1.

Regression tests for: cancelling ``send_all`` midway (replication does on every session
timeout) cut a Yamux frame in half, which left the connection listed as connected but
unusable; and a dead connection (frozen peer) was never noticed."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio
from test_libp2p_transport import DEADLINE, peer_process

from orbitstore.errors import NetworkError, StreamResetError
from orbitstore.net.libp2p_config import Libp2pConfig
from orbitstore.net.libp2p_transport import Libp2pTransport, open_libp2p_transport
from orbitstore.net.transport import Stream

# How fast a fresh stream must work after a cancelled write: a healthy loopback
# connection opens a stream and echoes in ~10 ms; a broken one never does.
_QUICK = 5.0


@asynccontextmanager
async def loopback(config: Libp2pConfig | None = None) -> AsyncIterator[Libp2pTransport]:
    async with open_libp2p_transport(config or Libp2pConfig(), key_path=None) as transport:
        yield transport


async def _sink_or_echo(stream: Stream) -> None:
    kind = await stream.receive_some(1)
    if kind == b"E":
        data = b""
        while chunk := await stream.receive_some():
            data += chunk
        await stream.send_all(data)
        await stream.close()
        return
    while await stream.receive_some():
        pass


async def _echo(transport: Libp2pTransport, peer: str, message: bytes) -> bytes:
    stream = await transport.open_stream(peer)
    await stream.send_all(b"E" + message)
    await stream.close()
    reply = b""
    while chunk := await stream.receive_some():
        reply += chunk
    return reply


async def test_send_all_cancelled_midway_leaves_the_connection_usable() -> None:
    """The peer drains as fast as it can, so the writer is inside a frame write (between
    the two Noise messages of a Yamux frame, or inside a socket write) when the deadline
    hits. Every round the connection must still carry a new stream at once."""
    async with loopback() as a, loopback() as b:
        b.set_stream_handler(_sink_or_echo)
        await a.connect(b.listen_addresses()[0])
        for round_ in range(12):
            stream = await a.open_stream(b.peer_id)
            with trio.move_on_after(0.004 + 0.008 * round_) as scope:
                await stream.send_all(b"S" + bytes(64 * 1024 * 1024))
            assert scope.cancelled_caught
            with pytest.raises(StreamResetError):
                await stream.send_all(b"more")
            assert b.peer_id in a.connected_peers()
            with trio.fail_after(_QUICK):
                assert await _echo(a, b.peer_id, b"round %d" % round_) == b"round %d" % round_


async def test_cancelled_nursery_of_writers_leaves_the_connection_usable() -> None:
    """Several streams written concurrently, all cancelled at once (a session's nursery
    being cancelled): the frames of the other streams are not cut either."""
    async with loopback() as a, loopback() as b:
        b.set_stream_handler(_sink_or_echo)
        await a.connect(b.listen_addresses()[0])
        for round_ in range(4):
            streams = [await a.open_stream(b.peer_id) for _ in range(4)]
            with trio.move_on_after(0.01 + 0.02 * round_):
                async with trio.open_nursery() as nursery:
                    for stream in streams:
                        nursery.start_soon(stream.send_all, b"S" + bytes(16 * 1024 * 1024))
            with trio.fail_after(_QUICK):
                assert await _echo(a, b.peer_id, b"after") == b"after"


@pytest.mark.slow
async def test_frozen_peer_is_noticed_disconnected_and_redialled() -> None:
    """A peer that stops answering (SIGSTOP) misses its keep-alive pong: the connection
    is closed within interval + timeout, the disconnected handler fires, and once the
    peer runs again a redial gets a working connection."""
    config = Libp2pConfig(keepalive_interval=0.5, keepalive_timeout=1.5)
    async with loopback(config) as a, peer_process("echo") as peer:
        gone = trio.Event()

        async def connected(_peer: str) -> None:
            await trio.lowlevel.checkpoint()

        async def disconnected(who: str) -> None:
            if who == peer.peer_id:
                gone.set()
            await trio.lowlevel.checkpoint()

        a.set_peer_handlers(connected=connected, disconnected=disconnected)
        await a.connect(peer.address)
        peer.process.send_signal(signal.SIGSTOP)
        try:
            with trio.fail_after(DEADLINE):
                await gone.wait()
            assert peer.peer_id not in a.connected_peers()
        finally:
            peer.process.send_signal(signal.SIGCONT)
        with trio.fail_after(DEADLINE):
            await a.connect(peer.address)
            stream = await a.open_stream(peer.peer_id)
            await stream.send_all(b"back")
            await stream.close()
            assert await stream.receive_some() == b"back"


@pytest.mark.slow
async def test_write_that_cannot_finish_closes_the_connection() -> None:
    """Writing to a frozen peer fills the socket; a frame write that cannot finish within
    write_timeout closes the connection (keep-alive is slower here on purpose), and the
    writer gets NetworkError instead of hanging."""
    config = Libp2pConfig(write_timeout=1.0, keepalive_interval=600, keepalive_timeout=600)
    async with loopback(config) as a, peer_process("sink") as peer:
        await a.connect(peer.address)
        stream = await a.open_stream(peer.peer_id)
        await stream.send_all(b"x")
        await peer.expect("STREAM")
        peer.process.send_signal(signal.SIGSTOP)
        try:
            with trio.fail_after(DEADLINE), pytest.raises(NetworkError):
                while True:
                    await stream.send_all(bytes(1024 * 1024))
            with trio.fail_after(DEADLINE):
                await a.wait_disconnected(peer.peer_id)
        finally:
            peer.process.send_signal(signal.SIGCONT)


async def test_corrupted_connection_is_noticed_closed_and_redialled() -> None:
    """Half a Yamux frame on the wire (what a cut write used to produce) desynchronises
    the peer's muxer. Keep-alive notices: the connection is closed on both sides, the
    disconnected handlers fire, and a redial carries streams again."""
    config = Libp2pConfig(keepalive_interval=0.5, keepalive_timeout=1.5)
    async with loopback(config) as a, loopback(config) as b:
        b.set_stream_handler(_sink_or_echo)
        gone = {a.peer_id: trio.Event(), b.peer_id: trio.Event()}

        async def ignore(_peer: str) -> None:
            await trio.lowlevel.checkpoint()

        for transport in (a, b):
            transport.set_peer_handlers(connected=ignore, disconnected=_setter(gone))
        await a.connect(b.listen_addresses()[0])
        [conn] = a.host.get_network().get_connections_map()[b.host.get_id()]
        # A DATA header announcing 1000 bytes on stream 1, then 10 of them.
        await conn.muxed_conn.secured_conn.write(
            bytes([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 3, 232]) + bytes(10)
        )
        # Well before the library's own 15 s timeout for a DATA frame body.
        with trio.fail_after(10):
            await gone[b.peer_id].wait()  # a noticed
            await gone[a.peer_id].wait()  # b noticed
        assert b.peer_id not in a.connected_peers()
        with trio.fail_after(DEADLINE):
            await a.connect(b.listen_addresses()[0])
            assert await _echo(a, b.peer_id, b"again") == b"again"


def _setter(events: dict[str, trio.Event]) -> Callable[[str], Awaitable[None]]:
    async def disconnected(peer: str) -> None:
        if peer in events:
            events[peer].set()
        await trio.lowlevel.checkpoint()

    return disconnected
