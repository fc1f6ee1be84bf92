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
"""

from __future__ import annotations

import contextlib

from libp2p.abc import INetStream
from libp2p.network.stream.exceptions import StreamEOF, StreamError, StreamReset
from libp2p.stream_muxer.exceptions import MuxedConnUnavailable

from orbitstore.errors import ClosedError, InvalidValueError, NetworkError, StreamResetError
from orbitstore.net.transport import PeerId


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
        self._eof = False

    @property
    def remote_peer(self) -> PeerId:
        return self._peer

    async def send_all(self, data: bytes) -> None:
        if self._closed:
            raise ClosedError("send_all() on a closed stream")
        view = memoryview(data)
        try:
            for start in range(0, len(view), self._chunk):
                await self._stream.write(bytes(view[start : start + self._chunk]))
        except (StreamError, MuxedConnUnavailable) as exc:
            raise translate_stream_error(exc, "send_all", self._peer) from exc

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise InvalidValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        if self._eof:
            return b""
        try:
            data = await self._stream.read(max_bytes)
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

    async def close(self) -> None:
        """Half-close: the peer sees EOF, we can still read its reply."""
        if self._closed:
            return
        self._closed = True
        # A stream that is already gone (reset, dead peer) has nothing left to close.
        with contextlib.suppress(StreamError, MuxedConnUnavailable):
            await self._stream.close()

    async def reset(self) -> None:
        """Reset the stream (the peer's reads and writes fail)."""
        self._closed = True
        with contextlib.suppress(StreamError, MuxedConnUnavailable):
            await self._stream.reset()
