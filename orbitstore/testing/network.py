"""An in-memory network for deterministic replication tests.

:class:`MemoryNetwork` hands out :class:`MemoryTransport` objects that implement
:class:`orbitstore.net.transport.Transport` over trio memory channels, with scripted
latency, gossip loss, partitions and heals, and peer crashes. All randomness comes from
the ``random.Random`` passed in, and all waiting is on trio's clock, so a test run under
``autojump_clock`` is fast and repeatable::

    net = MemoryNetwork(rng=random.Random(7), latency=(0.001, 0.02), gossip_loss=0.1)
    async with net.open_transport("a") as ta, net.open_transport("b") as tb:
        await ta.connect("mem/b")
        net.partition({"a"}, {"b"})   # streams between them break, gossip is dropped
        net.heal()

Streams are reliable and ordered while both ends are up and on the same side of any
partition; when that stops being true every operation on them raises NetworkError
(a broken stream is never a clean EOF). They behave like the libp2p ones (the
conformance battery in :mod:`orbitstore.testing.transport_conformance` runs on both):
``close()`` is a half-close (the peer reads EOF and can still reply); a writer blocks
once ``_PIPE_CAPACITY`` chunks of at most 64 KiB wait unread (flow control); a
cancelled ``send_all`` resets the stream (the peer's reads raise NetworkError) and
leaves the connection alone; a cancelled ``receive_some`` loses nothing; a stream
handler's stream is closed when the handler returns and reset when it raises
NetworkError or InvalidDataError (which is logged, like a gossip handler's).

Gossip is best effort: lost with probability ``gossip_loss``, and dropped silently
across partitions or above 1 MiB.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import trio

from orbitstore.errors import (
    InvalidDataError,
    InvalidValueError,
    NetworkError,
    PeerUnavailableError,
)
from orbitstore.net.transport import (
    GossipHandler,
    GossipValidator,
    PeerHandler,
    PeerId,
    StreamHandler,
)

ADDRESS_PREFIX = "mem/"
MAX_GOSSIP_BYTES = 1024 * 1024  # py-libp2p drops larger messages; so do we
_PIPE_CAPACITY = 64  # chunks in flight per direction before the writer waits
_CHUNK = 64 * 1024  # send_all splits data into chunks this big (so 4 MiB in flight at most)

logger = logging.getLogger("orbitstore.testing.network")


class _Pipe:
    """One direction of a stream."""

    def __init__(self) -> None:
        self.send, self.recv = trio.open_memory_channel[tuple[float, bytes]](_PIPE_CAPACITY)
        self.broken = False
        self.last_delivery = 0.0

    def break_(self) -> None:
        self.broken = True
        self.send.close()
        self.recv.close()


class MemoryStream:
    """One end of an in-memory stream."""

    def __init__(
        self, *, network: MemoryNetwork, local: PeerId, remote: PeerId, out: _Pipe, inp: _Pipe
    ) -> None:
        self._net = network
        self._local = local
        self._remote = remote
        self._out = out
        self._in = inp
        self._buffer = b""
        self._pending: tuple[float, bytes] | None = None  # received, not yet due
        self._closed = False

    @property
    def remote_peer(self) -> PeerId:
        return self._remote

    def _break(self) -> None:
        self._out.break_()
        self._in.break_()

    async def send_all(self, data: bytes) -> None:
        if self._out.broken:
            raise NetworkError(f"stream to {self._remote} is broken")
        if self._closed:
            raise NetworkError(f"stream to {self._remote} was closed by us")
        await trio.lowlevel.checkpoint()
        view = memoryview(bytes(data))
        try:
            for start in range(0, len(view), _CHUNK):
                await self._send_chunk(bytes(view[start : start + _CHUNK]))
        except trio.Cancelled:
            # Like libp2p: part of the data may be out, so the peer must not take it for
            # a whole message. Only this stream ends.
            await self.reset()
            raise

    async def _send_chunk(self, chunk: bytes) -> None:
        pipe = self._out
        at = max(trio.current_time() + self._net._sample_latency(), pipe.last_delivery)
        try:
            await pipe.send.send((at, chunk))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise NetworkError(f"stream to {self._remote} is broken") from exc
        pipe.last_delivery = at

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise InvalidValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        if not self._buffer:
            pipe = self._in
            if pipe.broken:
                raise NetworkError(f"stream from {self._remote} is broken")
            if self._pending is None:
                try:
                    self._pending = await pipe.recv.receive()
                except trio.EndOfChannel:
                    if pipe.broken:
                        raise NetworkError(f"stream from {self._remote} is broken") from None
                    return b""
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise NetworkError(f"stream from {self._remote} is broken") from exc
            # A cancellation while the chunk is in flight keeps it for the next call.
            await trio.sleep_until(self._pending[0])
            if pipe.broken:
                raise NetworkError(f"stream from {self._remote} is broken")
            self._buffer, self._pending = self._pending[1], None
        out, self._buffer = self._buffer[:max_bytes], self._buffer[max_bytes:]
        return out

    async def reset(self) -> None:
        """Abort the stream: both directions break, the peer's reads and writes raise
        NetworkError. Other streams and the connection are untouched."""
        self._closed = True
        self._break()
        self._net._forget_stream(self)
        await trio.lowlevel.checkpoint()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._out.send.close()
        await trio.lowlevel.checkpoint()


class MemoryTransport:
    """One node's presence on a :class:`MemoryNetwork`. Make with
    :meth:`MemoryNetwork.open_transport`."""

    def __init__(self, network: MemoryNetwork, peer_id: PeerId, nursery: trio.Nursery) -> None:
        self._net = network
        self._peer_id = peer_id
        self._nursery = nursery
        self._stream_handler: StreamHandler | None = None
        self._protocol_handlers: dict[str, StreamHandler] = {}
        self._on_connect: PeerHandler | None = None
        self._on_disconnect: PeerHandler | None = None
        self._topics: dict[str, GossipHandler] = {}
        self._validators: dict[str, GossipValidator] = {}
        #: Gossip messages our validators refused (or that made them raise).
        self.gossip_rejected = 0
        self._streams: set[MemoryStream] = set()
        self.alive = True

    # -- Transport --------------------------------------------------------------------

    @property
    def peer_id(self) -> PeerId:
        return self._peer_id

    def listen_addresses(self) -> list[str]:
        return [ADDRESS_PREFIX + self._peer_id]

    async def connect(self, address: str) -> PeerId:
        self._check()
        await trio.lowlevel.checkpoint()
        if not address.startswith(ADDRESS_PREFIX):
            raise PeerUnavailableError(f"not a memory address: {address!r}")
        peer = address[len(ADDRESS_PREFIX) :]
        self._net._connect(self._peer_id, peer)
        return peer

    def connected_peers(self) -> set[PeerId]:
        return self._net._peers_of(self._peer_id)

    async def open_stream(self, peer: PeerId) -> MemoryStream:
        self._check()
        await trio.lowlevel.checkpoint()
        return self._net._open_stream(self._peer_id, peer)

    def set_stream_handler(self, handler: StreamHandler) -> None:
        self._stream_handler = handler

    async def open_protocol_stream(self, peer: PeerId, protocol: str) -> MemoryStream:
        self._check()
        await trio.lowlevel.checkpoint()
        return self._net._open_stream(self._peer_id, peer, protocol)

    def set_protocol_handler(self, protocol: str, handler: StreamHandler) -> None:
        self._protocol_handlers[protocol] = handler

    def set_peer_handlers(self, *, connected: PeerHandler, disconnected: PeerHandler) -> None:
        self._on_connect = connected
        self._on_disconnect = disconnected

    async def subscribe(
        self, topic: str, handler: GossipHandler, *, validator: GossipValidator | None = None
    ) -> None:
        self._check()
        self._topics[topic] = handler
        if validator is None:
            self._validators.pop(topic, None)
        else:
            self._validators[topic] = validator
        await trio.lowlevel.checkpoint()

    async def unsubscribe(self, topic: str) -> None:
        self._topics.pop(topic, None)
        self._validators.pop(topic, None)
        await trio.lowlevel.checkpoint()

    async def publish(self, topic: str, data: bytes) -> None:
        self._check()
        await trio.lowlevel.checkpoint()
        self._net._publish(self._peer_id, topic, bytes(data))

    # -- internals ------------------------------------------------------------------------

    def _valid(self, topic: str, origin: PeerId, data: bytes) -> bool:
        """Like libp2p's topic validators: a refused message is never delivered (this
        network does not forward gossip, so it is not forwarded either)."""
        validator = self._validators.get(topic)
        if validator is None:
            return True
        try:
            ok = validator(origin, data)
        except Exception:  # libp2p treats a raising validator as a refusal
            ok = False
        if not ok:
            self.gossip_rejected += 1
        return ok

    def _check(self) -> None:
        if not self.alive:
            raise NetworkError(f"transport {self._peer_id} is down")

    def _spawn(self, fn: object, *args: object) -> None:
        if self.alive:
            self._nursery.start_soon(self._guard, fn, *args)

    async def _guard(self, fn: object, *args: object) -> None:
        # A handler's peer going away is the handler's own business; a handler blaming
        # the peer is logged (the libp2p transport does the same).
        try:
            await fn(*args)  # type: ignore[operator]
        except NetworkError:
            pass
        except InvalidDataError as exc:
            logger.info("handler on %s failed: %s", self._peer_id, exc)

    async def _run_stream_handler(self, stream: MemoryStream, protocol: str | None = None) -> None:
        """Like the libp2p transport: close the stream when the handler returns, reset
        it when the handler blames the peer or the network."""
        handler = (
            self._stream_handler if protocol is None else self._protocol_handlers.get(protocol)
        )
        if handler is None:
            await stream.reset()
            return
        try:
            await handler(stream)
        except (NetworkError, InvalidDataError) as exc:
            logger.info("sync stream from %s ended with %s", stream.remote_peer, exc)
            await stream.reset()
        finally:
            await stream.close()


class MemoryNetwork:
    """A set of in-memory peers. See the module docstring."""

    def __init__(
        self,
        *,
        rng: random.Random,
        latency: tuple[float, float] = (0.0, 0.0),
        gossip_loss: float = 0.0,
    ) -> None:
        if not 0 <= latency[0] <= latency[1]:
            raise InvalidValueError("latency is a (min, max) pair of seconds")
        if not 0.0 <= gossip_loss <= 1.0:
            raise InvalidValueError("gossip_loss is a probability")
        self.rng = rng
        self.latency = latency
        self.gossip_loss = gossip_loss
        self._transports: dict[PeerId, MemoryTransport] = {}
        self._links: set[frozenset[PeerId]] = set()
        self._groups: list[frozenset[PeerId]] | None = None
        self.gossip_sent = 0
        self.gossip_dropped = 0

    def _sample_latency(self) -> float:
        lo, hi = self.latency
        return lo if lo == hi else self.rng.uniform(lo, hi)

    @asynccontextmanager
    async def open_transport(self, peer_id: PeerId) -> AsyncIterator[MemoryTransport]:
        """A transport for ``peer_id`` (which may be a restarted, crashed peer)."""
        old = self._transports.get(peer_id)
        if old is not None and old.alive:
            raise InvalidValueError(f"peer {peer_id!r} is already on the network")
        async with trio.open_nursery() as nursery:
            transport = MemoryTransport(self, peer_id, nursery)
            self._transports[peer_id] = transport
            try:
                yield transport
            finally:
                self.crash(peer_id)
                nursery.cancel_scope.cancel()

    # -- scripting ------------------------------------------------------------------------

    def reachable(self, a: PeerId, b: PeerId) -> bool:
        ta, tb = self._transports.get(a), self._transports.get(b)
        if ta is None or tb is None or not ta.alive or not tb.alive:
            return False
        if self._groups is None:
            return True
        return any(a in g and b in g for g in self._groups)

    def partition(self, *groups: Iterable[PeerId]) -> None:
        """Only peers in the same group can talk; links across groups break. Peers in no
        group are isolated."""
        self._groups = [frozenset(g) for g in groups]
        for link in list(self._links):
            a, b = tuple(link)
            if not self.reachable(a, b):
                self._drop_link(a, b)

    def heal(self) -> None:
        """Remove every partition. Peers reconnect by themselves (or by the test)."""
        self._groups = None

    def crash(self, peer_id: PeerId) -> None:
        """The peer dies: all its streams break, its links drop, it stops receiving."""
        transport = self._transports.get(peer_id)
        if transport is None or not transport.alive:
            return
        transport.alive = False
        for stream in list(transport._streams):
            stream._break()
        for link in list(self._links):
            if peer_id in link:
                (other,) = link - {peer_id}
                self._drop_link(peer_id, other)

    # -- internals ------------------------------------------------------------------------

    def _peers_of(self, peer: PeerId) -> set[PeerId]:
        return {p for link in self._links if peer in link for p in link if p != peer}

    def _connect(self, a: PeerId, b: PeerId) -> None:
        if a == b:
            raise InvalidValueError(f"mem/{a} is our own address")  # like libp2p
        if not self.reachable(a, b):
            raise PeerUnavailableError(f"peer {b} is unreachable from {a}")
        link = frozenset((a, b))
        if link in self._links:
            return
        self._links.add(link)
        for me, other in ((a, b), (b, a)):
            t = self._transports[me]
            if t._on_connect is not None:
                t._spawn(t._on_connect, other)

    def _drop_link(self, a: PeerId, b: PeerId) -> None:
        self._links.discard(frozenset((a, b)))
        for me, other in ((a, b), (b, a)):
            t = self._transports.get(me)
            if t is None:
                continue
            for stream in list(t._streams):
                if stream.remote_peer == other:
                    stream._break()
                    t._streams.discard(stream)
            if t.alive and t._on_disconnect is not None:
                t._spawn(t._on_disconnect, other)

    def _open_stream(self, a: PeerId, b: PeerId, protocol: str | None = None) -> MemoryStream:
        if frozenset((a, b)) not in self._links or not self.reachable(a, b):
            raise PeerUnavailableError(f"{a} is not connected to {b}")
        tb = self._transports[b]
        if protocol is None and tb._stream_handler is None:
            raise PeerUnavailableError(f"{b} does not speak the sync protocol")
        if protocol is not None and protocol not in tb._protocol_handlers:
            raise PeerUnavailableError(f"{b} does not speak the {protocol} protocol")
        ab, ba = _Pipe(), _Pipe()
        ours = MemoryStream(network=self, local=a, remote=b, out=ab, inp=ba)
        theirs = MemoryStream(network=self, local=b, remote=a, out=ba, inp=ab)
        self._transports[a]._streams.add(ours)
        tb._streams.add(theirs)
        tb._spawn(tb._run_stream_handler, theirs, protocol)
        return ours

    def _forget_stream(self, stream: MemoryStream) -> None:
        for transport in self._transports.values():
            transport._streams.discard(stream)

    def _publish(self, sender: PeerId, topic: str, data: bytes) -> None:
        if len(data) > MAX_GOSSIP_BYTES:
            self.gossip_dropped += 1
            return
        for peer in sorted(self._peers_of(sender)):
            t = self._transports[peer]
            handler = t._topics.get(topic)
            if handler is None:
                continue
            self.gossip_sent += 1
            if self.gossip_loss and self.rng.random() < self.gossip_loss:
                self.gossip_dropped += 1
                continue
            t._spawn(self._deliver, t, sender, topic, data, self._sample_latency())

    async def _deliver(
        self, t: MemoryTransport, sender: PeerId, topic: str, data: bytes, delay: float
    ) -> None:
        await trio.sleep(delay)
        handler = t._topics.get(topic)
        if handler is None or not self.reachable(sender, t.peer_id):
            self.gossip_dropped += 1
            return
        if t._valid(topic, sender, data):
            await handler(sender, data)
