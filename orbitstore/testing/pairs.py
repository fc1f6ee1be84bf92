"""Two nodes that replicate, for tests: on the in-memory network or on real libp2p.

Most replication tests start the same way: two nodes, each with a transport, one of them
dialling the other. :func:`open_memory_pair` does that on a
:class:`~orbitstore.testing.network.MemoryNetwork` (deterministic under trio's
``autojump_clock``); :func:`open_libp2p_pair` does it with two real libp2p hosts on
127.0.0.1 in this process (the production wiring, ``NodeConfig(network=...)``)::

    async with open_memory_pair(identities=(ALICE, BOB), config=CONFIG) as pair:
        db = await pair.a.open("notes", type="keyvalue", write=["*"])
        await pair.connect()                        # b dials a
        replica = await pair.b.open(db.address, type="keyvalue")
        await replica.wait_synced()

Everything is closed when the block exits, nodes first, then their transports. For more
than two nodes, :func:`open_memory_nodes` opens one per named identity on a memory
network; :func:`open_replica` then connects a node to another by name, opens the
database there and waits until it is in sync, and :func:`wait_for_entry` waits on
replication events until a replica holds an entry::

    async with open_memory_nodes(net, {"alice": ALICE, "bob": BOB}) as (alice, bob):
        db = await alice.open("notes", type="keyvalue", write=["*"])
        replica = await open_replica(bob, db.address, "alice", KeyValue)

For nodes that come and go, open transports and nodes one by one as these helpers do.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import trio

from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.errors import UsageError
from orbitstore.net.libp2p_config import Libp2pConfig
from orbitstore.net.transport import Transport
from orbitstore.node.config import NodeConfig
from orbitstore.node.database import Database
from orbitstore.node.node import Node, open_node
from orbitstore.storage.base import NodeStore
from orbitstore.testing.network import ADDRESS_PREFIX, MemoryNetwork

#: Where the libp2p pair listens: the loopback interface, a port the OS picks.
LOOPBACK = "/ip4/127.0.0.1/tcp/0"

D = TypeVar("D", bound=Database)


@dataclass(frozen=True, slots=True)
class NodePair:
    """Two open nodes ``a`` and ``b``, each with its own transport. ``network`` is the
    in-memory network of a memory pair (None for libp2p)."""

    a: Node
    b: Node
    network: MemoryNetwork | None = None

    @property
    def nodes(self) -> tuple[Node, Node]:
        return self.a, self.b

    async def connect(self) -> None:
        """``b`` dials ``a`` (and replicates with it from then on)."""
        replication = self.b.replication
        assert replication is not None
        await replication.connect(dial_address(self.a))


def dial_address(node: Node) -> str:
    """The address another node dials to reach ``node``: ``mem/<name>`` on the memory
    network, its first listen address (with ``/p2p/<peer id>``) on libp2p."""
    if node.replication is None:
        raise UsageError("this node has no transport: there is no address to dial")
    transport = node.replication.transport
    address = transport.listen_addresses()[0]
    if address.startswith(ADDRESS_PREFIX) or "/p2p/" in address:
        return address
    return f"{address}/p2p/{transport.peer_id}"


def transport_of(node: Node) -> Transport:
    """The transport ``node`` replicates over (UsageError for a node without one)."""
    if node.replication is None:
        raise UsageError("this node has no transport")
    return node.replication.transport


def _identities(given: Sequence[Identity | None]) -> list[Identity]:
    if len(given) != 2:
        raise UsageError("a pair has two identities (None: a random one)")
    return [i if i is not None else Identity(os.urandom(32)) for i in given]


@asynccontextmanager
async def open_memory_pair(
    *,
    network: MemoryNetwork | None = None,
    names: tuple[str, str] = ("a", "b"),
    identities: Sequence[Identity | None] = (None, None),
    stores: Sequence[NodeStore | None] = (None, None),
    config: NodeConfig | None = None,
    connect: bool = False,
) -> AsyncIterator[NodePair]:
    """Two nodes on ``network`` (a new one with a fixed seed and small latency if None),
    with transports named ``names``. A node given a store (``stores``) uses it and leaves
    it open (reopen a node on it after a "crash"); the others keep everything in memory.
    With ``connect``, ``b`` has dialled ``a`` when the block starts."""
    net = network if network is not None else MemoryNetwork(rng=random.Random(1))
    ids = _identities(identities)
    async with AsyncExitStack() as stack:
        transports: list[Transport] = [
            await stack.enter_async_context(net.open_transport(name)) for name in names
        ]
        nodes = [
            await stack.enter_async_context(
                open_node(store=store, identity=identity, transport=transport, config=config)
            )
            for store, identity, transport in zip(stores, ids, transports, strict=True)
        ]
        pair = NodePair(nodes[0], nodes[1], net)
        if connect:
            await pair.connect()
        yield pair


@asynccontextmanager
async def open_libp2p_pair(
    *,
    paths: Sequence[str | Path | None] = (None, None),
    identities: Sequence[Identity | None] = (None, None),
    config: NodeConfig | None = None,
    connect: bool = True,
) -> AsyncIterator[NodePair]:
    """Two nodes with their own libp2p hosts on 127.0.0.1 (``config.network``, if any,
    with its listen addresses replaced by :data:`LOOPBACK`), in node directories
    ``paths`` (None: in memory). With ``connect`` (the default), ``b`` has dialled ``a``
    when the block starts."""
    base = config or NodeConfig()
    network = replace(base.network or Libp2pConfig(), listen_addresses=(LOOPBACK,))
    node_config = replace(base, network=network)
    ids = _identities(identities)
    async with AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(open_node(path, identity=identity, config=node_config))
            for path, identity in zip(paths, ids, strict=True)
        ]
        pair = NodePair(nodes[0], nodes[1])
        if connect:
            await pair.connect()
        yield pair


@asynccontextmanager
async def open_memory_nodes(
    network: MemoryNetwork,
    identities: Mapping[str, Identity | None],
    *,
    config: NodeConfig | None = None,
    paths: Mapping[str, str | Path] | None = None,
) -> AsyncIterator[list[Node]]:
    """One node per entry of ``identities``, each on its own transport of ``network``
    named by the key, in that order; a node named in ``paths`` keeps its data in that
    directory, the others in memory. A None identity is the directory's own (its
    keystore's) or, in memory, a random one. Nodes are not connected."""
    async with AsyncExitStack() as stack:
        nodes = []
        for name, identity in identities.items():
            transport = await stack.enter_async_context(network.open_transport(name))
            path = None if paths is None else paths.get(name)
            nodes.append(
                await stack.enter_async_context(
                    open_node(path, transport=transport, identity=identity, config=config)
                )
            )
        yield nodes


async def open_replica(
    node: Node, address: str, peer: str, cls: type[D], *, timeout: float = 10.0
) -> D:
    """``node`` dials the memory-network node named ``peer``, opens ``address`` (a
    database of class ``cls``) and waits until it holds what ``peer`` announced."""
    if node.replication is None:
        raise UsageError("this node has no transport: it cannot dial a peer")
    await node.replication.connect(ADDRESS_PREFIX + peer)
    db = await node.open(address, type=cls.type_name)
    if not isinstance(db, cls):
        raise UsageError(f"{address} opened as {type(db).__name__}, not {cls.__name__}")
    await db.wait_synced(peer=peer, timeout=timeout)
    return db


async def wait_for_entry(
    node: Node, db: Database, entry: Entry | None, *, timeout: float = 10.0
) -> None:
    """Wait (on ``node``'s replication progress events, at most ``timeout`` seconds)
    until ``db`` holds ``entry``."""
    if node.replication is None or entry is None:
        raise UsageError("wait_for_entry needs a node with a transport and an entry")
    with trio.fail_after(timeout):
        async with node.replication.subscribe_progress() as events:
            while not db.log.has(entry.cid):
                await events.receive()
