"""Building the py-libp2p host, and the small adapters around it.

See :mod:`orbitstore.net.libp2p_transport` for why the host is configured this way.
"""

from __future__ import annotations

import logging
import socket

import trio
from libp2p import create_yamux_muxer_option, new_host
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.network.config import ConnectionConfig
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from multiaddr import Multiaddr

from orbitstore.errors import InvalidValueError, NetworkError
from orbitstore.net._libp2p_conn import install_connection_guard
from orbitstore.net.libp2p_config import Libp2pConfig
from orbitstore.net.transport import PeerId

logger = logging.getLogger("orbitstore.net.libp2p")


class _ForwardToDebug(logging.Handler):
    """Re-log libp2p's records on our logger at DEBUG (they are noise at WARNING)."""

    def emit(self, record: logging.LogRecord) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s: %s", record.name, record.getMessage())


def quiet_libp2p_logging() -> None:
    lib = logging.getLogger("libp2p")
    if not any(isinstance(h, _ForwardToDebug) for h in lib.handlers):
        lib.addHandler(_ForwardToDebug())
    lib.propagate = False


def parse_peer_id(peer: PeerId) -> ID:
    """A libp2p ``ID`` from its base58 text; InvalidValueError if it is not one."""
    if not isinstance(peer, str) or not peer:
        raise InvalidValueError(f"not a peer id: {peer!r}")
    try:
        return ID.from_base58(peer)
    except Exception as exc:  # base58 and multihash errors of several kinds
        raise InvalidValueError(f"not a peer id: {peer!r}") from exc


def parse_peer_address(address: str) -> PeerInfo:
    """Peer id and address from a full multiaddr (``.../p2p/<peer id>``)."""
    if not isinstance(address, str):
        raise InvalidValueError(f"a peer address is a multiaddr string, got {address!r}")
    try:
        info = info_from_p2p_addr(Multiaddr(address))
    except Exception as exc:  # multiaddr and peer-id parse errors of several kinds
        raise InvalidValueError(
            f"{address!r} is not a dialable peer address (/ip4/.../tcp/.../p2p/<id>): {exc}"
        ) from exc
    return info


class PeerEvents(INotifee):
    """Turns the swarm's per-connection callbacks into per-peer events on a channel."""

    def __init__(self, send: trio.MemorySendChannel[tuple[bool, ID]]) -> None:
        self._send = send

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._post(True, conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._post(False, conn)

    def _post(self, up: bool, conn: INetConn) -> None:
        try:
            self._send.send_nowait((up, conn.muxed_conn.peer_id))
        except trio.WouldBlock:
            logger.warning("peer event lost: the peer handlers are far behind")
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the transport is shutting down; nobody listens any more

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        await trio.lowlevel.checkpoint()

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        await trio.lowlevel.checkpoint()

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        await trio.lowlevel.checkpoint()

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        await trio.lowlevel.checkpoint()


def build_host(config: Libp2pConfig, key_pair: KeyPair) -> IHost:
    """A py-libp2p host with Noise only, Yamux only and no dial stall."""
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    host = new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt=create_yamux_muxer_option(),
        connection_config=ConnectionConfig(max_connections_per_peer=1),
        enable_mDNS=config.mdns,
        announce_addrs=[Multiaddr(a) for a in config.announce_addresses] or None,
    )
    install_connection_guard(
        host,
        write_timeout=config.write_timeout,
        keepalive_interval=config.keepalive_interval,
        keepalive_timeout=config.keepalive_timeout,
    )
    network = host.get_network()
    if isinstance(network, Swarm):
        # The library's auto-connector dials up to 200 peers from the peerstore whenever
        # we have fewer than 50 connections, marking each failure in the negative dial
        # cache. orbitstore chooses its peers (bootstrap, relays, mDNS, DHT providers)
        # and redials them with its own back-off.
        network.auto_connector.maybe_connect = _no_auto_connect  # type: ignore[method-assign]
    return host


async def _no_auto_connect() -> None:
    await trio.lowlevel.checkpoint()


def check_ports_free(config: Libp2pConfig) -> None:
    """Refuse fixed TCP ports that another socket already listens on.

    py-libp2p listens with SO_REUSEPORT (for hole punching), so a second node on the same
    port would start happily and the kernel would hand each incoming connection to one of
    the two at random. A plain bind (SO_REUSEADDR only, which tolerates TIME_WAIT) fails
    with EADDRINUSE while another socket listens there."""
    for text in config.listen_addresses:
        addr = Multiaddr(text)
        names = [p.name for p in addr.protocols()]
        if "tcp" not in names or names[0] not in ("ip4", "ip6"):
            continue
        port = int(addr.value_for_protocol("tcp"))
        if port == 0:
            continue
        family = socket.AF_INET if names[0] == "ip4" else socket.AF_INET6
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((str(addr.value_for_protocol(names[0])), port))
            except OSError as exc:
                raise NetworkError(f"cannot listen on {text}: {exc.strerror}") from exc


def is_shutdown_race(exc: BaseException) -> bool:
    """py-libp2p handing a task to one of its nurseries while that nursery is closing: a
    message that arrived as the host stopped. Nothing is lost that was not being dropped."""
    return isinstance(exc, RuntimeError) and str(exc) == "Nursery is closed to new arrivals"


def without_shutdown_races(
    group: BaseExceptionGroup[BaseException],
) -> BaseExceptionGroup[BaseException] | None:
    """``group`` less its shutdown races (None when nothing else is left)."""
    _races, rest = group.split(is_shutdown_race)
    return rest


def single_error(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one non-cancellation leaf of an exception group, or None if there is not
    exactly one (py-libp2p nests every service in its own nursery)."""
    errors: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            errors.append(exc)
    if len(errors) != 1 or isinstance(errors[0], trio.Cancelled):
        return None
    return errors[0]
