"""A libp2p stream behind orbitstore's :class:`~orbitstore.net.transport.Stream`.

Error mapping (libp2p 0.8.1 raises subclasses of ``StreamError`` for everything):

* ``StreamEOF`` on read → ``b""`` (end of stream), unless the Yamux stream recorded a
  reset (py-libp2p reports a reset that arrives while we wait as EOF; we check).
  **An abrupt peer death on the reading side looks exactly like an EOF** (Yamux ends
  every stream of a dead connection with EOF); the sync protocol's explicit end marker
  is what tells a finished exchange from a dead peer.
* ``StreamReset`` → :class:`~orbitstore.errors.StreamResetError`.
* any other ``StreamError`` (broken pipe, closed for writing by the peer, ...) →
  :class:`~orbitstore.errors.NetworkError`.
* using a stream after our own ``close()`` → :class:`~orbitstore.errors.ClosedError`.

Cancellation (``trio.fail_after`` around a call, a cancelled nursery) is safe:

* a cancelled :meth:`Libp2pStream.send_all` lets the frame being written finish (frame
  writes are shielded by :mod:`orbitstore.net._libp2p_conn`; a cut frame would corrupt
  the whole connection), then **resets the stream**: the peer's reads raise
  ``StreamResetError`` instead of taking a truncated message for a whole one, and our
  later calls raise ``StreamResetError`` too (the stream is broken, like trio's
  ``BrokenResourceError``; ``ClosedError`` is only for use after our own ``close()``).
  The connection and its other streams carry on.
* a cancelled :meth:`Libp2pStream.receive_some` loses nothing: it waits for data
  cancellably, and only then reads (and credits the peer's Yamux window) shielded, so
  the next call returns the bytes in order.
* ``close()`` and ``reset()`` run shielded with a bound: cleanup finishes even in a
  cancelled task, and never hangs.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import trio
from libp2p.abc import INetStream
from libp2p.network.stream.exceptions import StreamEOF, StreamError, StreamReset
from libp2p.stream_muxer.exceptions import MuxedConnUnavailable
from libp2p.stream_muxer.yamux.yamux import YamuxStream

from orbitstore.errors import (
    ClosedError,
    InvalidDataError,
    InvalidValueError,
    NetworkError,
    StreamResetError,
)
from orbitstore.net.transport import PeerId, StreamHandler

logger = logging.getLogger("orbitstore.net.libp2p")

# close() and reset() write one frame each; bound them even on a stuck connection.
_CLEANUP_TIMEOUT = 5.0
# A read of data already buffered takes microseconds plus one window-update frame (bounded
# by Libp2pConfig.write_timeout); this is the backstop if the library blocks anyway.
_BUFFERED_READ_TIMEOUT = 60.0


@dataclass(frozen=True, kw_only=True)
class HandlerStatistics:
    """What the transport's inbound plumbing saw (``Libp2pTransport.statistics().handlers``).
    A handler error is an unexpected exception (a bug): it is logged with the peer, that
    peer's stream is reset, and the transport carries on."""

    inbound_streams: int = 0
    stream_handler_errors: int = 0
    peer_handler_errors: int = 0


@dataclass
class HandlerCounters:
    inbound_streams: int = 0
    stream_handler_errors: int = 0
    peer_handler_errors: int = 0

    def snapshot(self) -> HandlerStatistics:
        return HandlerStatistics(
            inbound_streams=self.inbound_streams,
            stream_handler_errors=self.stream_handler_errors,
            peer_handler_errors=self.peer_handler_errors,
        )


def translate_stream_error(exc: Exception, what: str, peer: PeerId) -> NetworkError:
    """Our error for a libp2p stream failure (raise it ``from exc``)."""
    if isinstance(exc, StreamReset):
        return StreamResetError(f"{what}: stream to {peer} was reset", peer=peer)
    return NetworkError(f"{what}: stream to {peer} failed: {exc or type(exc).__name__}", peer=peer)


class Libp2pStream:
    """A reliable, ordered byte stream to one peer over a Yamux stream."""

    def __init__(self, stream: INetStream, *, write_chunk_size: int) -> None:
        self._stream = stream
        self._chunk = write_chunk_size
        self._peer: PeerId = str(stream.muxed_conn.peer_id)
        self._closed = False
        self._broken = False  # reset by us after a cancelled send_all
        self._eof = False

    @property
    def remote_peer(self) -> PeerId:
        return self._peer

    def _check_broken(self, what: str) -> None:
        if self._broken:
            raise StreamResetError(
                f"{what}: stream to {self._peer} was reset after a cancelled send_all",
                peer=self._peer,
            )

    async def send_all(self, data: bytes) -> None:
        self._check_broken("send_all")
        if self._closed:
            raise ClosedError("send_all() on a closed stream")
        view = memoryview(data)
        try:
            for start in range(0, len(view), self._chunk):
                await self._stream.write(bytes(view[start : start + self._chunk]))
        except (StreamError, MuxedConnUnavailable) as exc:
            raise translate_stream_error(exc, "send_all", self._peer) from exc
        except trio.Cancelled:
            # Part of the data may be out: the peer must not take it for a whole message.
            self._broken = True
            await self.reset()
            raise

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise InvalidValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        self._check_broken("receive_some")
        if self._eof:
            return b""
        ready = await self._wait_readable()
        try:
            # Nothing to wait for any more: read what is buffered (and credit the peer's
            # window) without letting a cancellation drop the bytes on the floor.
            with trio.CancelScope(shield=ready) as scope:
                if ready:
                    scope.deadline = trio.current_time() + _BUFFERED_READ_TIMEOUT
                data = await self._stream.read(max_bytes)
            if scope.cancelled_caught:
                raise NetworkError(f"receive_some: stream to {self._peer} stalled", peer=self._peer)
        except StreamEOF as exc:
            # py-libp2p 0.8.1 forgets a Yamux stream as soon as a RST arrives, so a reader
            # waiting on it gets EOF; the stream object still remembers the reset.
            muxed = getattr(self._stream, "muxed_stream", None)
            if getattr(muxed, "reset_received", False):
                raise StreamResetError(
                    f"receive_some: stream to {self._peer} was reset", peer=self._peer
                ) from exc
            self._eof = True
            return b""
        except (StreamError, MuxedConnUnavailable) as exc:
            raise translate_stream_error(exc, "receive_some", self._peer) from exc
        if not data:
            self._eof = True
        return bytes(data[:max_bytes])

    async def _wait_readable(self) -> bool:
        """Wait, cancellably, until a read would not block: data is buffered or the
        stream has ended; True then. Knows py-libp2p 0.8.1's Yamux internals; for other
        muxers it returns False at once (their reads stay cancellable, and a cancelled
        read there may lose a chunk)."""
        muxed = getattr(self._stream, "muxed_stream", None)
        if not isinstance(muxed, YamuxStream):
            return False
        conn, sid = muxed.conn, muxed.stream_id
        while True:
            buffer = conn.stream_buffers.get(sid)
            event = conn.stream_events.get(sid)
            ended = muxed.recv_closed or muxed.reset_received or muxed.closed
            if buffer is None or buffer or ended or event is None:
                return True
            if conn.event_shutting_down.is_set():
                return True
            if event.is_set():  # a wake-up with nothing for us: wait for the next one
                conn.stream_events[sid] = event = trio.Event()
            await event.wait()

    async def close(self) -> None:
        """Half-close: the peer sees EOF, we can still read its reply."""
        if self._closed:
            return
        self._closed = True
        # Shielded and bounded: cleanup must finish in a cancelled task, and not hang.
        # A stream that is already gone (reset, dead peer) has nothing left to close.
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(_CLEANUP_TIMEOUT),
            contextlib.suppress(StreamError, MuxedConnUnavailable),
        ):
            await self._stream.close()

    async def reset(self) -> None:
        """Reset the stream (the peer's reads and writes fail)."""
        self._closed = True
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(_CLEANUP_TIMEOUT),
            contextlib.suppress(StreamError, MuxedConnUnavailable),
        ):
            await self._stream.reset()


async def run_stream_handler(
    handler: StreamHandler, stream: Libp2pStream, counters: HandlerCounters
) -> None:
    """Run an inbound stream's handler at the remote boundary: close the stream when it
    returns, reset it when it fails (logged with the peer; a bug is also counted)."""
    counters.inbound_streams += 1
    try:
        await handler(stream)
    except (NetworkError, InvalidDataError) as exc:
        # The peer's fault or the network's; the protocol has already reacted.
        logger.info("sync stream from %s ended with %s", stream.remote_peer, exc)
        await stream.reset()
    except trio.Cancelled:
        await stream.reset()  # the peer must not take what we sent for a whole reply
        raise
    except Exception:  # remote boundary: one peer's stream must not stop the node
        logger.exception("sync stream from %s failed unexpectedly; reset", stream.remote_peer)
        counters.stream_handler_errors += 1
        await stream.reset()
    finally:
        await stream.close()
