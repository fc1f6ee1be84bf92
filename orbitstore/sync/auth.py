"""Proving a reader identity inside a session (private databases), as a sans-IO machine.

How it works
============

A libp2p peer id names a transport key, not a writer: the node behind it may run any
identity, or none we know. Before a node serves a private database
(:mod:`orbitstore.core.privacy`) to a peer, the peer proves, on the stream itself, that
it controls the key of a *reader* identity: it signs a transcript of this very session.

The transcript (:func:`transcript`) is the canonical DAG-CBOR encoding of the list::

    ["orbitstore/auth/v1", <db link>, <prover peer id>, <verifier peer id>,
     <prover did>, <verifier's challenge nonce>, <prover's nonce>]

signed with Ed25519 by the prover's identity. The peer ids are the two ends of the
stream as the transport authenticated them (libp2p's Noise handshake proves each peer
id), so a proof made for one session opens nowhere else:

- *Replay*: the verifier's nonce is 32 fresh random bytes, so an old proof does not
  sign it.
- *Relay*: a man in the middle M that forwards V's challenge to a member A gets back
  a proof naming A's peer id as the prover and M's as the verifier (A's stream is with
  M). V checks the proofs on its stream with M against (prover = M, verifier = V): it
  does not verify.
- *Reflection*: a peer that sends us our own proof back has prover and verifier
  swapped.
- The prover's own nonce means the verifier never chooses everything the prover signs;
  the tag keeps these signatures apart from entries (which are DAG-CBOR maps).

Rule 1 — the exchange (``I`` opened the stream, ``R`` accepted it)::

    I → R   Challenge{v, db, nonce: nI}            instead of Hello
    R → I   Challenge{v, db, nonce: nR}
    I → R   Proof{db, id: I's did, nonce: nI, sig over (I, R, nR, nI)[, delegation]}
    R       checks the signature, then whether I's did is a reader of db now
    R → I   Proof{db, id: R's did, nonce: nR, sig over (R, I, nI, nR)}  — or
            Error{code: "access_denied"} and the stream ends
    I       checks R's proof the same way (a node that is no longer a reader gets
            nothing from us either) — or sends Error{code: "access_denied"}

and then both sides go on with the sync exchange (:mod:`orbitstore.sync.session`),
starting with their Hellos. R answers a proof only after it checked I's, so a refused
peer learns nothing of R's identity; what it learns is that R holds the database (see
docs/security-model.md).

A linked device adds its ``delegation`` (its user's root key's statement that the
device acts for the user, :mod:`orbitstore.core.devices`) to its proof: the frame
decoder checks the root's signature and that it names the proof's ``id``, and the
decision gets it, so a device of a member is a reader before any of its link ops has
reached the verifier (an unlinking or expiry the verifier knows still refuses it). The
delegation is not part of the signed transcript: it is a public statement, and the
signature already proves control of the device key it names.

Rule 2 — refusals. A proof that does not verify, is for another database, or names an
identity that is not a reader is refused with
:class:`~orbitstore.errors.AccessDeniedError` (the caller sends ``Error{code:
"access_denied"}``). An ``Error`` from the peer ends the exchange too: an
AccessDeniedError when its code is ``access_denied`` (the peer refused us), a
ProtocolError otherwise, both with the peer's code in ``details["peer_code"]``. Any
message out of turn is a ProtocolError.

The caller passes the randomness (the nonce) and the decision (``decide``: an identity
to its reader role, or None); this module does no I/O.

Everything that affects the state of an authentication lives in this file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.devices import Delegation
from orbitstore.core.identity import verify
from orbitstore.core.privacy import Role
from orbitstore.errors import (
    AccessDeniedError,
    InvalidDataError,
    ProtocolError,
    UsageError,
)
from orbitstore.sync.frames import (
    AUTH_NONCE_BYTES,
    PROTOCOL_VERSION,
    Challenge,
    Error,
    Message,
    Proof,
)

AUTH_TAG: Final = "orbitstore/auth/v1"


class Signer(Protocol):
    """An identity that signs (:class:`~orbitstore.core.identity.Identity` is one)."""

    @property
    def id(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


Decide = Callable[[str, "Delegation | None"], "Role | None"]
"""The decision: a proven identity (and the delegation its proof carried, if any) to
its reader role, or None."""


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The peer proved control of ``identity``, a reader of the database as ``role``."""

    identity: str
    role: Role


def transcript(
    *,
    db: Cid,
    prover_peer: str,
    verifier_peer: str,
    prover: str,
    challenge: bytes,
    nonce: bytes,
) -> bytes:
    """The bytes a proof signs (see the module docstring)."""
    return codec.encode([AUTH_TAG, db, prover_peer, verifier_peer, prover, challenge, nonce])


def prove(
    signer: Signer,
    *,
    db: Cid,
    prover_peer: str,
    verifier_peer: str,
    challenge: bytes,
    nonce: bytes,
    delegation: Delegation | None = None,
) -> Proof:
    """Our answer to ``challenge`` (the verifier's nonce), with our fresh ``nonce`` (and
    our ``delegation`` when we are a linked device)."""
    message = transcript(
        db=db,
        prover_peer=prover_peer,
        verifier_peer=verifier_peer,
        prover=signer.id,
        challenge=challenge,
        nonce=nonce,
    )
    return Proof(db=db, id=signer.id, nonce=nonce, sig=signer.sign(message), delegation=delegation)


def check_proof(
    proof: Proof, *, db: Cid, prover_peer: str, verifier_peer: str, challenge: bytes
) -> str:
    """The identity ``proof`` proves control of, in the session (prover_peer →
    verifier_peer, our ``challenge``); AccessDeniedError if it does not verify."""
    if proof.db != db:
        raise AccessDeniedError(
            f"the peer's proof is for database {proof.db}, not {db}", reason="wrong_db"
        )
    if proof.nonce == challenge:
        raise AccessDeniedError("the peer's proof reuses our challenge", reason="reflected")
    message = transcript(
        db=db,
        prover_peer=prover_peer,
        verifier_peer=verifier_peer,
        prover=proof.id,
        challenge=challenge,
        nonce=proof.nonce,
    )
    try:
        verify(proof.id, proof.sig, message)
    except InvalidDataError as exc:
        raise AccessDeniedError(
            f"the peer's proof of {proof.id[:32]!r} does not verify for this session: {exc}",
            reason="bad_proof",
        ) from exc
    return proof.id


def refusal(exc: AccessDeniedError) -> Error:
    """The Error frame that tells the peer it was refused."""
    return Error(code=AccessDeniedError.code, message=str(exc)[:1024])


def peer_error(message: Error, what: str) -> ProtocolError | AccessDeniedError:
    """The error an Error frame from the peer is, on our side."""
    if message.code == AccessDeniedError.code:
        return AccessDeniedError(
            f"the peer refused {what}: {message.message}", peer_code=message.code
        )
    return ProtocolError(
        f"peer aborted {what}: {message.code}: {message.message}", peer_code=message.code
    )


class PeerAuth:
    """One side of Rule 1; see the module docstring."""

    def __init__(
        self,
        *,
        db: Cid,
        signer: Signer,
        local_peer: str,
        remote_peer: str,
        nonce: bytes,
        initiator: bool,
        decide: Decide,
        delegation: Delegation | None = None,
    ) -> None:
        if not isinstance(nonce, bytes) or len(nonce) != AUTH_NONCE_BYTES:
            raise UsageError(f"the nonce is {AUTH_NONCE_BYTES} fresh random bytes")
        self.db = db
        self._signer = signer
        self._local = local_peer
        self._remote = remote_peer
        self._nonce = nonce
        self.initiator = initiator
        self._decide = decide
        self._delegation = delegation
        self._started = False
        self._peer_nonce: bytes | None = None  # the peer's challenge
        self._sent_proof = False
        self._failed = False
        self.result: Authenticated | None = None

    @property
    def done(self) -> bool:
        return self.result is not None

    def start(self) -> list[Message]:
        """What to send first: the initiator's Challenge (the responder waits)."""
        if self._started:
            raise UsageError("the authentication was already started")
        self._started = True
        return [self._challenge()] if self.initiator else []

    def receive(self, message: Message) -> list[Message]:
        """Take one message; returns what to send. Raises AccessDeniedError (refused)
        or ProtocolError (broken) — after which the machine takes nothing more."""
        if not self._started:
            raise UsageError("start() the authentication before feeding it messages")
        if self._failed:
            raise ProtocolError("the authentication already failed")
        try:
            return self._receive(message)
        except (ProtocolError, AccessDeniedError):
            self._failed = True
            raise

    def _challenge(self) -> Challenge:
        return Challenge(v=PROTOCOL_VERSION, db=self.db, nonce=self._nonce)

    def _proof(self) -> Proof:
        assert self._peer_nonce is not None
        self._sent_proof = True
        return prove(
            self._signer,
            db=self.db,
            prover_peer=self._local,
            verifier_peer=self._remote,
            challenge=self._peer_nonce,
            nonce=self._nonce,
            delegation=self._delegation,
        )

    def _receive(self, message: Message) -> list[Message]:
        if isinstance(message, Error):
            raise peer_error(message, "to serve this private database")
        if self.result is not None:
            raise ProtocolError(f"peer sent {type(message).__name__} after authenticating")
        if isinstance(message, Challenge):
            if self._peer_nonce is not None:
                raise ProtocolError("peer sent a second challenge")
            if message.v != PROTOCOL_VERSION:
                raise ProtocolError(f"peer speaks sync protocol v{message.v}, we speak v1")
            if message.db != self.db:
                raise ProtocolError(f"peer challenged us for {message.db}, not {self.db}")
            self._peer_nonce = message.nonce
            # The initiator proves at once; the responder challenges back and proves
            # only once the initiator's proof was checked (Rule 1).
            return [self._proof()] if self.initiator else [self._challenge()]
        if isinstance(message, Proof):
            if self._peer_nonce is None:
                raise ProtocolError("peer sent a proof before its challenge")
            if self.initiator and not self._sent_proof:  # pragma: no cover - by the order
                raise ProtocolError("peer sent a proof before ours")
            identity = check_proof(
                message,
                db=self.db,
                prover_peer=self._remote,
                verifier_peer=self._local,
                challenge=self._nonce,
            )
            role = self._decide(identity, message.delegation)
            if role is None:
                raise AccessDeniedError(
                    f"{identity} is not a member or replica of private database {self.db}",
                    identity=identity,
                    reason="not_a_reader",
                )
            self.result = Authenticated(identity, role)
            return [] if self.initiator else [self._proof()]
        raise ProtocolError(
            f"expected challenge or proof before the sync, got {type(message).__name__}"
        )


__all__ = [
    "AUTH_TAG",
    "Authenticated",
    "Decide",
    "PeerAuth",
    "Signer",
    "check_proof",
    "peer_error",
    "prove",
    "refusal",
    "transcript",
]
