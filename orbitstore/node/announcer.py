"""Announcements, the I/O side of :mod:`orbitstore.sync.announce`.

:class:`Announcements` owns the outbound queue and its publisher task, the per-database
announcer tasks (one per replicated database: coalesce local writes, announce the new
heads with the newest small entries inline), the topic validator and the inbound
handler. The validator decodes and verifies every message before the transport delivers
or forwards it; the decoded value waits in a small cache for the handler, so inline
entries are verified once.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.errors import NetworkError, OrbitstoreError
from orbitstore.net.transport import PeerId, Transport
from orbitstore.node.config import ReplicationConfig
from orbitstore.sync.announce import Announcement, decode_announcement, encode_announcement
from orbitstore.views.base import Lagged

if TYPE_CHECKING:
    from orbitstore.core.limits import EntryLimits
    from orbitstore.node.database import Database

logger = logging.getLogger("orbitstore.replication")

TOPIC_PREFIX = "/orbitstore/db/"
# Decoded announcements waiting for the handler, by message digest. The transport runs
# the validator and then the handler for the same message, usually at once; a few
# hundred cover a burst, and a message that was validated but never handled (dropped by
# a full receive buffer) only costs its slot until it is pushed out.
_DECODED_CACHE = 256
# Entries walked back from the heads for the inline part of an announcement.
_INLINE_WALK = 256


def topic_for(db: Cid) -> str:
    return f"{TOPIC_PREFIX}{db}"


@dataclass(slots=True)
class AnnouncementCounts:
    sent: int = 0
    received: int = 0
    dropped: int = 0
    rejected: int = 0
    """Announcements that did not decode or verify (refused before forwarding)."""
    unexpected: int = 0
    """Of those, the ones that raised something other than our typed errors."""


Handler = Callable[[PeerId, Announcement], Any]


class Announcements:
    """Publishing and validating announcements for every replicated database."""

    def __init__(
        self, *, transport: Transport, config: ReplicationConfig, limits: EntryLimits
    ) -> None:
        self._transport = transport
        self._config = config
        self._limits = limits
        self.counts = AnnouncementCounts()
        self._send, self._recv = trio.open_memory_channel[tuple[str, bytes]](config.announce_queue)
        self._decoded: OrderedDict[tuple[PeerId, bytes], Announcement] = OrderedDict()

    # -- outbound -------------------------------------------------------------------------

    async def publisher(self) -> None:
        """Drain the queue onto the transport (the service's nursery runs this)."""
        async for topic, data in self._recv:
            try:
                with trio.fail_after(self._config.connect_timeout):
                    await self._transport.publish(topic, data)
                self.counts.sent += 1
            except (NetworkError, trio.TooSlowError):
                self.counts.dropped += 1

    async def announcer(
        self,
        database: Database,
        ready: trio.Event,
        scope: trio.CancelScope,
        push: Callable[[], None] | None = None,
    ) -> None:
        """Announce local writes to ``database`` until it closes or ``scope`` is cancelled.

        ``push``: a private database is never announced on gossip (its heads are not
        for everyone to read); ``push()`` is called instead, with the same coalescing,
        and syncs with the readers connected (the caller decides who they are)."""
        with scope:
            async with database.subscribe() as changes:
                ready.set()
                last = -math.inf
                async for item in changes:
                    if not isinstance(item, Lagged) and not item.local:
                        continue
                    # The first write after a quiet spell is announced at once (latency);
                    # writes within announce_interval of an announcement wait for the
                    # interval to end and share one more.
                    wait = last + self._config.announce_interval - trio.current_time()
                    if wait > 0:
                        await trio.sleep(wait)
                    while changes.receive_nowait() is not None:
                        pass
                    if push is not None:
                        push()
                    else:
                        self.queue(database)
                    last = trio.current_time()
        ready.set()  # a database closed before the announcer started

    def queue(self, database: Database) -> None:
        """Queue an announcement of the database's current heads (dropped when full)."""
        heads = sorted(database.heads)
        inline: list[Entry] = []
        budget = self._config.announce_inline_bytes
        for entry in database.log.traverse(heads, reverse=True, limit=_INLINE_WALK):
            if len(entry.block) > budget:
                break
            budget -= len(entry.block)
            inline.append(entry)
        inline.reverse()
        message = Announcement(db=database.cid, heads=tuple(heads), entries=tuple(inline))
        try:
            self._send.send_nowait((topic_for(database.cid), encode_announcement(message)))
        except trio.WouldBlock:
            self.counts.dropped += 1

    # -- inbound --------------------------------------------------------------------------

    def validator(self, database: Database) -> Callable[[PeerId, bytes], bool]:
        """The topic validator for ``database``: decodes and verifies (Rule 1 of
        :mod:`orbitstore.sync.announce`) before the transport delivers or forwards."""

        def validate(peer: PeerId, data: bytes) -> bool:
            try:
                decoded = self._decode(database, data)
            except Exception as exc:  # a remote boundary: refuse, log, count
                self._rejected(database, peer, exc)
                return False
            key = (peer, hashlib.sha256(data).digest())
            self._decoded[key] = decoded
            while len(self._decoded) > _DECODED_CACHE:
                self._decoded.popitem(last=False)
            return True

        return validate

    def take(self, database: Database, peer: PeerId, data: bytes) -> Announcement | None:
        """The announcement the validator decoded (or decode it now); None, logged and
        counted, when it does not decode."""
        self.counts.received += 1
        decoded = self._decoded.pop((peer, hashlib.sha256(data).digest()), None)
        if decoded is not None:
            return decoded
        try:
            return self._decode(database, data)
        except Exception as exc:
            self._rejected(database, peer, exc)
            return None

    def _decode(self, database: Database, data: bytes) -> Announcement:
        return decode_announcement(
            data,
            db=database.cid,
            frame_limits=self._config.frame_limits,
            entry_limits=self._limits,
            held=database.log.has,
        )

    def _rejected(self, database: Database, peer: PeerId, exc: Exception) -> None:
        self.counts.rejected += 1
        if isinstance(exc, OrbitstoreError):
            logger.info("announcement from %s for %s refused: %s", peer, database.address, exc)
        else:
            self.counts.unexpected += 1
            logger.warning(
                "announcement from %s for %s broke the decoder",
                peer,
                database.address,
                exc_info=exc,
            )


__all__ = ["AnnouncementCounts", "Announcements", "TOPIC_PREFIX", "topic_for"]
