"""Asking a peer for a database's manifest, as a sans-IO state machine.

How it works
============

A node asked to open ``/orbitstore/<cid>`` needs the manifest block ``<cid>`` before it
can build the log (the manifest names the type and the writers). When its store does not
hold the block, the node asks its peers for it, each on a stream of its own, with the
frames of :mod:`orbitstore.sync.frames`. This module only decides what to say and what to
believe; the caller (:mod:`orbitstore.node.replication`) moves the bytes, asks several
peers at once and keeps the first answer that verifies.

Rule 1 — one question, one answer. The asker sends ``GetManifest{v, db}`` as the first
and only message of the stream. The responder answers with exactly one message and
closes the stream: ``ManifestBlock{db, block}`` when ``db`` is a database it holds,
``NotFound{db}`` when it does not, ``Error{code: "protocol"}`` when ``v`` is not the
version it speaks. A stream whose first message is a ``Hello`` is a sync exchange
instead (:mod:`orbitstore.sync.session`); the first message decides.

Rule 2 — manifests only. The responder answers only for the manifests of databases it
holds (:func:`answer_manifest_request` is given the block by the caller, or None), never
for other blocks: a fetch cannot be used to read entries or probe the store.

Rule 3 — believe nothing unverified. The asker accepts a ``ManifestBlock`` only if its
``db`` is the CID asked for, its bytes hash to that CID, and they decode as a manifest
(:meth:`Manifest.from_block`). Anything else — another CID, wrong bytes, not a manifest,
a message that is not one of the answers, anything after the answer — is a
:class:`ProtocolError`: the peer is hostile or broken, and the caller drops its answer and
waits for another peer's. An ``Error`` from the responder is a ProtocolError too, with
the peer's code in ``details["peer_code"]`` (the peer refused; it did not lie).

Rule 4 — private databases (:mod:`orbitstore.core.privacy`). The responder answers a
``GetManifest`` for a private database it holds with ``Challenge{v, db, nonce}`` instead
of the manifest; the asker answers with a ``Proof`` of its identity over that nonce
(:func:`orbitstore.sync.auth.prove`: the transcript binds both peer ids and both
nonces), and the responder then sends the ``ManifestBlock`` if the proof verifies and
names a reader, ``Error{code: "access_denied"}`` otherwise
(:func:`answer_manifest_proof`). An asker that cannot prove (no ``prover``), or is
refused, gets :class:`~orbitstore.errors.AccessDeniedError`. Only the asker proves: the
manifest it receives verifies by its hash.

Everything that affects the state of a fetch lives in this file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orbitstore.core.cid import Cid
from orbitstore.core.manifest import Manifest
from orbitstore.errors import AccessDeniedError, InvalidDataError, ProtocolError, UsageError
from orbitstore.sync.auth import Decide, check_proof, peer_error, refusal
from orbitstore.sync.frames import (
    PROTOCOL_VERSION,
    Challenge,
    Error,
    GetManifest,
    ManifestBlock,
    Message,
    NotFound,
    Proof,
)

Prover = Callable[[bytes], Proof]
"""Makes our proof for the responder's challenge nonce (the caller binds the peer ids)."""

# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ManifestFetched:
    """The peer sent the manifest and it verified: store ``block`` under its CID."""

    db: Cid
    manifest: Manifest
    block: bytes


@dataclass(frozen=True, slots=True)
class ManifestMissing:
    """The peer does not hold the database."""

    db: Cid


@dataclass(frozen=True, slots=True)
class ManifestChallenged:
    """The database is private: send ``proof`` and wait for the answer."""

    proof: Proof


FetchResult = ManifestFetched | ManifestMissing


# --- the asker -------------------------------------------------------------------------


class ManifestRequest:
    """The asking side of one fetch; see the module docstring for the rules."""

    def __init__(self, *, db: Cid, prover: Prover | None = None) -> None:
        if not isinstance(db, Cid):
            raise UsageError("ManifestRequest needs the manifest CID")
        self.db = db
        self._prover = prover
        self._challenged = False
        self._started = False
        self._result: FetchResult | None = None
        self._failed = False

    def start(self) -> GetManifest:
        """The one message to send. Call once."""
        if self._started:
            raise UsageError("the request was already started")
        self._started = True
        return GetManifest(v=PROTOCOL_VERSION, db=self.db)

    @property
    def result(self) -> FetchResult | None:
        """The verified answer, once received."""
        return self._result

    def receive(self, message: Message) -> FetchResult | ManifestChallenged:
        """Take the peer's answer. Raises ProtocolError for anything but a verified one,
        AccessDeniedError when the database is private and we may not (or cannot) read
        it; a :class:`ManifestChallenged` says what to send before the answer."""
        if not self._started:
            raise UsageError("start() the request before feeding it messages")
        if self._failed:
            raise ProtocolError("the request already failed")
        try:
            result = self._receive(message)
        except (ProtocolError, AccessDeniedError):
            self._failed = True
            raise
        if not isinstance(result, ManifestChallenged):
            self._result = result
        return result

    def _receive(self, message: Message) -> FetchResult | ManifestChallenged:
        if self._result is not None:
            raise ProtocolError(f"peer sent {type(message).__name__} after its answer")
        if isinstance(message, Error):
            raise peer_error(message, "the manifest request")
        if isinstance(message, Challenge):
            if self._challenged:
                raise ProtocolError("peer sent a second challenge")
            if message.db != self.db or message.v != PROTOCOL_VERSION:
                raise ProtocolError(f"peer challenged us for {message.db} v{message.v}")
            self._challenged = True
            if self._prover is None:
                raise AccessDeniedError(
                    f"{self.db} is a private database and this request cannot prove an identity",
                    reason="no_identity",
                )
            return ManifestChallenged(self._prover(message.nonce))
        if isinstance(message, NotFound):
            if message.db != self.db:
                raise ProtocolError(f"peer answered not_found for {message.db}, not {self.db}")
            return ManifestMissing(self.db)
        if isinstance(message, ManifestBlock):
            if message.db != self.db:
                raise ProtocolError(f"peer sent the manifest of {message.db}, not {self.db}")
            try:
                manifest = Manifest.from_block(self.db, message.block)
            except InvalidDataError as exc:
                raise ProtocolError(f"peer sent an invalid manifest for {self.db}: {exc}") from exc
            return ManifestFetched(self.db, manifest, message.block)
        raise ProtocolError(f"expected an answer to get_manifest, got {type(message).__name__}")


# --- the responder ---------------------------------------------------------------------


def answer_manifest_request(request: GetManifest, block: bytes | None) -> Message:
    """The one message to answer ``request`` with.

    ``block`` is the manifest block of ``request.db`` when it is a database we hold, and
    None otherwise — the caller decides what it holds, never this function.
    """
    if request.v != PROTOCOL_VERSION:
        return Error(
            code=ProtocolError.code,
            message=f"peer speaks sync protocol v{request.v}, we speak v{PROTOCOL_VERSION}",
        )
    if block is None:
        return NotFound(db=request.db)
    if Cid.for_block(block) != request.db:
        raise UsageError(f"the block given to answer for {request.db} is not its manifest")
    return ManifestBlock(db=request.db, block=block)


def answer_manifest_proof(
    request: GetManifest,
    challenge: bytes,
    proof: Message,
    block: bytes,
    *,
    prover_peer: str,
    verifier_peer: str,
    decide: Decide,
) -> Message:
    """Rule 4, the responder: the manifest ``block`` if ``proof`` (the asker's answer to
    our ``challenge`` nonce) verifies and names a reader, else ``Error{access_denied}``."""
    if isinstance(proof, Error):
        raise peer_error(proof, "our challenge")
    if not isinstance(proof, Proof):
        raise ProtocolError(f"expected a proof, got {type(proof).__name__}")
    try:
        identity = check_proof(
            proof,
            db=request.db,
            prover_peer=prover_peer,
            verifier_peer=verifier_peer,
            challenge=challenge,
        )
        if decide(identity, proof.delegation) is None:
            raise AccessDeniedError(
                f"{identity} is not a member or replica of private database {request.db}",
                identity=identity,
                reason="not_a_reader",
            )
    except AccessDeniedError as exc:
        return refusal(exc)
    return answer_manifest_request(request, block)


__all__ = [
    "FetchResult",
    "ManifestChallenged",
    "ManifestFetched",
    "ManifestMissing",
    "ManifestRequest",
    "Prover",
    "answer_manifest_proof",
    "answer_manifest_request",
]
