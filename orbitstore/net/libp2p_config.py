"""Configuration of the py-libp2p transport: one frozen object, every default explained.

The defaults make a *private* node: it listens on loopback only, dials nobody, runs no
discovery and relays for nobody. The CLI node turns on what a reachable node needs
(see ``docs/network.md``). Every field is validated when the object is built, so a
transport never starts half-configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from multiaddr import Multiaddr

from orbitstore.errors import InvalidValueError

SYNC_PROTOCOL_ID = "/orbitstore/sync/1.0.0"
"""The libp2p protocol id of orbitstore's sync streams."""

PROTOCOL_IDS = {"pair": "/orbitstore/pair/1.0.0"}
"""The libp2p protocol ids of the other protocols (see net/transport.PROTOCOLS)."""

LIBP2P_MAX_RPC_SIZE = 1 << 20
"""py-libp2p's largest pubsub RPC (1 MiB); bigger messages vanish without an error."""


def _check_multiaddrs(name: str, values: tuple[str, ...], *, need_peer_id: bool) -> None:
    if isinstance(values, str) or not isinstance(values, tuple):
        raise InvalidValueError(f"{name} must be a tuple of multiaddr strings, got {values!r}")
    for value in values:
        if not isinstance(value, str):
            raise InvalidValueError(f"{name}: {value!r} is not a string")
        try:
            addr = Multiaddr(value)
        except Exception as exc:  # multiaddr raises several unrelated types
            raise InvalidValueError(f"{name}: {value!r} is not a multiaddr: {exc}") from exc
        if need_peer_id and "/p2p/" not in str(addr):
            raise InvalidValueError(f"{name}: {value!r} has no /p2p/<peer id> part")


def _check_positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise InvalidValueError(f"{owner}.{name} must be a positive number, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class GossipConfig:
    """GossipSub settings. The library's defaults drop almost every message of a
    database workload (see the py-libp2p field notes); these do not."""

    # go-libp2p's value. py-libp2p defaults to 120 s, which leaves a new peer out of the
    # mesh (and its announcements undelivered) for up to two minutes.
    heartbeat_interval: int = 1
    # The GossipSub paper's D/D_lo/D_hi; a database has few replicas, so these are rarely
    # reached, and all peers end up in the mesh.
    degree: int = 6
    degree_low: int = 4
    degree_high: int = 12
    # Announcements carry heads (a few CIDs, ~100 B) and maybe small entries; bulk data
    # goes over streams. Bigger messages are refused by our validator on every hop and by
    # publish() locally. Must stay below libp2p's silent 1 MiB cut-off.
    max_message_size: int = 256 * 1024
    # py-libp2p's per-peer outbound queue holds 32 RPCs and drops the rest silently; we
    # raise it and never let it fill past half (publish() waits: back-pressure).
    peer_queue_size: int = 256
    # publish() hands messages to one publisher task through a channel this big; when it
    # is full, publish() blocks (back-pressure instead of silent loss).
    publish_buffer: int = 128
    # Received messages wait here for the topic's handler. The library's own channel
    # holds 32; a dedicated task moves them here at once. Overflow is counted and logged.
    receive_buffer: int = 1024
    # py-libp2p ignores a peer's subscriptions beyond 100 topics; we use one topic per
    # database, so a node replicating many databases needs more.
    max_topics_per_peer: int = 10_000
    # How long a message id is remembered to drop duplicates. Ids are content addressed
    # (sha-256 of the payload), so the same announcement from two replicas is delivered
    # once within this window.
    seen_ttl: int = 120

    def __post_init__(self) -> None:
        _check_positive(
            "GossipConfig",
            heartbeat_interval=self.heartbeat_interval,
            degree=self.degree,
            degree_low=self.degree_low,
            degree_high=self.degree_high,
            max_message_size=self.max_message_size,
            peer_queue_size=self.peer_queue_size,
            publish_buffer=self.publish_buffer,
            receive_buffer=self.receive_buffer,
            max_topics_per_peer=self.max_topics_per_peer,
            seen_ttl=self.seen_ttl,
        )
        if not self.degree_low <= self.degree <= self.degree_high:
            raise InvalidValueError("GossipConfig: need degree_low <= degree <= degree_high")
        if self.max_message_size > LIBP2P_MAX_RPC_SIZE - 4096:
            raise InvalidValueError(
                f"GossipConfig.max_message_size must leave room for the RPC envelope"
                f" below libp2p's {LIBP2P_MAX_RPC_SIZE} byte limit"
            )
        if self.peer_queue_size < 4:
            raise InvalidValueError("GossipConfig.peer_queue_size must be at least 4")


@dataclass(frozen=True, kw_only=True)
class RelayConfig:
    """Circuit relay v2: reach nodes that cannot be dialled directly (NAT, firewall)."""

    # Serve as a relay (hop) for others. Off: relaying costs bandwidth and CPU, and only
    # a publicly reachable node should offer it.
    hop: bool = False
    # Accept relayed connections and make reservations (the node behind a NAT). Off by
    # default: a node that is directly reachable needs neither.
    client: bool = False
    # Relays (full multiaddrs with /p2p/<id>) to connect to and reserve a slot at when
    # ``client`` is on. Our address through relay R is then <R addr>/p2p-circuit/p2p/<us>.
    relays: tuple[str, ...] = ()
    # Limits of a hop relay. One hour and 100 MiB per circuit are enough for a catch-up
    # sync of a large database; sync resumes where it stopped if a circuit is cut.
    max_reservations: int = 16
    max_circuits: int = 32
    circuit_duration: int = 3600
    circuit_data: int = 100 * 1024 * 1024

    def __post_init__(self) -> None:
        _check_multiaddrs("RelayConfig.relays", self.relays, need_peer_id=True)
        _check_positive(
            "RelayConfig",
            max_reservations=self.max_reservations,
            max_circuits=self.max_circuits,
            circuit_duration=self.circuit_duration,
            circuit_data=self.circuit_data,
        )
        if self.relays and not self.client:
            raise InvalidValueError("RelayConfig.relays needs client=True")


@dataclass(frozen=True, kw_only=True)
class BitswapConfig:
    """Serving our blocks read-only to IPFS peers over Bitswap (see ``docs/network.md``).

    Every limit is per peer unless it says otherwise, so one peer cannot make the node
    do unbounded work. Nothing a peer sends is ever stored."""

    # Off: the node then speaks no IPFS protocol. On, any peer that can connect can read
    # every block we hold by its CID (the data is signed, not secret; encrypted databases
    # stay sealed). The node attaches its block store with Libp2pTransport.serve_blocks().
    enabled: bool = False
    # Wants looked at in one message; the rest of a longer want-list is ignored (the peer
    # asks again). kubo sends a few hundred at most; each one costs a block-store lookup.
    max_wants_per_message: int = 256
    # Sustained wants (lookups) per second per peer, in a token bucket that holds
    # max_wants_per_message. Wants over the rate are ignored, not answered DONT_HAVE:
    # the peer asks again later (py-libp2p after ~1 s, kubo within 30 s).
    max_wants_per_second: float = 1000.0
    # Block bytes queued for one peer and not yet written. A want that would go over it
    # is skipped (asked again later). 4 MiB is 8 of the largest blocks IPFS allows.
    max_bytes_in_flight_per_peer: int = 4 * 1024 * 1024
    # A want-list message is ~45 bytes per want; we never want blocks, so a longer
    # message is a peer pushing data we did not ask for: the stream is reset.
    max_message_size: int = 256 * 1024
    # Concurrent inbound Bitswap streams, in all and per peer; more are reset at once.
    max_streams: int = 64
    max_streams_per_peer: int = 4
    # A stream with no message for this long is reset (its slot freed). Reset, not
    # closed: py-libp2p keeps writing want-lists to a half-closed stream, but reopens a
    # reset one.
    stream_idle_timeout: float = 60.0
    # Writing one reply: a peer that does not read loses its stream, not our task.
    send_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise InvalidValueError("BitswapConfig.enabled must be a bool")
        for name in (
            "max_wants_per_message",
            "max_bytes_in_flight_per_peer",
            "max_message_size",
            "max_streams",
            "max_streams_per_peer",
        ):
            if not isinstance(getattr(self, name), int):
                raise InvalidValueError(f"BitswapConfig.{name} must be an int")
        _check_positive(
            "BitswapConfig",
            max_wants_per_message=self.max_wants_per_message,
            max_wants_per_second=self.max_wants_per_second,
            max_bytes_in_flight_per_peer=self.max_bytes_in_flight_per_peer,
            max_message_size=self.max_message_size,
            max_streams=self.max_streams,
            max_streams_per_peer=self.max_streams_per_peer,
            stream_idle_timeout=self.stream_idle_timeout,
            send_timeout=self.send_timeout,
        )
        if self.max_message_size < 1024:
            raise InvalidValueError("BitswapConfig.max_message_size must be at least 1 KiB")


@dataclass(frozen=True, kw_only=True)
class Libp2pConfig:
    """Everything the libp2p transport needs to know; see ``docs/network.md``."""

    # Loopback and an OS-chosen port: safe for tests and single-machine use. A node
    # others should reach listens on /ip4/0.0.0.0/tcp/<fixed port>.
    listen_addresses: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)
    # Addresses to advertise instead of the listen addresses (a public IP or DNS name in
    # front of a NAT or a container). Empty: advertise what we listen on.
    announce_addresses: tuple[str, ...] = ()
    # Peers (full multiaddrs with /p2p/<id>) dialled at start and kept connected, with
    # back-off, for as long as the transport runs.
    bootstrap_peers: tuple[str, ...] = ()
    # LAN discovery by multicast DNS. Off: it multicasts on *every* interface (py-libp2p
    # cannot restrict it) and starts threads; the CLI node turns it on.
    mdns: bool = False
    # Kademlia DHT (provide/find_providers for database addresses). Off: it is only useful
    # with bootstrap peers that run it too, and it costs a little traffic.
    dht: bool = False
    # Serve DHT queries from others (server) or only ask (client). A node behind a NAT
    # should be a client: others cannot reach it to query it.
    dht_server: bool = True
    relay: RelayConfig = field(default_factory=RelayConfig)
    gossip: GossipConfig = field(default_factory=GossipConfig)
    bitswap: BitswapConfig = field(default_factory=BitswapConfig)
    # A dial on a LAN takes ~10 ms; 10 s leaves room for a relay, a slow WAN peer and
    # the Noise handshake on a loaded machine, yet fails a dead peer in bounded time.
    connect_timeout: float = 10.0
    # Negotiating the sync protocol on a new stream takes a few ms; 10 s for the same
    # reasons as above.
    stream_open_timeout: float = 10.0
    # send_all() splits writes into frames this big. Each write is a Yamux frame, a Noise
    # encryption and a syscall: 4 KiB writes run at 20 MB/s, 64 KiB and more at 80-130
    # MB/s on loopback. Larger frames mostly add latency for other streams.
    write_chunk_size: int = 256 * 1024
    # Reconnect to bootstrap and relay peers after they drop: first retry after this many
    # seconds, doubling up to the maximum. The maximum bounds how stale a partitioned
    # replica can become once the network heals.
    reconnect_initial_delay: float = 0.5
    reconnect_max_delay: float = 30.0
    # Writing one Yamux frame (at most 64 KiB) to the socket, not counting the wait for
    # other streams' frames ahead of it. Frame writes are never cut by a cancellation
    # (a cut frame corrupts the whole connection); one that cannot finish in this time
    # (a link slower than ~6 KB/s, a peer that stopped reading its socket) means the
    # peer or the network is stuck, and the connection is closed.
    write_timeout: float = 10.0
    # Keep-alive: a Yamux ping every keepalive_interval seconds; a connection whose pong
    # does not come back within keepalive_timeout is dead and closed (its peer leaves
    # connected_peers(), the disconnected handler fires, reconnect loops redial). A dead
    # connection is noticed within interval + timeout (30 s by default).
    keepalive_interval: float = 10.0
    keepalive_timeout: float = 20.0

    def __post_init__(self) -> None:
        _check_multiaddrs("listen_addresses", self.listen_addresses, need_peer_id=False)
        if not self.listen_addresses:
            raise InvalidValueError("listen_addresses must not be empty")
        _check_multiaddrs("announce_addresses", self.announce_addresses, need_peer_id=False)
        _check_multiaddrs("bootstrap_peers", self.bootstrap_peers, need_peer_id=True)
        for name in ("mdns", "dht", "dht_server"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidValueError(f"Libp2pConfig.{name} must be a bool")
        if not isinstance(self.relay, RelayConfig):
            raise InvalidValueError("Libp2pConfig.relay must be a RelayConfig")
        if not isinstance(self.gossip, GossipConfig):
            raise InvalidValueError("Libp2pConfig.gossip must be a GossipConfig")
        if not isinstance(self.bitswap, BitswapConfig):
            raise InvalidValueError("Libp2pConfig.bitswap must be a BitswapConfig")
        _check_positive(
            "Libp2pConfig",
            connect_timeout=self.connect_timeout,
            stream_open_timeout=self.stream_open_timeout,
            write_chunk_size=self.write_chunk_size,
            reconnect_initial_delay=self.reconnect_initial_delay,
            reconnect_max_delay=self.reconnect_max_delay,
            write_timeout=self.write_timeout,
            keepalive_interval=self.keepalive_interval,
            keepalive_timeout=self.keepalive_timeout,
        )
        if self.write_chunk_size < 64 * 1024:
            raise InvalidValueError("Libp2pConfig.write_chunk_size must be at least 64 KiB")
        if self.reconnect_max_delay < self.reconnect_initial_delay:
            raise InvalidValueError("reconnect_max_delay must be >= reconnect_initial_delay")
