"""Cancel-safe writes and dead-connection detection for py-libp2p's Yamux connections.

How it works
------------

A libp2p connection is one TCP socket carrying Noise messages carrying Yamux frames.
py-libp2p 0.8.1 writes a Yamux frame (up to 64 KiB of payload) as two Noise messages,
each encrypted (the nonce advances) and then sent with one or more socket writes. If the
task writing is cancelled between those awaits, which ``trio.fail_after`` around a
``send_all`` or a cancelled nursery does, the peer receives half a frame: its Yamux
reader takes the next frame's bytes as the rest of this one, every later header is
garbage, and the library logs the errors and carries on reading. The connection stays in
the swarm's table (so ``connected_peers()`` lists the peer) while no stream on it works.

:func:`install_connection_guard` fixes this at the mechanism, for every frame any code
writes on the host's connections (our streams, window updates, FIN and RST, pings,
gossip, identify, Bitswap, the DHT):

* **A frame write is never cut.** :meth:`GuardedYamux._write_frame` writes each frame
  under a *shielded* cancel scope with its own deadline (``Libp2pConfig.write_timeout``).
  A cancellation that arrives meanwhile takes effect right after the frame is out.
  Waiting for the connection's write lock (other streams' frames ahead of ours) stays
  cancellable and does not count against the deadline: nothing is written yet.
* **A frame that cannot be written in time kills the connection.** When the deadline
  passes the frame may be half out, so the connection is closed (socket, streams, swarm
  table, ``disconnected`` callbacks) and the write raises; a redial starts clean.
* **Keep-alive.** Every ``keepalive_interval`` seconds the connection sends a Yamux ping;
  if the pong does not come back within ``keepalive_timeout``, the connection is dead
  (a peer that froze, a network that black-holes packets, a muxer that lost its framing)
  and is closed the same way. This replaces the library's own RTT ping loop, which
  measured the round trip but never acted on a missing pong.

The connection's class is swapped for :class:`GuardedYamux` right after the muxer is
negotiated and before the swarm starts it, by wrapping the host's
``MuxerMultistream.new_conn`` (py-libp2p builds ``Yamux`` by name there, so passing a
subclass in ``muxer_opt`` is ignored). Nothing global is patched: plain hosts in the same
process are unaffected. A connection to a peer that offers only Mplex (the library's
fallback muxer) is not guarded.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.abc import IHost, IMuxedConn, ISecureConn
from libp2p.io.exceptions import IOException
from libp2p.network.connection.exceptions import RawConnError
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.stream_muxer.yamux.yamux import FLAG_SYN, TYPE_PING, YAMUX_HEADER_FORMAT, Yamux

logger = logging.getLogger("orbitstore.net.libp2p")

# Closing a dead connection (socket, streams, callbacks) must not hang either.
_CLOSE_TIMEOUT = 5.0

# What a ping write ends in when the connection is already going away.
_WRITE_FAILURES = (IOException, OSError, trio.ClosedResourceError, trio.BrokenResourceError)


class GuardedYamux(Yamux):
    """A Yamux connection whose frame writes cannot be cut and whose death is noticed.

    Instances are made by changing the class of a freshly negotiated ``Yamux`` (see
    :func:`install_connection_guard`); :meth:`configure` sets the bounds."""

    _orbit_write_timeout: float
    _orbit_keepalive_interval: float
    _orbit_keepalive_timeout: float
    _orbit_dead: bool

    def configure(
        self, *, write_timeout: float, keepalive_interval: float, keepalive_timeout: float
    ) -> None:
        self._orbit_write_timeout = write_timeout
        self._orbit_keepalive_interval = keepalive_interval
        self._orbit_keepalive_timeout = keepalive_timeout
        self._orbit_dead = False

    @property
    def is_dead(self) -> bool:
        """True once a write timed out or a ping went unanswered (the connection is
        being, or has been, closed)."""
        return self._orbit_dead

    async def _write_frame(self, data: bytes) -> None:
        """Write one whole frame, or close the connection (see the module docstring)."""
        # Waiting for the frames of other streams is cancellable: nothing is written yet.
        async with self._write_lock:
            if self._orbit_dead:
                raise RawConnError(f"connection to {self.peer_id} is dead")
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self._orbit_write_timeout
                await self.secured_conn.write(data)
        if scope.cancelled_caught:
            self.declare_dead(f"a frame write did not finish in {self._orbit_write_timeout} s")
            raise RawConnError(f"write to {self.peer_id} timed out; connection closed")
        # A cancellation requested while the frame was written is delivered here.
        await trio.lowlevel.checkpoint()

    async def _measure_rtt_loop(self) -> None:
        """Keep-alive: ping every interval; no pong within the timeout -> dead."""
        while not self.event_shutting_down.is_set():
            with trio.move_on_after(self._orbit_keepalive_interval):
                await self.event_shutting_down.wait()
            if self.event_shutting_down.is_set() or self._orbit_dead:
                return
            self._ping_id = (self._ping_id + 1) & 0xFFFFFFFF
            self._ping_event = trio.Event()
            header = struct.pack(YAMUX_HEADER_FORMAT, 0, TYPE_PING, FLAG_SYN, 0, self._ping_id)
            try:
                await self._write_frame(header)
            except _WRITE_FAILURES:
                return  # the connection is going away (and _write_frame said why)
            self._ping_sent_time = trio.current_time()
            with trio.move_on_after(self._orbit_keepalive_timeout) as waited:
                await self._ping_event.wait()
            if waited.cancelled_caught and not self.event_shutting_down.is_set():
                self.declare_dead(f"no pong within {self._orbit_keepalive_timeout} s")
                return

    def declare_dead(self, why: str) -> None:
        """Close this connection in the background: its socket, its streams, its entry
        in the swarm (whose ``disconnected`` notifications follow)."""
        if self._orbit_dead:
            return
        self._orbit_dead = True
        logger.info("libp2p connection to %s is dead (%s); closing it", self.peer_id, why)
        nursery = self._nursery
        if nursery is None:
            return
        # RuntimeError: the muxer's nursery has exited, so the connection is closed.
        with contextlib.suppress(RuntimeError):
            nursery.start_soon(self._close_dead)

    async def _close_dead(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT):
            # The library's own error path: flags, streams, socket, on_close. The swarm
            # connection then sees accept_stream() fail and leaves the swarm's table.
            await self._cleanup_on_error()
            swarm = getattr(self, "swarm", None)
            if isinstance(swarm, Swarm):
                await close_swarm_connections(swarm, self.peer_id, only=self)


def is_broken(muxed: object) -> bool:
    """Whether a swarm connection's muxer can no longer carry streams: declared dead by
    the guard, or shutting down / closed while the swarm still lists it."""
    if isinstance(muxed, GuardedYamux) and muxed.is_dead:
        return True
    if isinstance(muxed, Yamux):
        return muxed.event_shutting_down.is_set() or muxed.is_closed
    return False


async def close_broken_connections(swarm: Swarm, peer: ID) -> bool:
    """Close the swarm's connections to ``peer`` whose muxer :func:`is_broken`, so the
    peer leaves the table and its ``disconnected`` notification fires; True if any."""
    found = False
    for conn in list(swarm.get_connections_map().get(peer, [])):
        if is_broken(getattr(conn, "muxed_conn", None)):
            found = True
            with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT):
                await conn.close()
    return found


async def close_swarm_connections(swarm: Swarm, peer: ID, *, only: IMuxedConn | None) -> None:
    """Close the swarm's connections to ``peer`` (just the one over ``only`` if given)."""
    for conn in list(swarm.get_connections_map().get(peer, [])):
        muxed = getattr(conn, "muxed_conn", None)
        if only is not None and muxed is not only:
            continue
        await conn.close()


def install_connection_guard(
    host: IHost, *, write_timeout: float, keepalive_interval: float, keepalive_timeout: float
) -> None:
    """Make every connection ``host`` negotiates from now on a :class:`GuardedYamux`."""
    network = host.get_network()
    if not isinstance(network, Swarm):
        return
    muxers = network.upgrader.muxer_multistream
    original: Callable[[ISecureConn, ID], Awaitable[IMuxedConn]] = muxers.new_conn

    async def new_conn(conn: ISecureConn, peer_id: ID) -> IMuxedConn:
        muxed = await original(conn, peer_id)
        if type(muxed) is Yamux:
            guarded: Any = muxed
            guarded.__class__ = GuardedYamux
            guarded.configure(
                write_timeout=write_timeout,
                keepalive_interval=keepalive_interval,
                keepalive_timeout=keepalive_timeout,
            )
        return muxed

    muxers.new_conn = new_conn  # type: ignore[method-assign]
