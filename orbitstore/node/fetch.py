"""Fetching a manifest from peers: the I/O side of :mod:`orbitstore.sync.manifest_fetch`.

:func:`fetch_manifest` asks every connected peer at once, each on its own stream, and
keeps the first answer that verifies; the others are cancelled. A peer whose answer does
not verify is told so (``error{code: "protocol"}``) and ignored; the other peers' answers
still count. Everything ends after ``ReplicationConfig.manifest_timeout``.
:func:`serve_manifest_request` answers one request on an inbound stream.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass

import trio

from orbitstore.core.cid import Cid
from orbitstore.core.manifest import format_address
from orbitstore.errors import ClosedError, NetworkError, ProtocolError
from orbitstore.net.transport import PeerId, Stream, Transport
from orbitstore.node.config import ReplicationConfig
from orbitstore.sync.frames import Error, FrameDecoder, GetManifest, ManifestBlock, encode_frame
from orbitstore.sync.manifest_fetch import (
    ManifestFetched,
    ManifestRequest,
    answer_manifest_request,
)

_READ_BYTES = 64 * 1024
logger = logging.getLogger("orbitstore.replication")


@dataclass(frozen=True, slots=True)
class ManifestFetchReport:
    """What asking the connected peers for a manifest gave."""

    db: Cid
    fetched: ManifestFetched | None
    """The verified manifest and its block, or None."""
    asked: int
    """Connected peers asked."""
    not_found: int
    """Peers that said they do not hold the database."""
    invalid: int
    """Peers whose answer did not verify (wrong block, wrong CID, broken frames)."""
    failed: int
    """Peers that refused or whose stream broke."""
    unanswered: int
    """Peers that had not answered when the manifest was found or the time ran out."""
    timeout: float
    unexpected: int = 0
    """Peers whose answer raised an exception we did not expect (logged; counted in
    ``invalid`` too)."""

    def explain(self) -> str:
        """Why nothing was fetched, and what to do, for a NotFoundError."""
        address = format_address(self.db)
        if not self.asked:
            return (
                f"the manifest of {address} is not in this node's store and no peer is"
                " connected to ask for it (0 peers asked); connect to a peer that has the"
                " database open (node.replication.connect(...)) and open it again"
            )
        return (
            f"the manifest of {address} is not in this node's store and none of the"
            f" {self.asked} connected peers asked gave it ({self.not_found} do not have it,"
            f" {self.invalid} sent an invalid answer, {self.failed} failed,"
            f" {self.unanswered} did not answer within {self.timeout:g} s); connect to a"
            " peer that has the database open and open it again"
        )


async def fetch_manifest(
    transport: Transport, config: ReplicationConfig, db: Cid
) -> ManifestFetchReport:
    """Ask every connected peer for the manifest ``db``; the first verified answer wins."""
    peers = sorted(transport.connected_peers())
    outcomes: dict[PeerId, str] = {}
    found: list[ManifestFetched] = []

    async def ask(peer: PeerId, cancel: trio.CancelScope) -> None:
        outcome = await _ask(transport, config, db, peer)
        if isinstance(outcome, ManifestFetched):
            if not found:
                found.append(outcome)
            cancel.cancel()
        else:
            outcomes[peer] = outcome

    if peers:
        with trio.move_on_after(config.manifest_timeout):
            async with trio.open_nursery() as nursery:
                for peer in peers:
                    nursery.start_soon(ask, peer, nursery.cancel_scope)
    counts = {kind: sum(1 for o in outcomes.values() if o == kind) for kind in _OUTCOMES}
    counts["invalid"] += counts["unexpected"]
    return ManifestFetchReport(
        db=db,
        fetched=found[0] if found else None,
        asked=len(peers),
        not_found=counts["not_found"],
        invalid=counts["invalid"],
        failed=counts["failed"],
        unanswered=len(peers) - len(outcomes),
        timeout=config.manifest_timeout,
        unexpected=sum(1 for o in outcomes.values() if o == "unexpected"),
    )


_OUTCOMES = ("not_found", "invalid", "failed", "unexpected")


async def _ask(
    transport: Transport, config: ReplicationConfig, db: Cid, peer: PeerId
) -> ManifestFetched | str:
    """One peer's answer: the verified manifest, or one of ``_OUTCOMES``. A remote
    boundary: anything the peer's answer makes us raise is logged and ends only this
    peer's part of the fetch."""
    try:
        return await _ask_one(transport, config, db, peer)
    except Exception as exc:
        logger.warning("unexpected error reading %s's manifest answer", peer, exc_info=exc)
        return "unexpected"


async def _ask_one(
    transport: Transport, config: ReplicationConfig, db: Cid, peer: PeerId
) -> ManifestFetched | str:
    request = ManifestRequest(db=db)
    decoder = FrameDecoder(config.frame_limits)
    try:
        stream = await transport.open_stream(peer)
    except NetworkError:
        return "failed"
    try:
        await stream.send_all(encode_frame(request.start()))
        while request.result is None:
            data = await stream.receive_some(_READ_BYTES)
            if not data:
                return "failed"  # closed without answering (an older peer, or shutting down)
            for message in decoder.feed(data):
                request.receive(message)
    except ProtocolError as exc:
        if "peer_code" in exc.details:
            return "failed"
        with trio.move_on_after(1.0), suppress(NetworkError, ClosedError):
            await stream.send_all(encode_frame(Error(code=exc.code, message=str(exc)[:1024])))
        return "invalid"
    except NetworkError:
        return "failed"
    finally:
        with suppress(NetworkError, ClosedError):
            await stream.close()
    result = request.result
    return result if isinstance(result, ManifestFetched) else "not_found"


async def serve_manifest_request(
    stream: Stream, request: GetManifest, block: bytes | None, config: ReplicationConfig
) -> bool:
    """Answer one request (``block``: the manifest if we hold the database, else None).
    Returns True when a manifest was sent."""
    answer = answer_manifest_request(request, block)
    with trio.move_on_after(config.idle_timeout), suppress(NetworkError, ClosedError):
        await stream.send_all(encode_frame(answer))
        return isinstance(answer, ManifestBlock)
    return False


__all__ = ["ManifestFetchReport", "fetch_manifest", "serve_manifest_request"]
