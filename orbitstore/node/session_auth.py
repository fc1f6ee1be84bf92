"""Runs the reader proof of a private database's session (:mod:`orbitstore.sync.auth`)
over a stream, before the sync exchange: the thin I/O adapter.

:func:`new_auth` makes the machine for one side of a session (our identity, both peer
ids, 32 fresh random bytes, the decision of :func:`orbitstore.node.privacy.reader_role`
on the database's current state). :func:`authenticate` moves its frames, within
``idle_timeout`` in all, and returns the messages that arrived after the proof (the
peer's Hello may share a read with its proof): the sync session starts with them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

import trio

from orbitstore.errors import NetworkError, UsageError
from orbitstore.net.transport import PeerId, Stream
from orbitstore.node.privacy import is_private, reader_role
from orbitstore.sync.auth import PeerAuth, Signer
from orbitstore.sync.frames import AUTH_NONCE_BYTES, FrameDecoder, Message, encode_frame

if TYPE_CHECKING:
    from orbitstore.node.database import Database

logger = logging.getLogger("orbitstore.replication")
_READ_BYTES = 64 * 1024


def new_auth(
    database: Database, signer: Signer, *, local: PeerId, remote: PeerId, initiator: bool
) -> PeerAuth:
    """One side's authentication for a session about ``database`` with ``remote``."""
    return PeerAuth(
        db=database.cid,
        signer=signer,
        local_peer=local,
        remote_peer=remote,
        nonce=os.urandom(AUTH_NONCE_BYTES),
        initiator=initiator,
        decide=partial(reader_role, database),
        delegation=database._members.delegation,  # a linked device shows its user
    )


def auth_for(
    database: Database, signer: Signer | None, local: PeerId, remote: PeerId, *, initiator: bool
) -> PeerAuth | None:
    """:func:`new_auth` for a private ``database``; None for a public one. UsageError if
    this node has no identity to prove."""
    if not is_private(database):
        return None
    if signer is None:
        raise UsageError("a node without an identity cannot sync a private database")
    return new_auth(database, signer, local=local, remote=remote, initiator=initiator)


async def authenticate(
    stream: Stream,
    decoder: FrameDecoder,
    first: Sequence[Message],
    auth: PeerAuth,
    timeout: float,
) -> list[Message]:
    """Prove and check identities on ``stream``; the messages that followed the proof.
    Raises AccessDeniedError (refused either way), ProtocolError or NetworkError."""
    pending = list(first)
    out = auth.start()
    try:
        with trio.fail_after(timeout):
            while True:
                if out:
                    await stream.send_all(b"".join(encode_frame(m) for m in out))
                if auth.done:
                    return pending
                if pending:
                    out = auth.receive(pending.pop(0))
                    continue
                out = []
                data = await stream.receive_some(_READ_BYTES)
                if not data:
                    raise NetworkError("the peer ended the stream while proving its identity")
                pending.extend(decoder.feed(data))
    except trio.TooSlowError as exc:
        raise NetworkError("the peer did not complete the reader proof in time") from exc


__all__ = ["auth_for", "authenticate", "new_auth"]
