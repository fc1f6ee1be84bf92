"""Awareness over gossip, the I/O side of :mod:`orbitstore.sync.awareness`.

:class:`AwarenessRelay` belongs to the replication service. For every replicated ydoc
database it subscribes to ``/orbitstore/awareness/<manifest cid>`` with a validator that
decodes and checks every message before the transport delivers or forwards it, hands
what arrives to the listeners registered for that database (the y-websocket rooms of
:mod:`orbitstore.server.ywebsocket`), and publishes what they give it through one
bounded queue. Nothing here is stored: awareness is ephemeral, and a message the queue
cannot take is dropped and counted (clients renew their states every 15 s).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Protocol

import trio

from orbitstore.core.cid import Cid
from orbitstore.errors import ClosedError, NetworkError, OrbitstoreError
from orbitstore.net.transport import GossipValidator, PeerId, Transport
from orbitstore.sync.awareness import (
    DEFAULT_AWARENESS_LIMITS,
    AwarenessLimits,
    AwarenessMessage,
    decode_awareness,
    encode_awareness,
)

logger = logging.getLogger("orbitstore.awareness")

AWARENESS_TOPIC_PREFIX = "/orbitstore/awareness/"
# Messages waiting to be published; more are dropped (awareness is renewed, never stored).
_QUEUE = 256
_PUBLISH_TIMEOUT = 5.0


def awareness_topic(db: Cid) -> str:
    return f"{AWARENESS_TOPIC_PREFIX}{db}"


class AwarenessListener(Protocol):
    """What a room of y-websocket clients implements to hear other nodes' awareness."""

    def remote_update(self, peer: PeerId, update: bytes) -> None:
        """An awareness update from a client of node ``peer`` (decoded and checked)."""

    def remote_query(self, peer: PeerId) -> None:
        """Node ``peer`` opened a room: publish the states of this node's clients."""

    def peer_gone(self, peer: PeerId) -> None:
        """Node ``peer`` disconnected: the states its clients announced are stale."""


@dataclass(slots=True)
class AwarenessCounts:
    sent: int = 0
    received: int = 0
    dropped: int = 0
    """Not published: the queue was full, the transport refused, or over the limits."""
    rejected: int = 0
    """Refused by the validator (did not decode, over the limits, another database)."""
    unexpected: int = 0
    """A listener raised on a message that passed the validator (a bug; logged)."""


class AwarenessRelay:
    """Gossip topics for the awareness of the node's ydoc databases."""

    def __init__(
        self, *, transport: Transport, limits: AwarenessLimits = DEFAULT_AWARENESS_LIMITS
    ) -> None:
        self._transport = transport
        self._limits = limits
        self._listeners: dict[Cid, list[AwarenessListener]] = {}
        self._topics: set[Cid] = set()
        self.counts = AwarenessCounts()
        self._send, self._recv = trio.open_memory_channel[tuple[str, bytes]](_QUEUE)

    async def publisher(self) -> None:
        """Drain the queue onto the transport (the replication service runs this)."""
        async for topic, data in self._recv:
            try:
                with trio.fail_after(_PUBLISH_TIMEOUT):
                    await self._transport.publish(topic, data)
                self.counts.sent += 1
            except (NetworkError, ClosedError, trio.TooSlowError):
                self.counts.dropped += 1

    # -- topics ---------------------------------------------------------------------------

    async def add(self, db: Cid) -> None:
        """Subscribe to the awareness topic of ``db`` (a replicated ydoc database)."""
        if db in self._topics:
            return

        async def handler(peer: PeerId, data: bytes) -> None:
            self._deliver(db, peer, data)
            await trio.lowlevel.checkpoint()

        await self._transport.subscribe(awareness_topic(db), handler, validator=self._validator(db))
        self._topics.add(db)

    async def remove(self, db: Cid) -> None:
        if db not in self._topics:
            return
        self._topics.discard(db)
        with suppress(NetworkError, ClosedError):
            await self._transport.unsubscribe(awareness_topic(db))

    def relays(self, db: Cid) -> bool:
        """Whether awareness of ``db`` goes over gossip (it is replicated as a ydoc)."""
        return db in self._topics

    # -- listeners --------------------------------------------------------------------------

    @contextmanager
    def listen(self, db: Cid, listener: AwarenessListener) -> Iterator[None]:
        """Deliver the other nodes' awareness of ``db`` to ``listener`` while in the block."""
        listeners = self._listeners.setdefault(db, [])
        listeners.append(listener)
        try:
            yield
        finally:
            listeners.remove(listener)
            if not listeners:
                del self._listeners[db]

    def peer_gone(self, peer: PeerId) -> None:
        """The replication service saw ``peer`` disconnect."""
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                listener.peer_gone(peer)

    # -- publishing -------------------------------------------------------------------------

    def publish(self, db: Cid, update: bytes) -> bool:
        """Gossip a local client's awareness update of ``db`` (False when it was not:
        not a relayed database, over the limits, or the queue is full)."""
        return self._queue(AwarenessMessage(db=db, update=update))

    def query(self, db: Cid) -> bool:
        """Ask the other nodes for their clients' states of ``db``."""
        return self._queue(AwarenessMessage(db=db))

    def _queue(self, message: AwarenessMessage) -> bool:
        if message.db not in self._topics:
            return False
        try:
            data = encode_awareness(message, limits=self._limits)
            self._send.send_nowait((awareness_topic(message.db), data))
        except (OrbitstoreError, trio.WouldBlock) as exc:
            logger.debug("awareness of %s not gossiped: %s", message.db, exc)
            self.counts.dropped += 1
            return False
        return True

    # -- inbound ------------------------------------------------------------------------------

    def _validator(self, db: Cid) -> GossipValidator:
        def validate(peer: PeerId, data: bytes) -> bool:
            try:
                decode_awareness(data, db=db, limits=self._limits)
            except OrbitstoreError as exc:
                self.counts.rejected += 1
                logger.info("awareness from %s for %s refused: %s", peer, db, exc)
                return False
            return True

        return validate

    def _deliver(self, db: Cid, peer: PeerId, data: bytes) -> None:
        try:
            message = decode_awareness(data, db=db, limits=self._limits)
        except OrbitstoreError:  # the validator refused it already; a transport without one
            self.counts.rejected += 1
            return
        self.counts.received += 1
        for listener in list(self._listeners.get(db, ())):
            try:
                if message.update is None:
                    listener.remote_query(peer)
                else:
                    listener.remote_update(peer, message.update)
            except Exception:  # a remote boundary: one room's failure is logged, not fatal
                self.counts.unexpected += 1
                logger.exception("awareness from %s for %s broke a listener", peer, db)


__all__ = [
    "AWARENESS_TOPIC_PREFIX",
    "AwarenessCounts",
    "AwarenessListener",
    "AwarenessRelay",
    "awareness_topic",
]
