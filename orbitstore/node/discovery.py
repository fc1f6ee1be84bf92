"""Finding peers for open databases through DHT provider records.

When a node's own libp2p transport runs the Kademlia DHT (``Libp2pConfig(dht=True)``),
every database the node opens gets two background loops in the node's nursery:

- **provide**: announce the database address (``/orbitstore/<manifest cid>``) as a
  provider record, then again every ``provide_interval`` so that peers that joined the
  DHT since learn it too. While no peer stores the record (the DHT is still empty
  because the bootstrap peers are being dialled), retry after ``retry_delay``, doubling.
- **search**: while fewer than ``target_peers`` of the providers found so far are
  connected, ask the DHT for providers of the address, dial the new ones
  (de-duplicated by peer id; never ourselves, never a peer already connected) and ask
  the replication service to sync with each. Every ``search_interval`` while the
  database is short of peers; the retry delay when the DHT knew nobody.

The loops of a database end when its handle closes (they look before each DHT query)
or at once when the database is dropped (:meth:`ProviderDiscovery.remove_address`);
reopening it starts new loops for the new handle. A provider record already stored
in the DHT cannot be withdrawn: it expires there (Kademlia republishes nothing for us
once the loop has ended).

Nothing here is needed for correctness: a peer reached by any other means (bootstrap,
mDNS, an explicit ``connect``) replicates the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from orbitstore.errors import NetworkError, OrbitstoreError
from orbitstore.net.transport import PeerId
from orbitstore.node.config import DiscoveryConfig
from orbitstore.node.database import Database
from orbitstore.node.replication import Replication

logger = logging.getLogger("orbitstore.node.discovery")


class ProviderRecord(Protocol):
    @property
    def peer_id(self) -> str: ...

    def dial_addresses(self) -> list[str]: ...


class ProviderTransport(Protocol):
    """What discovery needs of a transport (the libp2p transport with ``dht=True``)."""

    @property
    def peer_id(self) -> PeerId: ...

    def connected_peers(self) -> set[PeerId]: ...

    async def connect(self, address: str) -> PeerId: ...

    async def provide(self, key: str) -> bool: ...

    async def find_providers(self, key: str, *, count: int = 20) -> Sequence[ProviderRecord]: ...


@dataclass(frozen=True, slots=True)
class DiscoveryStatistics:
    provided: tuple[str, ...]
    """Addresses at least one DHT peer stored our provider record for."""
    providers: dict[str, tuple[PeerId, ...]]
    """Per address, the providers found so far (never ourselves)."""
    lookups: int
    dials: int
    failed_dials: int


@dataclass(slots=True)
class _Address:
    database: Database
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    provided: bool = False
    providers: set[PeerId] = field(default_factory=set)


class ProviderDiscovery:
    """Provide and search for every open database. Made and owned by ``open_node``."""

    def __init__(
        self,
        *,
        transport: ProviderTransport,
        replication: Replication,
        config: DiscoveryConfig,
    ) -> None:
        self._transport = transport
        self._replication = replication
        self._config = config
        self._addresses: dict[str, _Address] = {}
        self._nursery: trio.Nursery | None = None
        self._counts = {"lookups": 0, "dials": 0, "failed": 0}

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled (the node's nursery owns this task)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def add_database(self, database: Database) -> None:
        """Start providing and searching for ``database`` (idempotent for an open
        handle; a new handle of a database whose old handle closed replaces it)."""
        address = database.address
        if self._nursery is None:
            return
        existing = self._addresses.get(address)
        if existing is not None:
            if existing.database is database or not existing.database.closed:
                return
            self.remove_address(address)
        state = self._addresses[address] = _Address(database)
        self._nursery.start_soon(self._run_address, address, state)

    def remove_address(self, address: str) -> None:
        """Stop providing and searching for ``address`` now (its database was dropped)."""
        state = self._addresses.pop(address, None)
        if state is not None:
            state.scope.cancel()

    def _live(self) -> dict[str, _Address]:
        closed = [a for a, s in self._addresses.items() if s.database.closed]
        for address in closed:
            self.remove_address(address)
        return self._addresses

    def statistics(self) -> DiscoveryStatistics:
        live = self._live()
        return DiscoveryStatistics(
            provided=tuple(sorted(a for a, s in live.items() if s.provided)),
            providers={a: tuple(sorted(s.providers)) for a, s in live.items()},
            lookups=self._counts["lookups"],
            dials=self._counts["dials"],
            failed_dials=self._counts["failed"],
        )

    async def _run_address(self, address: str, state: _Address) -> None:
        with state.scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._provide_loop, address, state)
                nursery.start_soon(self._search_loop, state.database, state)
        if self._addresses.get(address) is state:  # ended by its handle closing
            del self._addresses[address]

    def _ended(self, state: _Address) -> bool:
        """True (and the address's loops cancelled) once its handle has closed."""
        if state.database.closed:
            state.scope.cancel()
            return True
        return False

    async def _provide_loop(self, address: str, state: _Address) -> None:
        config = self._config
        delay = config.retry_delay
        while not self._ended(state):
            ok = False
            try:
                with trio.fail_after(config.query_timeout):
                    ok = await self._transport.provide(address)
            except (NetworkError, trio.TooSlowError) as exc:
                logger.info("providing %s failed: %r", address, exc)
            state.provided = state.provided or ok
            if ok:
                delay = config.retry_delay
                await trio.sleep(config.provide_interval)
            else:
                await trio.sleep(delay)
                delay = min(delay * 2, config.provide_interval)

    async def _search_loop(self, database: Database, state: _Address) -> None:
        config = self._config
        delay = config.retry_delay
        while not self._ended(state):
            connected = self._transport.connected_peers()
            if len(state.providers & connected) >= config.target_peers:
                await trio.sleep(config.search_interval)
                continue
            found = await self._search(database, state)
            if found:
                delay = config.retry_delay
                await trio.sleep(config.search_interval)
            else:
                await trio.sleep(delay)
                delay = min(delay * 2, config.search_interval)

    async def _search(self, database: Database, state: _Address) -> bool:
        """One lookup; dials new providers. True if the DHT knew any provider."""
        config = self._config
        self._counts["lookups"] += 1
        try:
            with trio.fail_after(config.query_timeout):
                providers = await self._transport.find_providers(
                    database.address, count=config.max_providers
                )
        except (NetworkError, trio.TooSlowError) as exc:
            logger.info("looking up providers of %s failed: %r", database.address, exc)
            return False
        me = self._transport.peer_id
        for provider in providers:
            peer = provider.peer_id
            if peer == me:
                continue
            if database.closed:
                break
            state.providers.add(peer)
            if peer not in self._transport.connected_peers():
                await self._dial(peer, provider.dial_addresses())
            if peer in self._transport.connected_peers():
                self._replication.request_sync(database, peer)
        return bool(state.providers)

    async def _dial(self, peer: PeerId, addresses: list[str]) -> None:
        for address in addresses:
            self._counts["dials"] += 1
            try:
                with trio.fail_after(self._config.query_timeout):
                    await self._transport.connect(address)
                return
            except (OrbitstoreError, trio.TooSlowError) as exc:
                self._counts["failed"] += 1
                logger.info("cannot dial provider %s at %s: %r", peer, address, exc)
