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

Everything that affects the state of a fetch lives in this file.
"""

from __future__ import annotations

from dataclasses import dataclass

from orbitstore.core.cid import Cid
from orbitstore.core.manifest import Manifest
from orbitstore.errors import InvalidDataError, ProtocolError, UsageError
from orbitstore.sync.frames import (
    PROTOCOL_VERSION,
    Error,
    GetManifest,
    ManifestBlock,
    Message,
    NotFound,
)

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


FetchResult = ManifestFetched | ManifestMissing


# --- the asker -------------------------------------------------------------------------


class ManifestRequest:
    """The asking side of one fetch; see the module docstring for the rules."""

    def __init__(self, *, db: Cid) -> None:
        if not isinstance(db, Cid):
            raise UsageError("ManifestRequest needs the manifest CID")
        self.db = db
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

    def receive(self, message: Message) -> FetchResult:
        """Take the peer's answer. Raises ProtocolError for anything but a verified one."""
        if not self._started:
            raise UsageError("start() the request before feeding it messages")
        if self._failed:
            raise ProtocolError("the request already failed")
        try:
            result = self._receive(message)
        except ProtocolError:
            self._failed = True
            raise
        self._result = result
        return result

    def _receive(self, message: Message) -> FetchResult:
        if self._result is not None:
            raise ProtocolError(f"peer sent {type(message).__name__} after its answer")
        if isinstance(message, Error):
            raise ProtocolError(
                f"peer refused the manifest request: {message.code}: {message.message}",
                peer_code=message.code,
            )
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


__all__ = [
    "FetchResult",
    "ManifestFetched",
    "ManifestMissing",
    "ManifestRequest",
    "answer_manifest_request",
]
