"""Node configuration: one frozen object, read once at the top."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orbitstore.core.limits import DEFAULT_LIMITS, EntryLimits
from orbitstore.errors import InvalidValueError
from orbitstore.node.attachments import AttachmentsConfig
from orbitstore.query.limits import DEFAULT_QUERY_LIMITS, QueryLimits
from orbitstore.storage.sqlite import SqliteConfig
from orbitstore.sync.frames import DEFAULT_FRAME_LIMITS, FrameLimits
from orbitstore.sync.serve_limits import DEFAULT_SERVE_LIMITS, ServeLimits
from orbitstore.sync.session import SessionLimits

if TYPE_CHECKING:
    # Importing the libp2p config imports multiaddr (~0.8 s): only when a node uses it.
    from orbitstore.net.libp2p_config import Libp2pConfig


# More verify threads than this gain nothing measurable: each frame is split into one
# chunk per thread, and applying (one thread, the event loop's) becomes the bottleneck.
MAX_AUTO_VERIFY_THREADS = 4


def usable_cores() -> int:
    """How many cores this process may run on: ``os.process_cpu_count()`` (Python 3.13+:
    the CPU affinity, or ``PYTHON_CPU_COUNT``), else the affinity where the OS has one,
    else every core."""
    process_cpu_count = getattr(os, "process_cpu_count", None)
    if process_cpu_count is not None:
        return max(1, process_cpu_count() or 1)
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        try:
            return max(1, len(affinity(0)))
        except OSError:  # pragma: no cover - a platform that has it but refuses
            pass
    return max(1, os.cpu_count() or 1)


def default_verify_threads(cores: int | None = None) -> int:
    """The default ``NodeConfig.verify_threads``: one per usable core (``cores``, or
    :func:`usable_cores`), between 1 and :data:`MAX_AUTO_VERIFY_THREADS`."""
    return max(1, min(usable_cores() if cores is None else cores, MAX_AUTO_VERIFY_THREADS))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicationConfig:
    """How the node replicates over its transport (see docs/replication.md)."""

    # Announcements are coalesced: at most one per database per this many seconds, so a
    # burst of writes costs one gossip message (the libp2p notes advise 50-100 ms).
    announce_interval: float = 0.05
    # Entries small enough to ride along in an announcement (gossip drops > 1 MiB; small
    # messages keep the mesh fast), newest first, up to this many bytes in total.
    announce_inline_bytes: int = 16 * 1024
    # Announcements waiting to be published; more are dropped (gossip is only a hint).
    announce_queue: int = 64
    # Anti-entropy: a full sync with every connected peer this often, repairing lost
    # gossip. 30 s is what the libp2p notes recommend.
    anti_entropy_interval: float = 30.0
    # Try to reconnect to peers given to connect() this often while they are away.
    reconnect_interval: float = 5.0
    # A sync session that takes longer than this is abandoned (and retried later).
    session_timeout: float = 300.0
    # Waiting this long for a peer's next bytes (or for it to take ours) ends the session.
    idle_timeout: float = 30.0
    # Dialling and opening a stream.
    connect_timeout: float = 10.0
    # open() of an address whose manifest we lack asks the connected peers for it and
    # waits this long for a verified answer. An answer is one round trip; 10 s, like
    # connect_timeout, leaves room for a slow but live peer.
    manifest_timeout: float = 10.0
    frame_limits: FrameLimits = DEFAULT_FRAME_LIMITS
    session_limits: SessionLimits = field(default_factory=SessionLimits)
    # What we serve a peer, per session and per second (see ServeLimits for defaults).
    serve_limits: ServeLimits = DEFAULT_SERVE_LIMITS
    # A received frame of at least this many entries is verified on worker threads
    # (NodeConfig.verify_threads), so the event loop keeps reading and applying the
    # previous frame meanwhile; smaller ones are verified inline, where a thread hand-off
    # (~50-100 µs) would cost more than it saves. Tests on trio's virtual clock raise it
    # above their frame sizes: the clock jumps ahead while a worker thread runs.
    thread_verify_min_blocks: int = 64

    def __post_init__(self) -> None:
        if (
            isinstance(self.thread_verify_min_blocks, bool)
            or not isinstance(self.thread_verify_min_blocks, int)
            or self.thread_verify_min_blocks < 1
        ):
            raise InvalidValueError("replication thread_verify_min_blocks must be >= 1")
        for name in (
            "announce_interval",
            "anti_entropy_interval",
            "reconnect_interval",
            "session_timeout",
            "idle_timeout",
            "connect_timeout",
            "manifest_timeout",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise InvalidValueError(f"replication {name} must be a positive number")
        if self.announce_inline_bytes < 0 or self.announce_queue < 1:
            raise InvalidValueError("announce_inline_bytes >= 0 and announce_queue >= 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveryConfig:
    """How a node with the DHT on finds peers for its databases (see docs/network.md)."""

    # Provider records live 48 h in the DHT and py-libp2p republishes them every 22 h,
    # but only to the peers it knew at the time: providing again every hour puts the
    # record on peers that joined since.
    provide_interval: float = 3600.0
    # Look for more peers of each open database this often, while it has fewer than
    # ``target_peers`` connected peers.
    search_interval: float = 60.0
    # A DHT with no peers yet (bootstrap still dialling) stores and finds nothing: retry
    # after this long, doubling up to the intervals above.
    retry_delay: float = 2.0
    # Enough replicas to sync from; more connections only cost memory and heartbeats.
    target_peers: int = 8
    # Providers asked for per lookup (py-libp2p's default is 20).
    max_providers: int = 20
    # One DHT query (provide or find) that takes longer is abandoned and retried later.
    query_timeout: float = 30.0

    def __post_init__(self) -> None:
        for name in ("provide_interval", "search_interval", "retry_delay", "query_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InvalidValueError(f"discovery {name} must be a positive number")
        for name in ("target_peers", "max_providers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidValueError(f"discovery {name} must be a positive integer")


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    limits: EntryLimits = DEFAULT_LIMITS
    sqlite: SqliteConfig = field(default_factory=SqliteConfig)
    # Name of the key in the keystore that signs this node's writes.
    identity_name: str = "default"
    # Record the writer's wall clock in each entry (display only, never merged on).
    timestamps: bool = True
    # How many signature checks of a large received batch run in parallel (node/verify.py).
    # They run on worker processes, so they use other cores while the event loop decodes
    # and applies (a thread could not: it waits up to 5 ms for the GIL after every
    # signature while the loop is busy). The default is one per core this process may
    # run on (os.sched_getaffinity), at most MAX_AUTO_VERIFY_THREADS
    # (benchmarks/bench_receive.py and bench_replicate.py --threads measure 1 and 2).
    verify_threads: int = field(default_factory=default_verify_threads)
    # False: verify on threads in this process, never starting a worker process (they
    # are also the fallback when a worker cannot be started).
    verify_processes: bool = True
    # Bounds on SQL queries (rows, time, nesting, cache); see QueryLimits for defaults.
    query: QueryLimits = DEFAULT_QUERY_LIMITS
    # Used only when the node is opened with a transport.
    replication: ReplicationConfig = field(default_factory=ReplicationConfig)
    # The node's own libp2p transport: with a Libp2pConfig, open_node() starts one
    # (peer key in <node dir>/peer.key) and replicates over it. None: no network (or the
    # transport passed to open_node).
    network: Libp2pConfig | None = None
    # Used only when ``network`` turns the DHT on.
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    # Attachments: limits, the UnixFS layout, fetching (docs/attachments.md).
    attachments: AttachmentsConfig = field(default_factory=AttachmentsConfig)

    def __post_init__(self) -> None:
        threads = self.verify_threads
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise InvalidValueError("NodeConfig.verify_threads must be an integer >= 1")
        if not isinstance(self.verify_processes, bool):
            raise InvalidValueError("NodeConfig.verify_processes must be True or False")
        if self.network is not None:
            from orbitstore.net.libp2p_config import Libp2pConfig

            if not isinstance(self.network, Libp2pConfig):
                raise InvalidValueError("NodeConfig.network must be a Libp2pConfig or None")
