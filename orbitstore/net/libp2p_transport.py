"""The py-libp2p implementation of :class:`~orbitstore.net.transport.Transport`.

How it works
------------

:func:`open_libp2p_transport` builds one libp2p host and runs it for the duration of an
``async with`` block; everything it starts (gossip, DHT, mDNS, relay, reconnect loops,
handlers of inbound streams) runs in nurseries owned by that block and is gone when it
exits. The host is built the way the py-libp2p field notes recommend:

* **Noise only.** ``sec_opt`` is explicit: a default py-libp2p host also accepts
  ``/plaintext/2.0.0`` and ``/secio/1.0.0`` inbound, i.e. unauthenticated, unencrypted
  connections. Yamux is the only muxer (Mplex is 5x slower).
* ``max_connections_per_peer=1``: with the default of 3 every successful dial waits a
  fixed 250 ms for a "happy eyeballs" failure that never comes.
* a persisted Ed25519 identity (``key_path``, mode 0600), so the peer id survives restarts
  and others can keep it in their bootstrap lists;
* the ``libp2p`` logger gets our own handler: the library logs WARNINGs on normal paths
  (EOF after each DHT request, relay probing, Yamux closing); we forward its records to
  the ``orbitstore.net.libp2p`` logger at DEBUG, so nothing reaches stderr by default.

Connections: :meth:`Libp2pTransport.connect` dials under ``trio.fail_after`` and lifts
py-libp2p's 60 s negative dial cache first (after one failed dial the library refuses to
dial that peer again for a minute, even once it is back). :meth:`keep_connected` (used for
bootstrap peers and relays) redials with exponential back-off whenever the peer drops.
Peer connect/disconnect callbacks come from a network notifee through a channel to one
dispatcher task, in order, one per peer transition (not per connection).

Streams: see :mod:`orbitstore.net._libp2p_stream` for the error mapping. **A peer that
dies abruptly may look like a clean EOF**; the sync protocol's end marker catches that.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.network.stream.exceptions import StreamError
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.stream_muxer.exceptions import MuxedConnError
from multiaddr import Multiaddr

from orbitstore.core.cid import Cid
from orbitstore.errors import (
    ClosedError,
    InvalidDataError,
    InvalidValueError,
    NetworkError,
    PeerUnavailableError,
    UsageError,
)
from orbitstore.net._libp2p_bitswap import BitswapServer, BitswapStatistics
from orbitstore.net._libp2p_conn import close_broken_connections, is_broken
from orbitstore.net._libp2p_discovery import DhtService, MdnsListener, Provider, RelayService
from orbitstore.net._libp2p_gossip import GossipService, GossipStatistics
from orbitstore.net._libp2p_host import (
    PeerEvents,
    build_host,
    check_ports_free,
    parse_peer_address,
    parse_peer_id,
    quiet_libp2p_logging,
    single_error,
    without_shutdown_races,
)
from orbitstore.net._libp2p_stream import (
    HandlerCounters,
    HandlerStatistics,
    Libp2pStream,
    run_stream_handler,
)
from orbitstore.net._peer_key import load_or_create_peer_key
from orbitstore.net.libp2p_config import (
    PROTOCOL_IDS,
    SYNC_PROTOCOL_ID,
    BitswapConfig,
    GossipConfig,
    Libp2pConfig,
    RelayConfig,
)
from orbitstore.net.transport import (
    BlockSource,
    FetchOptions,
    GossipHandler,
    GossipValidator,
    PeerHandler,
    PeerId,
    Stream,
    StreamHandler,
)

logger = logging.getLogger("orbitstore.net.libp2p")

# Closing the host closes connections one by one (each up to 1 s in libp2p); bound it.
_CLOSE_TIMEOUT = 5.0

# Relays keep a reservation for an hour (RelayLimits.reservation_ttl); renew at half.
_RESERVATION_RENEWAL = 1800.0

# Failures a dial or a stream negotiation can end in, besides our own timeout.
_DIAL_ERRORS = (BaseLibp2pError, OSError, MuxedConnError, trio.BrokenResourceError)


async def _ignore_peer(_peer: PeerId) -> None:
    await trio.lowlevel.checkpoint()


@dataclass(frozen=True, slots=True)
class TransportStatistics:
    """What :meth:`Libp2pTransport.statistics` reports."""

    handlers: HandlerStatistics
    gossip: GossipStatistics
    bitswap: BitswapStatistics


class Libp2pTransport:
    """One node's presence on a libp2p network. Build it with :func:`open_libp2p_transport`."""

    def __init__(self, host: IHost, config: Libp2pConfig, nursery: trio.Nursery) -> None:
        self._host = host
        self._config = config
        self._nursery = nursery
        self._peer_id: PeerId = host.get_id().to_base58()
        self._gossip = GossipService(host, config.gossip)
        self._dht = DhtService(host, server=config.dht_server) if config.dht else None
        has_relay = config.relay.hop or config.relay.client
        self._relay = RelayService(host, config) if has_relay else None
        self._bitswap: BitswapServer | None = None
        self._stream_handler: StreamHandler | None = None
        self._on_connected: PeerHandler = _ignore_peer
        self._on_disconnected: PeerHandler = _ignore_peer
        self._connection_counts: dict[ID, int] = {}
        self._disconnect_events: dict[ID, trio.Event] = {}
        self._connect_waiters: dict[ID, trio.Event] = {}
        self._maintained: set[str] = set()
        self._handler_stats = HandlerCounters()
        self._closed = False
        host.set_stream_handler(TProtocol(SYNC_PROTOCOL_ID), self._on_inbound_stream)
        self._protocol_handlers: dict[str, StreamHandler] = {}
        for name, pid in PROTOCOL_IDS.items():
            host.set_stream_handler(TProtocol(pid), functools.partial(self._on_protocol, name))

    # --- identity and addresses ---------------------------------------------------------

    @property
    def peer_id(self) -> PeerId:
        return self._peer_id

    @property
    def host(self) -> IHost:
        """The underlying py-libp2p host (for tests and advanced wiring)."""
        return self._host

    @property
    def config(self) -> Libp2pConfig:
        return self._config

    def listen_addresses(self) -> list[str]:
        return [str(addr) for addr in self._host.get_addrs()]

    # --- connections ----------------------------------------------------------------------

    async def connect(self, address: str) -> PeerId:
        """Dial ``address`` (``.../p2p/<id>``, or ``<relay>/p2p-circuit/p2p/<id>``)."""
        info = parse_peer_address(address)
        self._check_open()
        if info.peer_id == self._host.get_id():
            raise InvalidValueError(f"{address!r} is our own address")
        if "/p2p-circuit" in address:
            await self._dial_relayed(address, info.peer_id)
        else:
            await self._dial(info)
        return info.peer_id.to_base58()

    async def _dial(self, info: PeerInfo) -> None:
        peer = info.peer_id.to_base58()
        # After a failed dial py-libp2p refuses to dial the peer again for 60 s, even
        # when it is back (same key, same port). An explicit dial is a fresh attempt.
        network = self._host.get_network()
        if isinstance(network, Swarm):
            network.unblock_peer(info.peer_id)
            # The library would hand back a dead connection as "connected": drop it first.
            await close_broken_connections(network, info.peer_id)
        try:
            with trio.fail_after(self._config.connect_timeout):
                await self._host.connect(info)
        except trio.TooSlowError as exc:
            raise PeerUnavailableError(
                f"dialling {peer} timed out after {self._config.connect_timeout} s", peer=peer
            ) from exc
        except _DIAL_ERRORS as exc:
            raise PeerUnavailableError(f"cannot connect to {peer}: {exc}", peer=peer) from exc

    async def _dial_relayed(self, address: str, peer_id: ID) -> None:
        relay = self._relay
        if relay is None:
            raise UsageError("dialling through a relay needs Libp2pConfig(relay=RelayConfig(...))")
        peer = peer_id.to_base58()
        if peer in self.connected_peers():
            return
        try:
            with trio.fail_after(self._config.connect_timeout):
                await relay.dial(Multiaddr(address))
        except trio.TooSlowError as exc:
            raise PeerUnavailableError(f"relayed dial to {peer} timed out", peer=peer) from exc
        except _DIAL_ERRORS as exc:
            raise PeerUnavailableError(f"relayed dial to {peer} failed: {exc}", peer=peer) from exc

    def connected_peers(self) -> set[PeerId]:
        """Peers with a working connection (a dead one that is still being closed does
        not count, so reconnect loops redial at once)."""
        return {
            peer.to_base58()
            for peer, conns in self._host.get_network().get_connections_map().items()
            if any(not is_broken(getattr(conn, "muxed_conn", None)) for conn in conns)
        }

    def keep_connected(self, address: str) -> None:
        """Connect to ``address`` now and again whenever the connection drops, with
        exponential back-off, until the transport closes. Failures are logged, not
        raised. Idempotent per address."""
        self._keep_connected(address, reserve=False)

    def _keep_connected(self, address: str, *, reserve: bool) -> None:
        info = parse_peer_address(address)
        self._check_open()
        if address in self._maintained:
            return
        self._maintained.add(address)
        self._nursery.start_soon(self._maintain, address, info, reserve)

    async def _maintain(self, address: str, info: PeerInfo, reserve: bool) -> None:
        delay = self._config.reconnect_initial_delay
        while True:
            event = self._disconnect_events.setdefault(info.peer_id, trio.Event())
            if info.peer_id.to_base58() not in self.connected_peers():
                try:
                    await self.connect(address)
                except PeerUnavailableError as exc:
                    logger.info("connecting to %s failed, retry in %.1f s: %s", address, delay, exc)
                    await trio.sleep(delay)
                    delay = min(delay * 2, self._config.reconnect_max_delay)
                    continue
            if reserve and self._relay is not None:
                reserved = await self._relay.reserve(info.peer_id)
                # Renew a reservation well before the relay lets it expire; retry a
                # refused one with back-off.
                wait = _RESERVATION_RENEWAL if reserved else delay
                delay = self._config.reconnect_initial_delay if reserved else delay * 2
                delay = min(delay, self._config.reconnect_max_delay)
                with trio.move_on_after(wait):
                    await event.wait()
            else:
                delay = self._config.reconnect_initial_delay
                await event.wait()

    async def wait_connected(self, peer: PeerId) -> None:
        """Return once ``peer`` is connected (wrap it in ``trio.fail_after``)."""
        pid = parse_peer_id(peer)
        while pid not in self._connection_counts:
            await self._connect_waiters.setdefault(pid, trio.Event()).wait()

    async def wait_disconnected(self, peer: PeerId) -> None:
        """Return once ``peer`` is not connected (wrap it in ``trio.fail_after``)."""
        pid = parse_peer_id(peer)
        while pid in self._connection_counts:
            await self._disconnect_events.setdefault(pid, trio.Event()).wait()

    # --- peer events -------------------------------------------------------------------------

    def set_peer_handlers(self, *, connected: PeerHandler, disconnected: PeerHandler) -> None:
        self._on_connected = connected
        self._on_disconnected = disconnected

    async def _dispatch_peer_events(
        self, receive: trio.MemoryReceiveChannel[tuple[bool, ID]]
    ) -> None:
        async for up, peer in receive:
            count = self._connection_counts.get(peer, 0)
            if up:
                self._connection_counts[peer] = count + 1
                if count == 0:
                    waiter = self._connect_waiters.pop(peer, None)
                    if waiter is not None:
                        waiter.set()
                    if self._dht is not None:
                        await self._dht.add_peer(peer)
                    await self._call_peer_handler(self._on_connected, peer)
            elif count > 0:
                if count == 1:
                    del self._connection_counts[peer]
                    event = self._disconnect_events.pop(peer, None)
                    if event is not None:
                        event.set()
                    await self._call_peer_handler(self._on_disconnected, peer)
                else:
                    self._connection_counts[peer] = count - 1

    async def _call_peer_handler(self, handler: PeerHandler, peer: ID) -> None:
        try:
            await handler(peer.to_base58())
        except (NetworkError, InvalidDataError) as exc:
            logger.info("peer handler failed for %s: %s", peer, exc)
        except Exception:  # remote boundary: a failing handler must not stop the events
            logger.exception("peer handler failed unexpectedly for %s", peer)
            self._handler_stats.peer_handler_errors += 1

    async def _on_mdns_peer(self, info: PeerInfo) -> None:
        """Dial a peer mDNS found (zeroconf re-announces it, so a failure is retried)."""
        if info.peer_id == self._host.get_id() or self._closed:
            return
        if info.peer_id.to_base58() in self.connected_peers():
            return
        self._nursery.start_soon(self._dial_discovered, info)

    async def _dial_discovered(self, info: PeerInfo) -> None:
        try:
            await self._dial(info)
        except PeerUnavailableError as exc:
            logger.info("cannot connect to mDNS peer %s: %s", info.peer_id, exc)

    # --- streams -------------------------------------------------------------------------------

    async def open_stream(self, peer: PeerId) -> Stream:
        pid = parse_peer_id(peer)
        self._check_open()
        try:
            with trio.fail_after(self._config.stream_open_timeout):
                raw = await self._host.new_stream(pid, [TProtocol(SYNC_PROTOCOL_ID)])
        except trio.TooSlowError as exc:
            raise NetworkError(f"opening a sync stream to {peer} timed out", peer=peer) from exc
        except (*_DIAL_ERRORS, StreamError) as exc:
            network = self._host.get_network()
            if isinstance(network, Swarm):
                await close_broken_connections(network, pid)
            if peer not in self.connected_peers():
                raise PeerUnavailableError(
                    f"cannot open a sync stream to {peer}: not connected ({exc})", peer=peer
                ) from exc
            raise NetworkError(f"cannot open a sync stream to {peer}: {exc}", peer=peer) from exc
        return Libp2pStream(raw, write_chunk_size=self._config.write_chunk_size)

    def set_stream_handler(self, handler: StreamHandler) -> None:
        self._stream_handler = handler

    async def open_protocol_stream(self, peer: PeerId, protocol: str) -> Stream:
        pid = parse_peer_id(peer)
        self._check_open()
        if protocol not in PROTOCOL_IDS:
            raise UsageError(f"unknown protocol {protocol!r}")
        try:
            with trio.fail_after(self._config.stream_open_timeout):
                raw = await self._host.new_stream(pid, [TProtocol(PROTOCOL_IDS[protocol])])
        except trio.TooSlowError as exc:
            raise NetworkError(f"opening a {protocol} stream to {peer} timed out") from exc
        except (*_DIAL_ERRORS, StreamError) as exc:
            raise PeerUnavailableError(
                f"cannot open a {protocol} stream to {peer}: {exc}", peer=peer
            ) from exc
        return Libp2pStream(raw, write_chunk_size=self._config.write_chunk_size)

    def set_protocol_handler(self, protocol: str, handler: StreamHandler) -> None:
        if protocol not in PROTOCOL_IDS:
            raise UsageError(f"unknown protocol {protocol!r}")
        self._protocol_handlers[protocol] = handler

    async def _on_protocol(self, protocol: str, raw: INetStream) -> None:
        handler = self._protocol_handlers.get(protocol)
        stream = Libp2pStream(raw, write_chunk_size=self._config.write_chunk_size)
        if handler is None or self._closed:
            await stream.reset()
            return
        self._nursery.start_soon(self._run_stream_handler, handler, stream)

    async def _on_inbound_stream(self, raw: INetStream) -> None:
        handler = self._stream_handler
        if handler is None or self._closed:
            await Libp2pStream(raw, write_chunk_size=self._config.write_chunk_size).reset()
            return
        stream = Libp2pStream(raw, write_chunk_size=self._config.write_chunk_size)
        # Run the handler in our nursery, not the library's: its lifetime is ours.
        self._nursery.start_soon(self._run_stream_handler, handler, stream)

    async def _run_stream_handler(self, handler: StreamHandler, stream: Libp2pStream) -> None:
        await run_stream_handler(handler, stream, self._handler_stats)

    # --- gossip ----------------------------------------------------------------------------------

    async def subscribe(
        self, topic: str, handler: GossipHandler, *, validator: GossipValidator | None = None
    ) -> None:
        self._check_open()
        await self._gossip.subscribe(topic, handler, validator=validator)

    async def unsubscribe(self, topic: str) -> None:
        await self._gossip.unsubscribe(topic)

    async def publish(self, topic: str, data: bytes) -> None:
        self._check_open()
        await self._gossip.publish(topic, data)

    # --- discovery --------------------------------------------------------------------------------

    async def provide(self, key: str) -> bool:
        """Announce in the DHT that we hold ``key`` (a database address or topic).
        True if at least one peer stored the record. Needs ``Libp2pConfig(dht=True)``."""
        dht = self._dht
        if dht is None:
            raise UsageError("the DHT is off; enable it with Libp2pConfig(dht=True)")
        return await dht.provide(key)

    async def find_providers(self, key: str, *, count: int = 20) -> list[Provider]:
        """Peers that announced ``key`` (de-duplicated, never ourselves)."""
        dht = self._dht
        if dht is None:
            raise UsageError("the DHT is off; enable it with Libp2pConfig(dht=True)")
        return await dht.find_providers(key, count)

    def has_relay_reservation(self, relay: PeerId) -> bool:
        """Whether a relay (from ``RelayConfig.relays``) holds a reservation for us."""
        return self._relay is not None and self._relay.has_reservation(parse_peer_id(relay))

    def relay_addresses(self) -> list[str]:
        """Our addresses through the relays that hold a reservation for us."""
        if self._relay is None:
            return []
        found = []
        for address in self._config.relay.relays:
            relay = parse_peer_address(address).peer_id
            if self._relay.has_reservation(relay):
                found.append(f"{address}/p2p-circuit/p2p/{self._peer_id}")
        return found

    async def wait_relay_reservation(self, relay: PeerId) -> None:
        """Return once ``relay`` holds a reservation for us (wrap in ``trio.fail_after``)."""
        pid = parse_peer_id(relay)
        if self._relay is None:
            raise UsageError("relays are off; enable them with Libp2pConfig(relay=...)")
        await self._relay.wait_reservation(pid)

    # --- IPFS block exchange ----------------------------------------------------------------

    def serve_blocks(self, source: BlockSource) -> None:
        """Serve ``source``'s blocks read-only to Bitswap peers (``/ipfs/bitswap/1.2.0``,
        1.1.0, 1.0.0) from now on; a second call replaces the source. Needs
        ``Libp2pConfig(bitswap=BitswapConfig(enabled=True))``."""
        if not self._config.bitswap.enabled:
            raise UsageError("Bitswap is off; enable it with BitswapConfig(enabled=True)")
        self._bitswap_server().source = source

    def _bitswap_server(self) -> BitswapServer:
        self._check_open()
        if self._bitswap is None:
            self._bitswap = BitswapServer(self._host, self._config.bitswap, self._nursery, None)
            self._bitswap.start()
        return self._bitswap

    async def fetch_blocks(
        self,
        cids: Sequence[Cid],
        *,
        peers: Iterable[PeerId] | None = None,
        options: FetchOptions | None = None,
    ) -> dict[Cid, bytes]:
        """Ask ``peers`` (default: every connected peer) for blocks over Bitswap; returns
        those that arrived, each verified against its CID (see ``_bitswap_client``).
        Works whether or not this node serves blocks (``BitswapConfig.enabled``)."""
        server = self._bitswap_server()
        chosen = sorted(self.connected_peers()) if peers is None else list(peers)
        targets = [parse_peer_id(p) for p in chosen]
        return await server.client.fetch(cids, targets, options or FetchOptions())

    def statistics(self) -> TransportStatistics:
        """Counters so far: inbound sync streams and handler failures (``handlers``),
        gossip (``gossip``), and the Bitswap server (``bitswap``, all zero until
        :meth:`serve_blocks`)."""
        return TransportStatistics(
            handlers=self._handler_stats.snapshot(),
            gossip=self._gossip.statistics(),
            bitswap=self._bitswap.statistics() if self._bitswap else BitswapStatistics(),
        )

    # --- lifecycle ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the libp2p transport is closed")

    async def _start(self, stack: AsyncExitStack) -> None:
        send, receive = trio.open_memory_channel[tuple[bool, ID]](1024)
        stack.callback(send.close)
        self._host.get_network().register_notifee(PeerEvents(send))
        self._nursery.start_soon(self._dispatch_peer_events, receive)
        await stack.enter_async_context(self._gossip.run())
        if self._dht is not None:
            await self._dht.start(stack)
        if self._relay is not None:
            await self._relay.start(stack)
            for address in self._config.relay.relays:
                self._keep_connected(address, reserve=True)
        if self._config.mdns:
            await MdnsListener(self._on_mdns_peer).start(stack, self._nursery)
        for address in self._config.bootstrap_peers:
            self.keep_connected(address)


@asynccontextmanager
async def open_libp2p_transport(
    config: Libp2pConfig | None = None, *, key_path: Path | None
) -> AsyncIterator[Libp2pTransport]:
    """Run a libp2p host; yields the transport, stops everything on exit.

    ``key_path`` is the peer identity file (created with mode 0600 if missing); ``None``
    gives a new random peer id (tests)."""
    config = config if config is not None else Libp2pConfig()
    if not isinstance(config, Libp2pConfig):
        raise InvalidValueError("config must be a Libp2pConfig")
    quiet_libp2p_logging()
    key_pair = load_or_create_peer_key(key_path)
    check_ports_free(config)
    host = build_host(config, key_pair)
    listen = [Multiaddr(a) for a in config.listen_addresses]
    try:
        async with AsyncExitStack() as outer:
            try:
                await outer.enter_async_context(host.run(listen_addrs=listen))
            except OSError as exc:
                addrs = list(config.listen_addresses)
                raise NetworkError(f"cannot listen on {addrs}: {exc}") from exc
            if not host.get_transport_addrs():  # the library logs a listen failure, no more
                raise NetworkError(f"cannot listen on any of {list(config.listen_addresses)}")
            try:
                async with trio.open_nursery() as nursery:
                    transport = Libp2pTransport(host, config, nursery)
                    try:
                        async with AsyncExitStack() as stack:
                            await transport._start(stack)
                            yield transport
                    finally:
                        transport._closed = True
                        nursery.cancel_scope.cancel()
            finally:
                # Leaving host.run() stops the swarm's tasks but leaves its listening
                # socket open: without this, an exited node still accepts connections.
                with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT):
                    await host.close()
    except BaseExceptionGroup as group:
        # py-libp2p nests every service in its own nursery, so one error (ours, or the
        # caller's from the body of the ``async with``) comes out wrapped several levels
        # deep. Hand back the error itself when there is exactly one. A message that
        # arrived while the host stopped makes the library spawn into a closing nursery
        # (RuntimeError): not an error of ours, and alone it is no error at all.
        rest = without_shutdown_races(group)
        if rest is None:
            return
        leaf = single_error(rest)
        if leaf is None:
            raise rest from None
        raise leaf from None


__all__ = [
    "SYNC_PROTOCOL_ID",
    "BitswapConfig",
    "BitswapStatistics",
    "BlockSource",
    "GossipConfig",
    "GossipStatistics",
    "HandlerStatistics",
    "Libp2pConfig",
    "Libp2pTransport",
    "Provider",
    "RelayConfig",
    "open_libp2p_transport",
]
