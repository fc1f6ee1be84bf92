"""What an inbound stream is, decided from its first message (no I/O).

How it works
============

A peer opens a stream to us for one of two exchanges, and its first message says which
(the caller, :mod:`orbitstore.node.inbound`, reads frames until there is one):

Rule 1 — ``GetManifest`` asks for a manifest (:mod:`orbitstore.sync.manifest_fetch`):
:class:`ServeManifest`, whether or not we hold the database (the fetch answers
``NotFound`` itself).

Rule 2 — ``Hello`` or ``Challenge`` opens a sync exchange (:mod:`orbitstore.sync.session`)
about one database. A database we do not have open gets ``Error{code: "not_found"}``
(:data:`NOT_OPEN`: the peer stops waiting for us). A private database
(:mod:`orbitstore.core.privacy`) is served only after the reader proof, so its stream
must open with ``Challenge``: a ``Hello`` is refused with ``access_denied`` (not even our
heads are sent). A public one must open with ``Hello``: a ``Challenge`` is a
``ProtocolError``. Otherwise :class:`RunSession`.

Rule 3 — anything else first is a ``ProtocolError`` (:class:`Refuse`): the caller sends
the :func:`refusal` frame and closes the stream.

Rule 4 — crossing sessions. Each side may open a session about a database at the same
moment (the writer's connect-time sync and the replica's open, say): both hellos cross
and, unchecked, both sessions stream the whole log, each one sent twice. One session
syncs both ways, so exactly one must survive, decided the same way on both sides
(:func:`crossing_refused`): a node that gets a database's ``Hello`` (a private one's
``Challenge``) while its own session with that peer about that database is running
refuses it with :data:`BUSY` when its peer id is the smaller one, and serves it
otherwise. The other node, whose session got :data:`BUSY`, ends that session quietly —
not a failure — and syncs again once the surviving session is over (a cheap exchange
when it brought everything). For a private database the refusal comes before the reader
proof: it tells nothing to anyone but the peer our own session about that database is
talking to, whose id the transport authenticates.

Everything that decides what an inbound stream is lives in this file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orbitstore.core.cid import Cid
from orbitstore.core.manifest import format_address
from orbitstore.errors import AccessDeniedError, OrbitstoreError, ProtocolError
from orbitstore.sync.frames import Challenge, Error, GetManifest, Hello, Message

NOT_OPEN = Error(code="not_found", message="database not open")
"""The answer to a sync stream about a database we do not have open (Rule 2)."""

BUSY = Error(code="busy", message="a session of ours about this database is running")
"""The answer to a session that crossed ours, on the side with the smaller peer id
(Rule 4)."""


def crossing_refused(own_peer: str, peer: str, *, own_session_running: bool) -> bool:
    """Whether a peer's new session about a database is refused with :data:`BUSY`:
    ours with it about the same database runs, and our id is the smaller (Rule 4).
    Exactly one of two crossing sessions is refused, whichever side decides first."""
    return own_session_running and own_peer < peer


@dataclass(frozen=True, slots=True)
class ServeManifest:
    """Answer the manifest request (Rule 1)."""

    request: GetManifest


@dataclass(frozen=True, slots=True)
class RunSession:
    """Run a sync session about ``db`` (Rule 2); ``private``: prove readers first."""

    db: Cid
    private: bool


@dataclass(frozen=True, slots=True)
class NotOpen:
    """Send :data:`NOT_OPEN` and close the stream (Rule 2)."""

    db: Cid


@dataclass(frozen=True, slots=True)
class Refuse:
    """Send :func:`refusal` of ``error`` and close the stream."""

    error: OrbitstoreError


Route = ServeManifest | RunSession | NotOpen | Refuse

Privacy = Callable[[Cid], bool | None]
"""Whether the database is private (True), public (False), or not open here (None)."""


def route_inbound(first: Message, privacy: Privacy) -> Route:
    """What to do with an inbound stream whose first message is ``first``."""
    if isinstance(first, GetManifest):
        return ServeManifest(first)
    if not isinstance(first, (Hello, Challenge)):
        name = type(first).__name__.lower()
        return Refuse(ProtocolError(f"a stream opens with hello, not {name}"))
    private = privacy(first.db)
    if private is None:
        return NotOpen(first.db)
    if private and isinstance(first, Hello):
        return Refuse(
            AccessDeniedError(
                f"{format_address(first.db)} is private: prove a reader identity first"
                " (challenge, not hello)"
            )
        )
    if not private and isinstance(first, Challenge):
        return Refuse(ProtocolError("a public database's stream opens with hello, not challenge"))
    return RunSession(first.db, private)


def refusal(error: OrbitstoreError) -> Error:
    """The ``Error`` frame that tells the peer why its stream was refused."""
    return Error(code=error.code, message=str(error)[:1024])


__all__ = [
    "BUSY",
    "NOT_OPEN",
    "crossing_refused",
    "NotOpen",
    "Privacy",
    "Refuse",
    "Route",
    "RunSession",
    "ServeManifest",
    "refusal",
    "route_inbound",
]
