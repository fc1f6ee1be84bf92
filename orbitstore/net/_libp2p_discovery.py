"""Finding peers: Kademlia provider records, mDNS on the LAN, circuit relay v2.

Each service is started only when :class:`~orbitstore.net.libp2p_config.Libp2pConfig`
asks for it, inside the transport's ``async with`` (an ``AsyncExitStack`` owned by it).

* **DHT** (``dht=True``): ``provide(key)`` announces that we hold ``key`` (a database
  address or topic); ``find_providers(key)`` returns the peers that announced it,
  de-duplicated (py-libp2p returns one copy per responding peer) and without ourselves.
  The DHT only knows peers we are connected to, so it needs bootstrap peers.
* **mDNS** (``mdns=True``): the library's discovery callback runs in a zeroconf thread
  and is registered in a process-global list; we forward each discovery to a trio channel
  (``trio.from_thread``) and unregister on exit. Discovered peers are dialled (discovery
  alone does not connect; a failed dial is retried when the peer is announced again).
* **Relay** (``relay.hop`` / ``relay.client``): circuit relay v2. A client connects to
  each configured relay, waits until identify has told us the relay's protocols (the
  library's relay discovery caches "not a relay" forever if asked too early), then makes
  a reservation. Others reach us at ``<relay addr>/p2p-circuit/p2p/<our id>``;
  :meth:`RelayService.dial` dials such addresses.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass

import trio
from libp2p.abc import IHost
from libp2p.discovery.events.peerDiscovery import peerDiscovery
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT, _encode_key
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.relay.circuit_v2.config import RelayConfig as LibRelayConfig
from libp2p.relay.circuit_v2.config import RelayRole
from libp2p.relay.circuit_v2.discovery import RelayDiscovery
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL_ID
from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
from libp2p.relay.circuit_v2.resources import RelayLimits
from libp2p.relay.circuit_v2.transport import CircuitV2Transport
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from orbitstore.errors import InvalidValueError, NetworkError, UsageError
from orbitstore.net.libp2p_config import Libp2pConfig

logger = logging.getLogger("orbitstore.net.discovery")

# How long to wait for identify to report a relay's protocols after connecting.
_IDENTIFY_DEADLINE = 10.0
_IDENTIFY_POLL = 0.05


@dataclass(frozen=True, kw_only=True)
class Provider:
    """A peer that announced a key in the DHT, with the addresses it can be dialled at."""

    peer_id: str
    addresses: tuple[str, ...]

    def dial_addresses(self) -> list[str]:
        """Full multiaddrs (with ``/p2p/<id>``) ready for ``Transport.connect``."""
        suffix = f"/p2p/{self.peer_id}"
        return [a if a.endswith(suffix) else a + suffix for a in self.addresses]


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise InvalidValueError(f"a DHT key is a non-empty string of at most 1024 chars: {key!r}")


class DhtService:
    def __init__(self, host: IHost, *, server: bool) -> None:
        self._host = host
        self._dht = KadDHT(host, DHTMode.SERVER if server else DHTMode.CLIENT)

    async def start(self, stack: AsyncExitStack) -> None:
        await stack.enter_async_context(background_trio_service(self._dht))

    async def add_peer(self, peer: ID) -> None:
        await self._dht.add_peer(peer)

    async def provide(self, key: str) -> bool:
        _check_key(key)
        try:
            return bool(await self._dht.provide(key))
        except (OSError, trio.BrokenResourceError) as exc:
            raise NetworkError(f"DHT provide({key!r}) failed: {exc}") from exc

    async def find_providers(self, key: str, count: int) -> list[Provider]:
        _check_key(key)
        # py-libp2p answers from its local provider store whenever that holds a record
        # for the key, and never asks the network then. Our own provide() puts our
        # record there, and every lookup caches what it found: a node that provides a
        # database would never find the other providers, and no node would ever find
        # providers that appeared after its first lookup. So the local records are set
        # aside during the lookup (forcing a network query) and merged back after it.
        store = self._dht.provider_store
        encoded = _encode_key(key)
        local = store.providers.pop(encoded, None)
        try:
            infos: list[PeerInfo] = await self._dht.find_providers(key, count=count)
        except (OSError, trio.BrokenResourceError) as exc:
            raise NetworkError(f"DHT find_providers({key!r}) failed: {exc}") from exc
        finally:
            if local is not None:
                found = store.providers.setdefault(encoded, {})
                for peer, record in local.items():
                    found.setdefault(peer, record)
        if local is not None:
            infos = infos + [PeerInfo(r.peer_id, r.addresses) for r in local.values()]
        merged: dict[ID, list[str]] = {}
        for info in infos:
            if info.peer_id == self._host.get_id():
                continue
            addrs = merged.setdefault(info.peer_id, [])
            for addr in info.addrs:
                if str(addr) not in addrs:
                    addrs.append(str(addr))
        return [Provider(peer_id=p.to_base58(), addresses=tuple(a)) for p, a in merged.items()]


class MdnsListener:
    """Forwards mDNS discoveries from zeroconf's thread into trio."""

    def __init__(self, on_peer: Callable[[PeerInfo], Awaitable[None]]) -> None:
        self._on_peer = on_peer
        self._send, self._receive = trio.open_memory_channel[PeerInfo](256)
        self._token = trio.lowlevel.current_trio_token()

    def _discovered(self, info: PeerInfo) -> None:  # runs in a zeroconf thread
        with suppress(trio.WouldBlock, trio.RunFinishedError, trio.ClosedResourceError):
            trio.from_thread.run_sync(self._send.send_nowait, info, trio_token=self._token)

    async def start(self, stack: AsyncExitStack, nursery: trio.Nursery) -> None:
        peerDiscovery.register_peer_discovered_handler(self._discovered)
        stack.callback(peerDiscovery.unregister_peer_discovered_handler, self._discovered)
        nursery.start_soon(self._run)

    async def _run(self) -> None:
        async for info in self._receive:
            await self._on_peer(info)


class RelayService:
    def __init__(self, host: IHost, config: Libp2pConfig) -> None:
        relay = config.relay
        self._host = host
        self._config = config
        limits = RelayLimits(
            duration=relay.circuit_duration,
            data=relay.circuit_data,
            max_circuit_conns=relay.max_circuits,
            max_reservations=relay.max_reservations,
        )
        self._protocol = CircuitV2Protocol(host, limits=limits, allow_hop=relay.hop)
        roles = RelayRole.STOP | RelayRole.CLIENT
        if relay.hop:
            roles |= RelayRole.HOP
        self._transport = CircuitV2Transport(
            host, self._protocol, LibRelayConfig(roles=roles, limits=limits)
        )
        # Scans run at start and then every 300 s; we trigger reservations ourselves.
        self._discovery = RelayDiscovery(host, auto_reserve=False)
        self._transport.discovery = self._discovery
        self._reserved: dict[ID, trio.Event] = {}

    async def start(self, stack: AsyncExitStack) -> None:
        await stack.enter_async_context(background_trio_service(self._protocol))
        await stack.enter_async_context(background_trio_service(self._discovery))

    async def reserve(self, relay: ID) -> bool:
        """Make a reservation at ``relay`` (we must be connected to it)."""
        with trio.move_on_after(_IDENTIFY_DEADLINE):
            while HOP_PROTOCOL_ID not in self._peer_protocols(relay):
                await trio.sleep(_IDENTIFY_POLL)
        # Forget a "not a relay" answer cached before identify completed.
        self._discovery._protocol_cache.pop(relay, None)
        await self._discovery.discover_relays()
        if relay not in self._discovery.get_relays():
            logger.warning("peer %s does not offer circuit relay v2", relay)
            return False
        ok = bool(await self._discovery.make_reservation(relay))
        if ok:
            self._reserved_event(relay).set()
        else:
            logger.warning("relay %s refused our reservation", relay)
        return ok

    def has_reservation(self, relay: ID) -> bool:
        info = self._discovery.get_relay_info(relay)
        return bool(info is not None and info.has_reservation)

    async def wait_reservation(self, relay: ID) -> None:
        while not self.has_reservation(relay):
            event = self._reserved_event(relay)
            await event.wait()
            if not self.has_reservation(relay):
                self._reserved.pop(relay, None)

    def _reserved_event(self, relay: ID) -> trio.Event:
        return self._reserved.setdefault(relay, trio.Event())

    def _peer_protocols(self, peer: ID) -> list[str]:
        try:
            return [str(p) for p in self._host.get_peerstore().get_protocols(peer)]
        except Exception:  # peer not in the peerstore yet
            return []

    async def dial(self, address: Multiaddr) -> None:
        await self._transport.dial(address)


def require(service: object | None, what: str, flag: str) -> None:
    if service is None:
        raise UsageError(f"{what} is off; enable it with Libp2pConfig({flag}=...)")
