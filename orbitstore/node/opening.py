"""What :func:`~orbitstore.node.node.open_node` opens around a node: its store and
identity (in a node directory, or in memory), its device state, and its network — the
transport (the node's own libp2p host, or one passed in), replication, DHT discovery and
Bitswap serving, all running in one nursery for as long as the node is open.

Imported by every node, but the heavy parts (py-libp2p costs ~1 s and ~70 MB) only when
a node really has a network.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from orbitstore.core.identity import Identity
from orbitstore.errors import UsageError
from orbitstore.net.transport import Transport
from orbitstore.node.config import NodeConfig
from orbitstore.node.devices import DeviceState
from orbitstore.node.privacy import PublicBlocks
from orbitstore.storage.base import NodeStore
from orbitstore.storage.keystore import Keystore
from orbitstore.storage.memory import MemoryStore
from orbitstore.storage.sqlite import SqliteStore

if TYPE_CHECKING:
    from orbitstore.net.libp2p_transport import Libp2pTransport
    from orbitstore.node.database import Database
    from orbitstore.node.discovery import ProviderDiscovery
    from orbitstore.node.replication import Replication

STORE_FILE = "orbitstore.sqlite"
KEYSTORE_FILE = "keystore.json"
PEER_KEY_FILE = "peer.key"


def store_and_identity(
    path: str | Path | None, config: NodeConfig, identity: Identity | None, store: NodeStore | None
) -> tuple[NodeStore, Identity]:
    """The store and identity of a node opened on ``store`` (both given), in memory
    (``path`` None), or in the directory ``path`` (keystore and SQLite file there)."""
    if store is not None:
        if path is not None:
            raise UsageError("pass either path or store, not both")
        if identity is None:
            raise UsageError("a node opened on a store needs its identity")
        return store, identity
    if path is None:
        return MemoryStore(), identity if identity is not None else Identity(os.urandom(32))
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    if identity is None:
        identity = Keystore(root / KEYSTORE_FILE).get_or_create(config.identity_name)
    return SqliteStore(root / STORE_FILE, config.sqlite), identity


def device_state(path: str | Path | None, identity: Identity) -> DeviceState:
    if path is None:
        return DeviceState(device=identity)
    root = Path(path)
    return DeviceState.load(identity, root, Keystore(root / KEYSTORE_FILE))


@dataclass(frozen=True, slots=True)
class Network:
    """What a networked node runs: its replication over ``transport``, and, when the node
    started its own libp2p host (``own``), DHT discovery if configured."""

    transport: Transport
    replication: Replication
    discovery: ProviderDiscovery | None
    own: Libp2pTransport | None

    @property
    def expects_peers(self) -> bool:
        """Whether the node dials peers by itself (bootstrap, mDNS, DHT): it may open an
        address before the first connection is up, and waits for one then."""
        own = self.own
        return own is not None and bool(
            own.config.bootstrap_peers or own.config.mdns or own.config.dht
        )

    @property
    def has_bootstrap(self) -> bool:
        """Whether the node was configured with bootstrap peers (``wait_synced`` waits for
        one of them)."""
        return self.own is not None and bool(self.own.config.bootstrap_peers)


@asynccontextmanager
async def open_network(
    *,
    path: str | Path | None,
    config: NodeConfig,
    identity: Identity,
    transport: Transport | None,
    store: NodeStore,
) -> AsyncIterator[Network]:
    """Start the network of a node (``transport``, or its own host from
    ``config.network``); everything stops when the block exits."""
    # Imported here: a node without a network (most commands) never needs them.
    from orbitstore.node.discovery import ProviderDiscovery
    from orbitstore.node.replication import Replication

    async with AsyncExitStack() as stack:
        discovery: ProviderDiscovery | None = None
        own: Libp2pTransport | None = None
        if transport is None:
            assert config.network is not None
            # Imported here: py-libp2p costs ~1 s and ~70 MB, only for networked nodes.
            from orbitstore.net.libp2p_transport import open_libp2p_transport

            key_path = None if path is None else Path(path) / PEER_KEY_FILE
            own = await stack.enter_async_context(
                open_libp2p_transport(config.network, key_path=key_path)
            )
            transport = own
        replication = Replication(
            transport=transport, config=config.replication, limits=config.limits, identity=identity
        )
        nursery = await stack.enter_async_context(trio.open_nursery())
        await nursery.start(replication.run)
        if own is not None and own.config.dht:
            discovery = ProviderDiscovery(
                transport=own, replication=replication, config=config.discovery
            )
            await nursery.start(discovery.run)
        if own is not None and own.config.bitswap.enabled:
            # Read-only: IPFS peers fetch blocks by CID; never a private database's.
            own.serve_blocks(PublicBlocks(store.blocks))
        try:
            yield Network(transport, replication, discovery, own)
        finally:
            nursery.cancel_scope.cancel()


class SyncWaiter:
    """``wait_synced`` for the databases of a node with a network. A node configured
    with bootstrap peers waits for one of them: right after start it is connected to
    nobody yet, and "in sync with nobody" is not sync."""

    def __init__(self, network: Network) -> None:
        self._replication = network.replication
        self._has_bootstrap = network.has_bootstrap

    async def wait_synced(self, database: Database, *, peer: str | None, timeout: float) -> None:
        min_peers = 1 if self._has_bootstrap else 0
        await self._replication.wait_synced(
            database, peer=peer, timeout=timeout, min_peers=min_peers
        )
