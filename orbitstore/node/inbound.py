"""Inbound streams: the I/O side of :mod:`orbitstore.sync.inbound`.

:func:`serve_inbound` reads an inbound stream's first frames, asks
:func:`~orbitstore.sync.inbound.route_inbound` what the stream is, and then answers a
manifest request (:func:`orbitstore.node.fetch.serve_manifest_request`), runs a sync
session (:class:`~orbitstore.node.session_runner.SessionRunner`), or tells the peer why
not. A remote boundary: whatever the peer's bytes make it raise is logged and counted
by the service, and the stream is closed, never the node.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, suppress
from functools import partial
from typing import TYPE_CHECKING, Protocol

import trio

from orbitstore.core.cid import Cid
from orbitstore.errors import ClosedError, NetworkError, OrbitstoreError, ProtocolError
from orbitstore.net.transport import PeerId, Stream
from orbitstore.node.fetch import ReaderGate, serve_manifest_request
from orbitstore.node.privacy import is_private, reader_role
from orbitstore.node.session_runner import READ_BYTES, Service, SessionRunner
from orbitstore.sync.frames import FrameDecoder, GetManifest, Message, encode_frame
from orbitstore.sync.inbound import (
    BUSY,
    NOT_OPEN,
    NotOpen,
    Refuse,
    RunSession,
    ServeManifest,
    crossing_refused,
    refusal,
    route_inbound,
)

if TYPE_CHECKING:
    from orbitstore.node.sync_status import DbState
    from orbitstore.sync.auth import PeerAuth

logger = logging.getLogger("orbitstore.replication")


class InboundService(Service, Protocol):
    """What serving an inbound stream needs from the replication service."""

    @property
    def peer_id(self) -> PeerId: ...

    def state_of(self, db: Cid) -> DbState | None: ...

    def _auth(self, st: DbState, peer: PeerId, *, initiator: bool) -> PeerAuth | None: ...

    def _count(self, what: str) -> None: ...

    def inbound_session(self, st: DbState, peer: PeerId) -> AbstractContextManager[None]: ...


async def serve_in(service: InboundService, nursery: trio.Nursery | None, stream: Stream) -> None:
    """The transport's stream handler: serve ``stream`` in the service's ``nursery``
    (None: not running, the stream is closed) and return when it was served."""
    done = trio.Event()

    async def serve() -> None:
        try:
            await serve_inbound(service, stream)
        finally:
            done.set()

    if nursery is None:
        await stream.close()
        return
    try:
        nursery.start_soon(serve)
    except RuntimeError:  # the nursery is closing
        await stream.close()
        return
    await done.wait()


async def serve_inbound(service: InboundService, stream: Stream) -> None:
    """Serve one inbound stream until its exchange ends; then close it."""
    try:
        decoder = FrameDecoder(service.config.frame_limits)
        first = await _first_messages(service, stream, decoder)
        if first:
            await _dispatch(service, stream, decoder, first)
    except Exception as exc:
        service._unexpected(None, stream.remote_peer, exc, "an inbound stream")
    finally:
        with suppress(NetworkError, ClosedError):
            await stream.close()


async def _first_messages(
    service: InboundService, stream: Stream, decoder: FrameDecoder
) -> list[Message]:
    """The first frames of an inbound stream ([] when it ends or breaks first)."""
    try:
        with trio.fail_after(service.config.idle_timeout):
            while True:
                data = await stream.receive_some(READ_BYTES)
                if not data:
                    return []
                first = decoder.feed(data)
                if first:
                    return first
    except ProtocolError as exc:
        await refuse(stream, exc)
    except (NetworkError, trio.TooSlowError):
        pass
    return []


async def _dispatch(
    service: InboundService, stream: Stream, decoder: FrameDecoder, first: list[Message]
) -> None:
    def privacy(db: Cid) -> bool | None:
        st = service.state_of(db)
        return None if st is None else is_private(st.database)

    route = route_inbound(first[0], privacy)
    if isinstance(route, ServeManifest):
        await _answer_manifest(service, stream, route.request, decoder)
    elif isinstance(route, Refuse):
        await refuse(stream, route.error)
    elif isinstance(route, NotOpen):
        with (
            trio.move_on_after(service.config.idle_timeout),
            suppress(NetworkError, ClosedError),
        ):
            await stream.send_all(encode_frame(NOT_OPEN))
    elif isinstance(route, RunSession):
        st = service.state_of(route.db)
        if st is None:  # pragma: no cover - closed between the route and here
            return
        peer = stream.remote_peer
        link = st.peers.get(peer)
        running = link is not None and link.active
        if crossing_refused(service.peer_id, peer, own_session_running=running):
            service._count("crossed")
            with trio.move_on_after(1.0), suppress(NetworkError, ClosedError):
                await stream.send_all(encode_frame(BUSY))
            return
        auth = service._auth(st, peer, initiator=False)
        with service.inbound_session(st, peer):
            await SessionRunner(service, st, stream, decoder, first, auth=auth).run()


async def refuse(stream: Stream, exc: OrbitstoreError) -> None:
    """Tell the peer why its stream is refused (best effort)."""
    logger.info("inbound stream from %s refused: %s", stream.remote_peer, exc)
    with trio.move_on_after(1.0), suppress(NetworkError, ClosedError):
        await stream.send_all(encode_frame(refusal(exc)))


async def _answer_manifest(
    service: InboundService, stream: Stream, request: GetManifest, decoder: FrameDecoder
) -> None:
    """Only the manifests of databases we replicate, never other blocks; a private
    one only to a peer that proves a reader identity."""
    st = service.state_of(request.db)
    block = None
    gate = None
    if st is not None:
        cid, data = st.database.manifest.to_block()
        block = data if cid == request.db else None
        if is_private(st.database):
            database = st.database
            gate = ReaderGate(service.peer_id, partial(reader_role, database))
    if await serve_manifest_request(
        stream, request, block, service.config, decoder=decoder, gate=gate
    ):
        service._count("served")


__all__ = ["InboundService", "refuse", "serve_in", "serve_inbound"]
