"""A conformance battery for :class:`~orbitstore.net.transport.Transport` implementations.

Every transport (py-libp2p, in-memory) must pass every check here, so the replication
service can rely on the same behaviour over both. Use it from a test module::

    from orbitstore.testing.transport_conformance import CHECKS

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    async def test_conformance(check):
        await check(my_factory)

``factory`` is a zero-argument callable returning an async context manager that runs one
transport (a fresh peer). Transports made by one factory must be able to reach each other
with ``connect(t.listen_addresses()[0])``.

Every wait has a deadline (``DEADLINE`` seconds, real or virtual time); nothing sleeps to
let something happen. Gossip checks publish fresh messages until one is delivered,
because a real GossipSub mesh takes a heartbeat to form.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

import trio

from orbitstore.errors import (
    ClosedError,
    InvalidValueError,
    NetworkError,
    PeerUnavailableError,
    ProtocolError,
    UsageError,
)
from orbitstore.net.transport import PeerId, Stream, Transport

TransportFactory = Callable[[], AbstractAsyncContextManager[Any]]
Check = Callable[[TransportFactory], Awaitable[None]]

DEADLINE = 20.0
"""Seconds any single expected event may take (generous: CI machines are slow)."""

_RETRY = 0.25
"""Seconds to wait for a gossip delivery before publishing another message."""


class _Recorder:
    """Collects peer events and wakes waiters."""

    def __init__(self) -> None:
        self.connected: list[PeerId] = []
        self.disconnected: list[PeerId] = []
        self._changed = trio.Event()

    async def on_connected(self, peer: PeerId) -> None:
        self.connected.append(peer)
        self._wake()

    async def on_disconnected(self, peer: PeerId) -> None:
        self.disconnected.append(peer)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        with trio.fail_after(DEADLINE):
            while not predicate():
                await self._changed.wait()


class _Inbox:
    """Gossip messages received by one subscriber."""

    def __init__(self) -> None:
        self.messages: list[tuple[PeerId, bytes]] = []
        self._changed = trio.Event()

    async def handler(self, peer: PeerId, data: bytes) -> None:
        self.messages.append((peer, data))
        self._changed.set()
        self._changed = trio.Event()

    async def wait_change(self) -> None:
        await self._changed.wait()


async def _connect(a: Transport, b: Transport) -> None:
    with trio.fail_after(DEADLINE):
        peer = await a.connect(b.listen_addresses()[0])
    assert peer == b.peer_id, f"connect() returned {peer}, expected {b.peer_id}"


async def _receive_exactly(stream: Stream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.receive_some(min(65536, n - len(buf)))
        assert chunk, f"EOF after {len(buf)} of {n} bytes"
        buf += chunk
    return bytes(buf)


async def _receive_all(stream: Stream) -> bytes:
    buf = bytearray()
    while chunk := await stream.receive_some():
        buf += chunk
    return bytes(buf)


async def _publish_until(
    publisher: Transport, topic: str, inbox: _Inbox, predicate: Callable[[], bool], tag: bytes
) -> int:
    """Publish fresh messages until ``predicate`` holds; returns how many were sent."""
    sent = 0
    with trio.fail_after(DEADLINE):
        while not predicate():
            sent += 1
            await publisher.publish(topic, b"%s-%d" % (tag, sent))
            with trio.move_on_after(_RETRY):
                await inbox.wait_change()
    return sent


# --- the checks ----------------------------------------------------------------------------


async def check_connect(factory: TransportFactory) -> None:
    """connect() returns the peer id; both sides then list each other as connected."""
    async with factory() as a, factory() as b:
        assert a.peer_id != b.peer_id
        assert a.listen_addresses(), "a transport must have an address to be dialled at"
        events = _Recorder()
        b.set_peer_handlers(connected=events.on_connected, disconnected=events.on_disconnected)
        await _connect(a, b)
        assert b.peer_id in a.connected_peers()
        await events.wait_for(lambda: a.peer_id in events.connected)
        assert a.peer_id in b.connected_peers()
        # Connecting again to a connected peer is harmless.
        await _connect(a, b)
        assert a.connected_peers() == {b.peer_id}


async def check_connect_to_absent_peer(factory: TransportFactory) -> None:
    """Dialling a peer whose transport has exited raises PeerUnavailableError in time."""
    async with factory() as a:
        async with factory() as gone:
            address = gone.listen_addresses()[0]
        with trio.fail_after(DEADLINE):
            try:
                await a.connect(address)
            except PeerUnavailableError:
                pass
            else:
                raise AssertionError("connect() to an exited peer succeeded")


async def check_streams_both_directions(factory: TransportFactory) -> None:
    """Either side can open a sync stream; each end knows who is on the other."""
    async with factory() as a, factory() as b:
        seen: dict[str, PeerId] = {}

        def make_handler(name: str) -> Callable[[Stream], Awaitable[None]]:
            async def handler(stream: Stream) -> None:
                seen[name] = stream.remote_peer
                request = await _receive_all(stream)
                await stream.send_all(name.encode() + b":" + request)
                await stream.close()

            return handler

        a.set_stream_handler(make_handler("a"))
        b.set_stream_handler(make_handler("b"))
        await _connect(a, b)
        for opener, other, name in ((a, b, "b"), (b, a, "a")):
            with trio.fail_after(DEADLINE):
                stream = await opener.open_stream(other.peer_id)
                assert stream.remote_peer == other.peer_id
                await stream.send_all(b"hello")
                await stream.close()
                assert await _receive_all(stream) == name.encode() + b":hello"
            assert seen[name] == opener.peer_id


async def check_large_payload_intact(factory: TransportFactory) -> None:
    """Megabytes in both directions at once arrive complete and in order."""
    size = 3 * 1024 * 1024 + 17
    payload = hashlib.shake_256(b"orbitstore").digest(size)

    async def echo(stream: Stream) -> None:
        while chunk := await stream.receive_some(100_000):
            await stream.send_all(chunk)
        await stream.close()

    async with factory() as a, factory() as b:
        b.set_stream_handler(echo)
        await _connect(a, b)
        with trio.fail_after(DEADLINE * 2):
            stream = await a.open_stream(b.peer_id)
            received = b""

            async def receive() -> None:
                nonlocal received
                received = await _receive_all(stream)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive)
                await stream.send_all(payload)
                await stream.close()
        assert len(received) == len(payload)
        assert received == payload


async def check_eof_after_close(factory: TransportFactory) -> None:
    """close() is a half-close: the peer reads EOF (repeatedly), and can still reply."""
    done = trio.Event()
    results: dict[str, object] = {}

    async def handler(stream: Stream) -> None:
        results["data"] = await _receive_exactly(stream, 3)
        results["eof1"] = await stream.receive_some()
        results["eof2"] = await stream.receive_some()
        await stream.send_all(b"reply")
        await stream.close()
        await stream.close()  # idempotent
        done.set()

    async with factory() as a, factory() as b:
        b.set_stream_handler(handler)
        await _connect(a, b)
        with trio.fail_after(DEADLINE):
            stream = await a.open_stream(b.peer_id)
            await stream.send_all(b"abc")
            await stream.close()
            await stream.close()  # idempotent
            assert await _receive_all(stream) == b"reply"
            assert await stream.receive_some() == b""
            await done.wait()
        assert results == {"data": b"abc", "eof1": b"", "eof2": b""}
        try:
            await stream.send_all(b"more")
        except (ClosedError, NetworkError):
            pass
        else:
            raise AssertionError("send_all() after close() succeeded")


async def check_peer_exit_breaks_streams(factory: TransportFactory) -> None:
    """When the peer's transport exits, our stream ends (EOF or NetworkError), writes
    fail with NetworkError, the peer is reported gone and new streams fail."""
    handler_started = trio.Event()

    async def stall(stream: Stream) -> None:
        handler_started.set()
        await _receive_all(stream)

    async with factory() as a:
        events = _Recorder()
        a.set_peer_handlers(connected=events.on_connected, disconnected=events.on_disconnected)
        async with AsyncExitStack() as stack:
            b = await stack.enter_async_context(factory())
            b_id = b.peer_id
            b.set_stream_handler(stall)
            await _connect(a, b)
            with trio.fail_after(DEADLINE):
                stream = await a.open_stream(b_id)
                await stream.send_all(b"x")
                await handler_started.wait()
        # b has exited.
        with trio.fail_after(DEADLINE):
            try:
                rest = await stream.receive_some()
            except NetworkError:
                pass
            else:
                assert rest == b"", "data from a peer that exited"
            try:
                while True:
                    await stream.send_all(b"y" * 65536)
            except NetworkError:
                pass
        await events.wait_for(lambda: b_id in events.disconnected)
        assert b_id not in a.connected_peers()
        with trio.fail_after(DEADLINE):
            try:
                await a.open_stream(b_id)
            except NetworkError:
                pass
            else:
                raise AssertionError("open_stream() to an exited peer succeeded")


async def check_peer_callbacks(factory: TransportFactory) -> None:
    """connected fires once per peer on both sides; disconnected when the peer leaves."""
    async with factory() as a:
        ea = _Recorder()
        a.set_peer_handlers(connected=ea.on_connected, disconnected=ea.on_disconnected)
        async with factory() as b:
            eb = _Recorder()
            b.set_peer_handlers(connected=eb.on_connected, disconnected=eb.on_disconnected)
            await _connect(a, b)
            await ea.wait_for(lambda: b.peer_id in ea.connected)
            await eb.wait_for(lambda: a.peer_id in eb.connected)
            b_id = b.peer_id
        await ea.wait_for(lambda: b_id in ea.disconnected)
        assert ea.connected == [b_id]
        assert ea.disconnected == [b_id]


async def check_gossip(factory: TransportFactory) -> None:
    """Gossip reaches the other subscribers, never the publisher itself, with the
    publisher's peer id."""
    topic = "conformance/gossip"
    async with factory() as a, factory() as b:
        inbox_a, inbox_b = _Inbox(), _Inbox()
        await a.subscribe(topic, inbox_a.handler)
        await b.subscribe(topic, inbox_b.handler)
        await _connect(a, b)
        sent_a = await _publish_until(a, topic, inbox_b, lambda: bool(inbox_b.messages), b"a")
        sent_b = await _publish_until(b, topic, inbox_a, lambda: bool(inbox_a.messages), b"b")
        from_a = {b"a-%d" % i for i in range(1, sent_a + 1)}
        from_b = {b"b-%d" % i for i in range(1, sent_b + 1)}
        assert inbox_b.messages, "b got nothing"
        assert all(peer == a.peer_id and data in from_a for peer, data in inbox_b.messages)
        assert all(peer == b.peer_id and data in from_b for peer, data in inbox_a.messages)


async def check_gossip_unsubscribe(factory: TransportFactory) -> None:
    """After unsubscribe, nothing more arrives on that topic; other topics still do."""
    topic, fence = "conformance/unsub", "conformance/fence"
    async with factory() as a, factory() as b:
        inbox, fence_inbox = _Inbox(), _Inbox()
        await b.subscribe(topic, inbox.handler)
        await b.subscribe(fence, fence_inbox.handler)
        await _connect(a, b)
        await _publish_until(a, topic, inbox, lambda: bool(inbox.messages), b"before")
        await _publish_until(a, fence, fence_inbox, lambda: bool(fence_inbox.messages), b"f0")
        await b.unsubscribe(topic)
        await b.unsubscribe(topic)  # idempotent
        count = len(inbox.messages)
        # Publish on the dropped topic, then on the fence until the fence arrives: by then
        # the dropped topic's messages (sent earlier) would have arrived too.
        for round_ in (1, 2):
            await a.publish(topic, b"after-%d" % round_)
            seen = len(fence_inbox.messages)

            def fence_passed(seen: int = seen) -> bool:
                return len(fence_inbox.messages) > seen

            await _publish_until(a, fence, fence_inbox, fence_passed, b"f%d" % round_)
        assert len(inbox.messages) == count, f"got {inbox.messages[count:]} after unsubscribe"


_BIG = 32 * 1024 * 1024
"""More than any transport buffers for a peer that does not read."""


async def check_cancelled_send_resets_only_that_stream(factory: TransportFactory) -> None:
    """Cancelling a send_all midway (a session timeout does) resets that stream: the
    peer's reads raise NetworkError, never a clean EOF after a truncated message, and our
    later writes raise. The connection is unharmed: the peer stays connected and a new
    stream to it exchanges data at once."""
    release = trio.Event()
    outcome: list[str] = []
    ended = trio.Event()

    async def handler(stream: Stream) -> None:
        kind = await _receive_exactly(stream, 1)
        if kind == b"E":
            await stream.send_all(await _receive_all(stream))
            await stream.close()
            return
        await release.wait()  # do not read: the sender blocks, then is cancelled
        try:
            await _receive_all(stream)
            outcome.append("eof")
        except NetworkError:
            outcome.append("reset")
        ended.set()

    async with factory() as a, factory() as b:
        b.set_stream_handler(handler)
        await _connect(a, b)
        stream = await a.open_stream(b.peer_id)
        with trio.move_on_after(0.5) as scope:
            await stream.send_all(b"S" + bytes(_BIG))
        assert scope.cancelled_caught, "send_all of 32 MiB to a peer that does not read returned"
        release.set()
        with trio.fail_after(DEADLINE):
            await ended.wait()
        assert outcome == ["reset"], f"the peer saw {outcome} after a cancelled send_all"
        # The stream is broken, not closed by the caller: a NetworkError (trio's
        # BrokenResourceError), which every network boundary handles — a UsageError here
        # once escaped `suppress(NetworkError)` and took a node down.
        for call in (stream.send_all(b"more"), stream.receive_some(10)):
            try:
                await call
            except NetworkError:
                pass
            else:
                raise AssertionError("a call after a cancelled send_all() succeeded")
        assert b.peer_id in a.connected_peers()
        with trio.fail_after(DEADLINE):
            echo = await a.open_stream(b.peer_id)
            await echo.send_all(b"Ehello")
            await echo.close()
            assert await _receive_all(echo) == b"hello"


async def check_cancelled_receive_loses_nothing(factory: TransportFactory) -> None:
    """A receive_some cut short by a timeout loses no bytes: the next call returns them,
    in order (reading with a deadline and trying again is safe)."""
    payload = hashlib.shake_256(b"cancelled reads").digest(2 * 1024 * 1024 + 3)
    received = bytearray()
    cancelled = 0
    done = trio.Event()

    async def handler(stream: Stream) -> None:
        nonlocal cancelled
        deadlines = (0.0, 0.0001, 0.001, 0.01)
        turn = 0
        while True:
            turn += 1
            with trio.move_on_after(deadlines[turn % len(deadlines)]) as scope:
                chunk = await stream.receive_some(50_000)
                if not chunk:
                    break
                received.extend(chunk)
            cancelled += scope.cancelled_caught
        done.set()

    async with factory() as a, factory() as b:
        b.set_stream_handler(handler)
        await _connect(a, b)
        with trio.fail_after(DEADLINE * 2):
            stream = await a.open_stream(b.peer_id)
            for start in range(0, len(payload), 100_000):
                await stream.send_all(payload[start : start + 100_000])
            await stream.close()
            await done.wait()
        assert cancelled, "no receive_some was cancelled: the check proved nothing"
        assert bytes(received) == payload, "bytes were lost or reordered by a cancelled read"


async def check_usage_errors(factory: TransportFactory) -> None:
    """Dialling our own address and asking for fewer than one byte are the caller's
    mistakes (UsageError), not network failures; the transport stays usable."""

    async def echo(stream: Stream) -> None:
        await stream.send_all(await _receive_all(stream))

    async with factory() as a, factory() as b:
        b.set_stream_handler(echo)
        try:
            await a.connect(a.listen_addresses()[0])
        except UsageError:
            pass
        else:
            raise AssertionError("connect() to our own address succeeded")
        await _connect(a, b)
        with trio.fail_after(DEADLINE):
            stream = await a.open_stream(b.peer_id)
            for bad in (0, -1):
                try:
                    await stream.receive_some(bad)
                except InvalidValueError:
                    pass
                else:
                    raise AssertionError(f"receive_some({bad}) did not raise InvalidValueError")
            await stream.send_all(b"still fine")
            await stream.close()
            assert await _receive_all(stream) == b"still fine"


async def check_handler_end_closes_and_failure_resets(factory: TransportFactory) -> None:
    """When a stream handler returns, its stream is closed (the opener reads EOF); when
    it raises ProtocolError (the peer's fault), the stream is reset (the opener's read
    raises NetworkError) and later streams are still served."""

    async def handler(stream: Stream) -> None:
        kind = await _receive_exactly(stream, 1)
        if kind == b"R":
            raise ProtocolError("bad frame")
        await stream.send_all(b"bye")  # and return without closing

    async with factory() as a, factory() as b:
        b.set_stream_handler(handler)
        await _connect(a, b)
        for _ in range(2):
            with trio.fail_after(DEADLINE):
                stream = await a.open_stream(b.peer_id)
                await stream.send_all(b"Q")
                assert await _receive_all(stream) == b"bye"
                stream = await a.open_stream(b.peer_id)
                await stream.send_all(b"R")
                try:
                    await _receive_all(stream)
                except NetworkError:
                    pass
                else:
                    raise AssertionError("a handler that raised ProtocolError closed cleanly")


CHECKS: list[Check] = [
    check_connect,
    check_connect_to_absent_peer,
    check_streams_both_directions,
    check_large_payload_intact,
    check_eof_after_close,
    check_peer_exit_breaks_streams,
    check_cancelled_send_resets_only_that_stream,
    check_cancelled_receive_loses_nothing,
    check_handler_end_closes_and_failure_resets,
    check_usage_errors,
    check_peer_callbacks,
    check_gossip,
    check_gossip_unsubscribe,
]
"""Every check, in a stable order (use as a pytest parameter list)."""
