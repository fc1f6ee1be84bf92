"""GossipSub for orbitstore: configured so that it does not silently drop our messages.

How it works
------------

py-libp2p 0.8.1 loses messages in three places unless told otherwise (see the field
notes): a 10 msg/s spam limit that also throttles our own publishes, a 32-slot outbound
queue per peer that drops when full, and a 32-slot subscription channel that drops when
the application reads slowly. So:

* the router speaks ``/meshsub/1.1.0`` (and 1.0.0) only: v1.2 sends an IDONTWANT RPC for
  every message to every mesh peer, which doubles CPU and lets latency run into seconds;
  heartbeat 1 s; spam protection, adaptive heartbeat and eclipse protection off (LAN
  peers share an IP; the others are rate limits we cannot afford);
* messages are signed and verified (``strict_signing``) and their ids are content
  addressed (sha-256 of the payload), so one head announced by several replicas is
  delivered once;
* a synchronous validator refuses oversized messages on every hop, and then runs the
  subscriber's own validator (``subscribe(..., validator=)``), so a message the
  application cannot decode is neither delivered nor forwarded;
* :meth:`GossipService.publish` puts the message on a bounded channel (it blocks when the
  channel is full: back-pressure); one publisher task hands messages to the library only
  while every peer's outbound queue is at most half full;
* every subscription is drained by its own task as soon as a message arrives, our own
  messages are skipped there, and the rest wait in a bigger bounded buffer for the
  topic's handler. Overflow there is counted in :meth:`GossipService.statistics`.

Gossip stays best effort: a peer that is not yet in the mesh (the first heartbeat after
it subscribes) misses messages. The replication protocol treats gossip as a hint and
repairs gaps over streams.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub, get_content_addressed_msg_id
from libp2p.tools.anyio_service import background_trio_service

from orbitstore.errors import (
    ClosedError,
    InvalidDataError,
    InvalidValueError,
    NetworkError,
    PayloadTooLargeError,
)
from orbitstore.net.libp2p_config import GossipConfig
from orbitstore.net.transport import GossipHandler, GossipValidator

logger = logging.getLogger("orbitstore.net.gossip")

# Longest time the publisher waits for a peer's outbound queue to drain before handing
# the message over anyway (the library then drops it for that peer only). A stuck peer
# must not stop announcements to every other peer.
_MAX_QUEUE_WAIT = 5.0
_QUEUE_POLL = 0.002


@dataclass(frozen=True, kw_only=True)
class GossipStatistics:
    published: int
    delivered: int
    dropped_receive_overflow: int
    refused_oversized: int
    refused_invalid: int = 0
    """Messages the subscriber's validator refused (or raised on)."""
    # Handler calls that raised something unexpected (a bug): logged with the sender,
    # the message is dropped, the subscription carries on.
    handler_errors: int = 0


@dataclass
class _Topic:
    handler: GossipHandler
    cancel_scope: trio.CancelScope
    validator: GossipValidator | None = None


class GossipService:
    """Subscriptions, publishing and back-pressure over one py-libp2p Pubsub."""

    def __init__(self, host: IHost, config: GossipConfig) -> None:
        self._host = host
        self._config = config
        self._my_id = host.get_id().to_bytes()
        self._router = GossipSub(
            protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],
            degree=config.degree,
            degree_low=config.degree_low,
            degree_high=config.degree_high,
            heartbeat_interval=config.heartbeat_interval,
            spam_protection_enabled=False,
            adaptive_gossip_enabled=False,
            eclipse_protection_enabled=False,
        )
        # Rate limits that are attributes, not constructor arguments (10/s by default).
        self._router.max_iwant_requests_per_second = 10_000
        self._router.max_ihave_messages_per_second = 10_000
        self._pubsub = Pubsub(
            host,
            self._router,
            strict_signing=True,
            msg_id_constructor=get_content_addressed_msg_id,
            seen_ttl=config.seen_ttl,
            max_subscriptions_per_peer=config.max_topics_per_peer,
        )
        self._topics: dict[str, _Topic] = {}
        self._nursery: trio.Nursery | None = None
        send, receive = trio.open_memory_channel[tuple[str, bytes]](config.publish_buffer)
        self._publish_send = send
        self._publish_receive = receive
        self._published = 0
        self._delivered = 0
        self._dropped = 0
        self._refused = 0
        self._invalid = 0
        self._handler_errors = 0

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with (
            background_trio_service(self._pubsub),
            background_trio_service(self._router),
            trio.open_nursery() as nursery,
        ):
            await self._pubsub.wait_until_ready()
            self._nursery = nursery
            nursery.start_soon(self._publisher)
            try:
                yield
            finally:
                self._nursery = None
                await self._publish_send.aclose()
                nursery.cancel_scope.cancel()

    def statistics(self) -> GossipStatistics:
        return GossipStatistics(
            published=self._published,
            delivered=self._delivered,
            dropped_receive_overflow=self._dropped,
            refused_oversized=self._refused,
            refused_invalid=self._invalid,
            handler_errors=self._handler_errors,
        )

    # --- subscriptions ------------------------------------------------------------------

    async def subscribe(
        self, topic: str, handler: GossipHandler, *, validator: GossipValidator | None = None
    ) -> None:
        _check_topic(topic)
        if self._nursery is None:
            raise ClosedError("subscribe() on a closed transport")
        existing = self._topics.get(topic)
        if existing is not None:
            existing.handler = handler
            existing.validator = validator
            return
        state = _Topic(handler=handler, cancel_scope=trio.CancelScope(), validator=validator)

        def validate(forwarder: ID, msg: rpc_pb2.Message) -> bool:
            return self._validate(state, forwarder, msg)

        self._pubsub.set_topic_validator(topic, validate, False)
        subscription = await self._pubsub.subscribe(topic)
        self._topics[topic] = state
        self._nursery.start_soon(self._drain, topic, state, subscription)

    async def unsubscribe(self, topic: str) -> None:
        _check_topic(topic)
        state = self._topics.pop(topic, None)
        if state is None:
            return
        state.cancel_scope.cancel()
        self._pubsub.remove_topic_validator(topic)
        await self._pubsub.unsubscribe(topic)

    def _validate(self, state: _Topic, _forwarder: ID, msg: rpc_pb2.Message) -> bool:
        """Runs before the library delivers or forwards ``msg`` (every hop, our own
        publishes included)."""
        if len(msg.data) > self._config.max_message_size:
            self._refused += 1
            return False
        validator = state.validator
        if validator is None or msg.from_id == self._my_id:
            return True  # our own publishes: we built them (and never deliver them)
        try:
            origin = ID(msg.from_id).to_base58()
            ok = validator(origin, bytes(msg.data))
        except Exception as exc:  # a remote boundary: refuse the message, keep running
            logger.warning("gossip validator raised on a message: %r", exc)
            ok = False
        if not ok:
            self._invalid += 1
        return ok

    async def _drain(self, topic: str, state: _Topic, subscription: object) -> None:
        """Empty the library's 32-slot channel as fast as messages arrive."""
        send, receive = trio.open_memory_channel[tuple[str, bytes]](self._config.receive_buffer)
        with state.cancel_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._deliver, topic, state, receive)
                async with send:
                    async for msg in subscription:  # type: ignore[attr-defined]
                        if msg.from_id == self._my_id:
                            continue
                        # strict_signing: from_id is the verified author of the message.
                        origin = ID(msg.from_id).to_base58()
                        try:
                            send.send_nowait((origin, bytes(msg.data)))
                        except trio.WouldBlock:
                            self._dropped += 1
                            logger.warning("gossip on %r dropped: handler is behind", topic)

    async def _deliver(
        self,
        topic: str,
        state: _Topic,
        receive: trio.MemoryReceiveChannel[tuple[str, bytes]],
    ) -> None:
        async with receive:
            async for origin, data in receive:
                self._delivered += 1
                try:
                    await state.handler(origin, data)
                except (InvalidDataError, NetworkError) as exc:
                    # The sender's fault or the network's: log it, keep listening.
                    logger.info("gossip handler on %r failed for %s: %s", topic, origin, exc)
                except Exception:  # remote boundary: one message must not end the topic
                    logger.exception("gossip handler on %r failed for %s", topic, origin)
                    self._handler_errors += 1

    # --- publishing -----------------------------------------------------------------------

    async def publish(self, topic: str, data: bytes) -> None:
        _check_topic(topic)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidValueError(f"gossip payload must be bytes, got {type(data).__name__}")
        if len(data) > self._config.max_message_size:
            raise PayloadTooLargeError(
                f"gossip message of {len(data)} bytes is over the"
                f" {self._config.max_message_size} byte limit; send it over a stream"
            )
        if self._nursery is None:
            raise ClosedError("publish() on a closed transport")
        try:
            await self._publish_send.send((topic, bytes(data)))
        except (trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            raise ClosedError("publish() on a closed transport") from exc

    async def _publisher(self) -> None:
        high_water = self._config.peer_queue_size // 2
        async for topic, data in self._publish_receive:
            await self._wait_for_queue_space(high_water)
            await self._pubsub.publish(topic, data)
            self._published += 1

    async def _wait_for_queue_space(self, high_water: int) -> None:
        # The library offers no "queue has room" event; it also builds each peer's queue
        # with its fixed default size, which we raise here before it can fill.
        with trio.move_on_after(_MAX_QUEUE_WAIT):
            while True:
                full = False
                for queue in self._pubsub.peer_queues.values():
                    bounded = queue._queue
                    bounded.max_size = max(bounded.max_size, self._config.peer_queue_size)
                    full = full or len(queue) >= high_water
                if not full:
                    return
                await trio.sleep(_QUEUE_POLL)


def _check_topic(topic: str) -> None:
    if not isinstance(topic, str) or not topic or len(topic) > 1024:
        raise InvalidValueError(f"a topic is a non-empty string of at most 1024 chars: {topic!r}")


__all__ = ["GossipService", "GossipStatistics"]
