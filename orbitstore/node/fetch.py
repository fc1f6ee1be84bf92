"""Fetching a manifest from peers: the I/O side of :mod:`orbitstore.sync.manifest_fetch`.

:func:`fetch_manifest` asks every connected peer at once, each on its own stream, and
keeps the first answer that verifies; the others are cancelled. A peer whose answer does
not verify is told so (``error{code: "protocol"}``) and ignored; the other peers' answers
still count. Everything ends after ``ReplicationConfig.manifest_timeout``.
:func:`serve_manifest_request` answers one request on an inbound stream; for a private
database it first challenges the asker to prove a reader identity (Rule 4 of
:mod:`orbitstore.sync.manifest_fetch`), and asking proves ours when challenged.
"""

from __future__ import annotations

import logging
import os
from contextlib import suppress
from dataclasses import dataclass

import trio

from orbitstore.core.cid import Cid
from orbitstore.core.devices import Delegation
from orbitstore.core.manifest import format_address
from orbitstore.errors import AccessDeniedError, ClosedError, NetworkError, ProtocolError
from orbitstore.net.transport import PeerId, Stream, Transport
from orbitstore.node.config import ReplicationConfig
from orbitstore.sync.auth import Decide, Signer, prove
from orbitstore.sync.frames import (
    AUTH_NONCE_BYTES,
    PROTOCOL_VERSION,
    Challenge,
    Error,
    FrameDecoder,
    GetManifest,
    ManifestBlock,
    Message,
    Proof,
    encode_frame,
)
from orbitstore.sync.manifest_fetch import (
    ManifestChallenged,
    ManifestFetched,
    ManifestRequest,
    answer_manifest_proof,
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
    refused: int = 0
    """Peers that hold the database but refused it to us: it is private and our
    identity is not one of its readers (counted in ``failed`` too)."""

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
            f" {self.invalid} sent an invalid answer, {self.failed} failed"
            f" ({self.refused} refused: a private database this identity may not read),"
            f" {self.unanswered} did not answer within {self.timeout:g} s); connect to a"
            " peer that has the database open and open it again"
        )


async def fetch_manifest(
    transport: Transport,
    config: ReplicationConfig,
    db: Cid,
    signer: Signer | None = None,
    *,
    delegation: Delegation | None = None,
) -> ManifestFetchReport:
    """Ask every connected peer for the manifest ``db``; the first verified answer wins.
    ``signer``: the identity we prove when a peer holds ``db`` as a private database
    (with our ``delegation`` when this node is a linked device)."""
    peers = sorted(transport.connected_peers())
    outcomes: dict[PeerId, str] = {}
    found: list[ManifestFetched] = []

    async def ask(peer: PeerId, cancel: trio.CancelScope) -> None:
        outcome = await _ask(transport, config, db, peer, signer, delegation=delegation)
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
    counts["failed"] += counts["refused"]
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
        refused=counts["refused"],
    )


_OUTCOMES = ("not_found", "invalid", "failed", "unexpected", "refused")


async def _ask(
    transport: Transport,
    config: ReplicationConfig,
    db: Cid,
    peer: PeerId,
    signer: Signer | None,
    *,
    delegation: Delegation | None = None,
) -> ManifestFetched | str:
    """One peer's answer: the verified manifest, or one of ``_OUTCOMES``. A remote
    boundary: anything the peer's answer makes us raise is logged and ends only this
    peer's part of the fetch."""
    try:
        return await _ask_one(transport, config, db, peer, signer, delegation=delegation)
    except Exception as exc:
        logger.warning("unexpected error reading %s's manifest answer", peer, exc_info=exc)
        return "unexpected"


async def _ask_one(
    transport: Transport,
    config: ReplicationConfig,
    db: Cid,
    peer: PeerId,
    signer: Signer | None,
    *,
    delegation: Delegation | None = None,
) -> ManifestFetched | str:
    def prover(challenge: bytes) -> Proof:
        assert signer is not None
        return prove(
            signer,
            db=db,
            prover_peer=transport.peer_id,
            verifier_peer=peer,
            challenge=challenge,
            nonce=os.urandom(AUTH_NONCE_BYTES),
            delegation=delegation,
        )

    request = ManifestRequest(db=db, prover=None if signer is None else prover)
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
                answer = request.receive(message)
                if isinstance(answer, ManifestChallenged):
                    await stream.send_all(encode_frame(answer.proof))
    except AccessDeniedError as exc:
        logger.info("%s refused the manifest of %s: %s", peer, format_address(db), exc)
        return "refused"
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


@dataclass(frozen=True, slots=True)
class ReaderGate:
    """A private database's manifest is sent only to a proven reader: our peer id (the
    verifier in the proof) and the decision."""

    local_peer: PeerId
    decide: Decide


async def serve_manifest_request(
    stream: Stream,
    request: GetManifest,
    block: bytes | None,
    config: ReplicationConfig,
    *,
    decoder: FrameDecoder | None = None,
    gate: ReaderGate | None = None,
) -> bool:
    """Answer one request (``block``: the manifest if we hold the database, else None;
    ``gate`` when it is private, with the stream's ``decoder`` to read the proof).
    Returns True when a manifest was sent."""
    with trio.move_on_after(config.idle_timeout), suppress(NetworkError, ClosedError):
        if block is not None and gate is not None and request.v == PROTOCOL_VERSION:
            decoder = decoder or FrameDecoder(config.frame_limits)
            answer = await _gated_answer(stream, request, block, decoder, gate)
        else:
            answer = answer_manifest_request(request, block)
        await stream.send_all(encode_frame(answer))
        return isinstance(answer, ManifestBlock)
    return False


async def _gated_answer(
    stream: Stream,
    request: GetManifest,
    block: bytes,
    decoder: FrameDecoder,
    gate: ReaderGate,
) -> Message:
    nonce = os.urandom(AUTH_NONCE_BYTES)
    await stream.send_all(encode_frame(Challenge(db=request.db, nonce=nonce)))
    messages: list[Message] = []
    try:
        while not messages:
            data = await stream.receive_some(_READ_BYTES)
            if not data:
                raise NetworkError("the peer ended the stream instead of proving its identity")
            messages = decoder.feed(data)
        answer = answer_manifest_proof(
            request,
            nonce,
            messages[0],
            block,
            prover_peer=stream.remote_peer,
            verifier_peer=gate.local_peer,
            decide=gate.decide,
        )
    except (ProtocolError, AccessDeniedError) as exc:
        return Error(code=exc.code, message=str(exc)[:1024])
    if isinstance(answer, Error):
        logger.info(
            "manifest of private %s refused to %s: %s",
            format_address(request.db),
            stream.remote_peer,
            answer.message,
        )
    return answer


__all__ = ["ManifestFetchReport", "ReaderGate", "fetch_manifest", "serve_manifest_request"]
