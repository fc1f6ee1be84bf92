"""The transport interface the node's replication service runs on.

Two implementations: :mod:`orbitstore.net.libp2p_transport` (py-libp2p: TCP, Noise,
Yamux, GossipSub) and :mod:`orbitstore.testing.network` (in-memory, with scripted
latency, loss and partitions, for deterministic tests under trio's virtual clock).

The replication service (in ``node/``) only ever sees these protocols, so the same code
is exercised over memory in the simulation tests and over libp2p in the integration
tests. Byte streams are reliable and ordered while they last; gossip is best effort (a
hint, never the only path).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from orbitstore.core.cid import Cid

PeerId = str
"""A transport-level peer id (for libp2p: the base58 peer id string)."""


class Stream(Protocol):
    """A reliable, ordered, bidirectional byte stream to one peer."""

    @property
    def remote_peer(self) -> PeerId: ...

    async def send_all(self, data: bytes) -> None:
        """Write all of ``data``. Raises orbitstore.errors.NetworkError if the stream broke.
        If cancelled, the stream is reset (the peer's reads raise NetworkError, never a
        clean EOF after part of the data); the connection and other streams carry on."""
        ...

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        """Some bytes, at most ``max_bytes``; ``b""`` at end of stream. Raises
        NetworkError if the stream broke (a reset is not an EOF). Cancelling it loses
        nothing: the next call returns the bytes in order."""
        ...

    async def close(self) -> None:
        """Close our side; idempotent."""
        ...


class BlockSource(Protocol):
    """Read-only access to blocks by CID: what Bitswap serves from. The node's
    ``BlockStore`` is one; ``net`` never sees anything that could write."""

    def get(self, cid: Cid) -> bytes | None:
        """The block's bytes, or None if we do not hold it."""
        ...


@dataclass(frozen=True, kw_only=True)
class FetchOptions:
    """How long a block fetch waits for peers, and what it takes from them."""

    # A peer that says nothing for this long is given up for this fetch.
    peer_timeout: float = 10.0
    # A peer that says nothing for this long is asked again for what is still missing
    # (servers skip wants over their rate or budget instead of queueing them).
    resend_interval: float = 1.0
    # Larger blocks are dropped unread (2 MiB: kubo's largest block).
    max_block_size: int = 2 * 1024 * 1024


@runtime_checkable
class BlockFetcher(Protocol):
    """Asks peers for blocks by CID (libp2p: over Bitswap). What attachments are
    fetched with; every block returned hashes to its CID."""

    async def fetch_blocks(
        self,
        cids: Sequence[Cid],
        *,
        peers: Iterable[PeerId] | None = None,
        options: FetchOptions | None = None,
    ) -> dict[Cid, bytes]:
        """The blocks of ``cids`` that ``peers`` (default: all connected) gave; those
        that nobody gave are missing from the result."""
        ...


StreamHandler = Callable[[Stream], Awaitable[None]]
GossipHandler = Callable[[PeerId, bytes], Awaitable[None]]
PeerHandler = Callable[[PeerId], Awaitable[None]]
GossipValidator = Callable[[PeerId, bytes], bool]
"""Decides, synchronously, whether a gossip message (from its origin peer) is valid.

A message it refuses (returns False, or raises) is neither delivered to the topic's
handler nor forwarded to other peers."""


class Transport(Protocol):
    """One node's presence on a network."""

    @property
    def peer_id(self) -> PeerId: ...

    def listen_addresses(self) -> list[str]:
        """Addresses other nodes can dial (multiaddrs for libp2p)."""
        ...

    async def connect(self, address: str) -> PeerId:
        """Dial ``address``; returns the peer id. Raises PeerUnavailableError."""
        ...

    def connected_peers(self) -> set[PeerId]: ...

    async def open_stream(self, peer: PeerId) -> Stream:
        """A new stream to ``peer`` speaking the sync protocol."""
        ...

    def set_stream_handler(self, handler: StreamHandler) -> None:
        """Called (in its own task) for every inbound sync stream."""
        ...

    def set_peer_handlers(self, *, connected: PeerHandler, disconnected: PeerHandler) -> None:
        """Called when a peer connects or disconnects."""
        ...

    async def subscribe(
        self, topic: str, handler: GossipHandler, *, validator: GossipValidator | None = None
    ) -> None:
        """Receive gossip on ``topic`` (never our own messages). With ``validator``,
        every message is validated before it is delivered or forwarded."""
        ...

    async def unsubscribe(self, topic: str) -> None: ...

    async def publish(self, topic: str, data: bytes) -> None:
        """Best-effort broadcast to subscribers of ``topic``."""
        ...
