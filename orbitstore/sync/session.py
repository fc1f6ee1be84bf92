"""One sync exchange between two peers about one database, as a sans-IO state machine.

How it works
============

Both sides run the same machine; there is no client or server once the stream is open.
The caller moves bytes (see :mod:`orbitstore.node.session_runner`); this module only decides
what to say. It never awaits, never reads a clock, and never writes to the log: entries
received are handed out as :class:`ApplyEntries` events for the caller to apply through
``Database.receive``; the caller then tells the session what the log still ``needed``.

Rule 1 — hello first. Each side starts by sending ``Hello{v, db, heads, have}``: our
heads, plus ``have``, a sample of older entries we hold (the entries at positions 1, 2,
4, 8, ... back from our heads in reverse total order). Anything before the peer's Hello,
a second Hello, another version or another database is a :class:`ProtocolError`.

Rule 2 — send what the peer lacks, parents first, in bulk. On the peer's Hello we walk
back from our heads in reverse total order — a max-heap on ``(clock, writer, cid)``;
parents always sort before their children — with each CID marked *known* (the peer holds
it) or not. The peer's heads and ``have`` CIDs that we hold start out known; a popped
known entry marks its parents known; a popped unknown entry is queued for sending. Since
every descendant of an entry sorts after it, an entry's mark is final when it is popped.
The walk stops as soon as the heap holds only known entries. The queue is reversed
(oldest first) and sent in :class:`~orbitstore.sync.frames.Entries` frames of about
``target_frame_bytes``, then ``Done``. A fresh replica of N entries therefore catches up
in a constant number of round trips, never one per DAG level.

Rule 2a — a peer we share nothing with gets the whole log, streamed. When none of the
peer's heads and ``have`` CIDs is in our log (a fresh replica says hello with no heads at
all), the walk would mark nothing known and queue every entry: the answer is the whole
log in total order, which is exactly what the reader's ``iter_blocks`` yields. So we skip
the walk and stream ``iter_blocks`` into frames as they are asked for: the first frame
leaves at once instead of after a walk that reads and decodes every entry of the log.
Entries appended while the stream runs may or may not be in it (announcements and the
next anti-entropy round carry them); a log that was empty when the peer's Hello arrived
streams nothing (a fresh replica would otherwise stream back, as they are stored, the
entries the peer is sending it). Once the stream is done, everything at or below the
last entry streamed in total order was streamed: the session keeps that *high-water*
order key, not every CID streamed, and later walks count everything at or below it as
known (an entry that reached our log mid-stream below the mark is then wanted by the
peer, and sent, in the next round). Entries the peer sent
us in this session are not echoed back while they are among the last
``RECENT_RECEIVED`` it sent (best effort: an echo costs bandwidth, never correctness).

Memory. What a session remembers does not grow with the log: *known* holds the peer's
Hello heads and ``have`` CIDs, our heads of each round we planned and the CIDs each want
named (each bounded by ``max_cids_per_message``), plus the high-water key — a walk
seeded with them marks every ancestor known as it goes. The walk itself
(:mod:`orbitstore.core.dag`) and the send queue last one round.

Rule 3 — wants. Once the peer's round ended (its ``Done``) and what it sent has been
applied — every :class:`ApplyEntries` handed out before the ``Done`` was acknowledged
with :meth:`SyncSession.entries_applied`; the session waits for that itself, so the
caller may feed a ``Done`` as soon as it arrives — we send ``Want{cids}`` with what the
log still needs and we have not asked this peer for yet, or ``Want{}`` (empty) when we
need nothing more from it. A non-empty want opens a new round on the peer's side: it
walks back from the wanted CIDs (what it already sent is known) and answers with
``Entries*`` and ``Done``. At most ``max_want_rounds`` non-empty wants are sent; after
that we declare ourselves done.

Rule 3a — what we serve is bounded too (:mod:`orbitstore.sync.serve_limits`): more than
``max_wants_per_session`` non-empty wants from the peer, or more than the entries or
bytes we serve per session, is a :class:`~orbitstore.errors.ServeLimitError` — raised by
:meth:`receive` or :meth:`next_message`; the caller sends ``Error{code: "serve_limit"}``
and drops the session.

Rule 4 — the end. The exchange is over when both sides have sent their empty ``Want``
and every round either side opened has been closed by a ``Done``. From then on nothing
more may arrive; the caller closes the stream. ``Error{code, message}`` from the peer
ends the exchange at once with a ProtocolError; any message that does not fit the rules
above is a ProtocolError too (the caller drops the peer's session).

Everything that affects the state of an exchange lives in this file.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from orbitstore.core.cid import Cid
from orbitstore.core.dag import unknown_ancestors, walk_back
from orbitstore.core.entry import Entry
from orbitstore.core.order import OrderKey
from orbitstore.errors import InvalidValueError, ProtocolError, ServeLimitError, UsageError
from orbitstore.sync.frames import (
    DEFAULT_FRAME_LIMITS,
    PROTOCOL_VERSION,
    Done,
    Entries,
    Error,
    FrameLimits,
    Hello,
    Message,
    Want,
    entries_overhead,
)
from orbitstore.sync.serve_limits import DEFAULT_SERVE_LIMITS, ServeLimits

# Entries the peer sent us that a Rule 2a stream skips (not echoed back): one full frame
# and then some. Older ones may be echoed; the receiver drops duplicates.
RECENT_RECEIVED = 8192


class LogReader(Protocol):
    """What a session reads from the local log (an :class:`~orbitstore.core.oplog.OpLog`
    satisfies it)."""

    @property
    def heads(self) -> frozenset[Cid]: ...

    def get(self, cid: Cid) -> Entry | None: ...

    def iter_blocks(self) -> Iterator[tuple[Cid, bytes]]:
        """Every entry as ``(cid, block)``, in total order (parents before children)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionLimits:
    # Sample size of ``have``: 2**12 entries back covers histories that diverged by
    # thousands of entries, while the walk to build it stays a few milliseconds.
    have_samples: int = 12
    # Non-empty wants per session. Honest peers need one, rarely two.
    max_want_rounds: int = 4

    def __post_init__(self) -> None:
        if not 0 <= self.have_samples <= 30:
            raise InvalidValueError("have_samples must be between 0 and 30")
        if self.max_want_rounds < 0:
            raise InvalidValueError("max_want_rounds must be >= 0")


def hello_sample(reader: LogReader, heads: Iterable[Cid], samples: int) -> tuple[Cid, ...]:
    """The ``have`` of our Hello (Rule 1): the entries at positions 1, 2, 4, ... 2**(samples
    - 1) back from ``heads`` in reverse total order, sorted. A pure function of the log
    and the heads, so a caller may keep it while the heads stay the same."""
    heads = sorted(heads)
    if not samples or not heads:
        return ()
    want = {(1 << i) for i in range(samples)}
    last = max(want)
    out: list[Cid] = []
    for position, entry in enumerate(walk_back(reader.get, heads)):
        if position in want:
            out.append(entry.cid)
        if position >= last:
            break
    return tuple(sorted(out))


# --- events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApplyEntries:
    """Blocks the peer sent: verify and apply them, then call ``entries_applied``."""

    blocks: tuple[tuple[Cid, bytes], ...]


@dataclass(frozen=True, slots=True)
class PeerHeads:
    """The peer's heads, from its Hello, and how many entries it holds (None: it did
    not say)."""

    heads: frozenset[Cid]
    entries: int | None = None


Event = ApplyEntries | PeerHeads


@dataclass(frozen=True, slots=True)
class SessionStatistics:
    entries_sent: int
    bytes_sent: int
    entries_received: int
    bytes_received: int
    frames_sent: int
    frames_received: int
    want_rounds: int
    unresolved: frozenset[Cid]
    wants_answered: int = 0
    known: int = 0
    """CIDs the session remembers the peer holds (bounded, see Memory)."""
    received_remembered: int = 0


# --- the machine -----------------------------------------------------------------------


class SyncSession:
    """The state of one exchange; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        reader: LogReader,
        db: Cid,
        frame_limits: FrameLimits = DEFAULT_FRAME_LIMITS,
        limits: SessionLimits | None = None,
        serve_limits: ServeLimits = DEFAULT_SERVE_LIMITS,
    ) -> None:
        self._reader = reader
        self.db = db
        self.frame_limits = frame_limits
        self.limits = limits or SessionLimits()
        self.serve_limits = serve_limits
        self._started = False
        self._outbox: deque[Message] = deque()
        # (cid, block) to send, oldest first. The walk that plans a round has the blocks
        # in hand; keeping them saves reading and decoding every entry a second time
        # when the frames are built (half of the sender's time in a catch-up).
        self._send_queue: deque[tuple[Cid, bytes]] = deque()
        # Rule 2a: the whole log, read lazily as frames are built (sent after the queue).
        self._stream: Iterator[tuple[Cid, bytes]] | None = None
        self._last_streamed: Cid | None = None
        self._streamed_upto: OrderKey | None = None  # the high-water key of the stream
        self._rounds_to_close = 0  # Done messages we still owe the peer
        self._peer_hello: Hello | None = None
        self._known: set[Cid] = set()  # seeds of the walk: the peer holds their ancestry
        # The last RECENT_RECEIVED CIDs the peer sent (Rule 2a does not echo them).
        self._received: OrderedDict[Cid, None] = OrderedDict()
        self._peer_dones = 0
        self._dones_expected = 1  # the peer's first round, plus one per non-empty Want
        self._unapplied = 0  # ApplyEntries handed out and not acknowledged yet
        self._want_pending = False  # the peer's round ended; decide once all is applied
        self._needed: frozenset[Cid] = frozenset()
        self._wanted: set[Cid] = set()
        self._want_rounds = 0
        self._wants_answered = 0
        self._we_satisfied = False  # our empty Want is queued
        self._peer_satisfied = False
        self._failed = False
        self._stats = {"es": 0, "bs": 0, "er": 0, "br": 0, "fs": 0, "fr": 0}

    # -- inputs -------------------------------------------------------------------------

    def start(self, *, have: tuple[Cid, ...] | None = None, entries: int | None = None) -> None:
        """Queue our Hello. Call once, before anything else. ``have``: the sample of our
        current heads (:func:`hello_sample`), if the caller keeps it across sessions (it
        walks back thousands of entries; the heads change far less often than sessions
        start). ``entries``: how many entries our log holds, told to the peer for its
        progress (None: not said)."""
        if self._started:
            raise UsageError("the session was already started")
        self._started = True
        heads = sorted(self._reader.heads)
        if have is None:
            have = hello_sample(self._reader, heads, self.limits.have_samples)
        self._outbox.append(
            Hello(v=PROTOCOL_VERSION, db=self.db, heads=tuple(heads), have=have, entries=entries)
        )

    def receive(self, message: Message) -> list[Event]:
        """Take one message from the peer; returns what the caller must do about it."""
        if not self._started:
            raise UsageError("start() the session before feeding it messages")
        if self._failed:
            raise ProtocolError("the session already failed")
        try:
            return self._receive(message)
        except ProtocolError:
            self._failed = True
            raise

    def entries_applied(self, needed: Iterable[Cid], *, batches: int = 1) -> None:
        """After applying ``batches`` :class:`ApplyEntries` (in the order they were
        handed out): what the log still misses (the CIDs the caller wants from this
        peer). A ``Done`` fed before takes effect now (Rule 3)."""
        if batches > self._unapplied:
            raise UsageError(f"{batches} batches applied, but {self._unapplied} were handed out")
        self._unapplied -= batches
        self._needed = frozenset(needed)
        if self._want_pending and not self._unapplied:
            self._want_pending = False
            self._decide_want()

    def fail(self, code: str, message: str) -> Error:
        """Abort: the Error message to send the peer (best effort)."""
        self._failed = True
        self._outbox.clear()
        self._send_queue.clear()
        self._stream = None
        return Error(code=code, message=message[:1024])

    # -- outputs ------------------------------------------------------------------------

    def next_message(self) -> Message | None:
        """The next message to send, or None when there is nothing to send right now.
        Raises ServeLimitError past what we serve in a session (Rule 3a)."""
        if self._failed:
            return None
        if self._outbox:
            return self._count_out(self._outbox.popleft())
        if self._stream is not None:
            self._top_up()
        if self._send_queue:
            self._check_serving()
            return self._count_out(self._next_entries())
        if self._rounds_to_close:
            self._rounds_to_close -= 1
            return self._count_out(Done())
        return None

    @property
    def receiving_done(self) -> bool:
        """Nothing more will arrive from the peer."""
        return (
            self._peer_satisfied and self._we_satisfied and self._peer_dones == self._dones_expected
        )

    @property
    def sending_done(self) -> bool:
        """We have nothing more to send, ever."""
        return (
            self._peer_satisfied
            and self._we_satisfied
            and not self._outbox
            and not self._send_queue
            and self._stream is None
            and not self._rounds_to_close
        )

    @property
    def complete(self) -> bool:
        return self.receiving_done and self.sending_done

    @property
    def peer_heads(self) -> frozenset[Cid] | None:
        return None if self._peer_hello is None else frozenset(self._peer_hello.heads)

    def statistics(self) -> SessionStatistics:
        s = self._stats
        return SessionStatistics(
            entries_sent=s["es"],
            bytes_sent=s["bs"],
            entries_received=s["er"],
            bytes_received=s["br"],
            frames_sent=s["fs"],
            frames_received=s["fr"],
            want_rounds=self._want_rounds,
            unresolved=self._needed if self._we_satisfied else frozenset(),
            wants_answered=self._wants_answered,
            known=len(self._known),
            received_remembered=len(self._received),
        )

    # -- internals ----------------------------------------------------------------------

    def _count_out(self, message: Message) -> Message:
        self._stats["fs"] += 1
        if isinstance(message, Entries):
            self._stats["es"] += len(message.blocks)
            self._stats["bs"] += message.size
        return message

    def _check_serving(self) -> None:
        limits = self.serve_limits
        if self._stats["bs"] >= limits.max_bytes_per_session:
            raise ServeLimitError(
                f"served {self._stats['bs']} bytes in this session"
                f" (limit {limits.max_bytes_per_session})"
            )
        if self._stats["es"] >= limits.max_entries_per_session:
            raise ServeLimitError(
                f"served {self._stats['es']} entries in this session"
                f" (limit {limits.max_entries_per_session})"
            )

    def _receive(self, message: Message) -> list[Event]:
        self._stats["fr"] += 1
        if isinstance(message, Error):
            raise ProtocolError(
                f"peer aborted the sync: {message.code}: {message.message}",
                peer_code=message.code,
            )
        if self._peer_hello is None:
            return self._receive_hello(message)
        if isinstance(message, Hello):
            raise ProtocolError("peer sent a second hello")
        if isinstance(message, Entries):
            if self._peer_dones >= self._dones_expected:
                raise ProtocolError("peer sent entries outside of a round")
            self._stats["er"] += len(message.blocks)
            self._stats["br"] += message.size
            self._remember_received(message.blocks)
            if not message.blocks:
                return []
            self._unapplied += 1
            return [ApplyEntries(message.blocks)]
        if isinstance(message, Done):
            if self._peer_dones >= self._dones_expected:
                raise ProtocolError("peer sent done without an open round")
            self._peer_dones += 1
            if self._peer_dones == self._dones_expected:
                if self._unapplied:
                    self._want_pending = True
                else:
                    self._decide_want()
            return []
        if isinstance(message, Want):
            self._receive_want(message)
            return []
        raise ProtocolError(f"unexpected {type(message).__name__} message in a sync exchange")

    def _receive_hello(self, message: Message) -> list[Event]:
        if not isinstance(message, Hello):
            raise ProtocolError(f"expected hello, got {type(message).__name__.lower()}")
        if message.v != PROTOCOL_VERSION:
            raise ProtocolError(f"peer speaks sync protocol v{message.v}, we speak v1")
        if message.db != self.db:
            raise ProtocolError(f"peer said hello for database {message.db}, not {self.db}")
        self._peer_hello = message
        self._on_hello(message)
        return [PeerHeads(frozenset(message.heads), message.entries)]

    def _receive_want(self, message: Want) -> None:
        if self._peer_satisfied:
            raise ProtocolError("peer sent a want after saying it wants nothing more")
        if not message.cids:
            self._peer_satisfied = True
            return
        self._wants_answered += 1
        if self._wants_answered > self.serve_limits.max_wants_per_session:
            raise ServeLimitError(
                f"peer sent more than {self.serve_limits.max_wants_per_session}"
                " non-empty wants in one session"
            )
        self._answer_want(message.cids)

    def _remember_received(self, blocks: Iterable[tuple[Cid, bytes]]) -> None:
        # The peer holds what it sends: never stream it back (Rule 2a).
        received = self._received
        for cid, _ in blocks:
            received[cid] = None
        while len(received) > RECENT_RECEIVED:
            received.popitem(last=False)

    def _on_hello(self, hello: Hello) -> None:
        self._known.update(hello.heads)
        self._known.update(hello.have)
        reader = self._reader
        heads = sorted(reader.heads)
        if any(reader.get(cid) is not None for cid in self._known):
            self._plan(heads)
        elif heads:  # Rule 2a: nothing in common, so the walk would queue the whole log
            self._stream = reader.iter_blocks()
        # An empty log streams nothing: what arrives later is what the peer sends us.
        self._rounds_to_close += 1

    def _top_up(self) -> None:
        """Read the Rule 2a stream into the send queue until it holds more than a full
        frame (or the stream ends)."""
        stream = self._stream
        assert stream is not None
        limits = self.frame_limits
        queue = self._send_queue
        if len(queue) > limits.max_blocks_per_frame:
            return
        size = sum(entries_overhead(len(block)) for _, block in queue)
        received = self._received
        for cid, block in stream:
            self._last_streamed = cid
            if cid in received:  # the peer sent it to us in this session
                continue
            queue.append((cid, block))
            size += entries_overhead(len(block))
            if size > limits.target_frame_bytes or len(queue) > limits.max_blocks_per_frame:
                return
        self._stream = None
        last = self._reader.get(self._last_streamed) if self._last_streamed else None
        if last is not None:  # everything up to it in total order was streamed
            self._streamed_upto = last.order_key

    def _answer_want(self, cids: tuple[Cid, ...]) -> None:
        self._plan(sorted(set(cids)), wanted=True)
        self._rounds_to_close += 1

    def _plan(self, starts: list[Cid], *, wanted: bool = False) -> None:
        """Queue, oldest first, every ancestor of ``starts`` the peer is not known to
        hold (the walk of Rule 2); then the peer will hold ``starts`` and their
        ancestry, so they become seeds of later walks."""
        found = unknown_ancestors(
            self._reader.get,
            starts,
            self._known,
            forced=frozenset(starts) if wanted else frozenset(),
            known_upto=self._streamed_upto,
        )
        self._send_queue.extend((entry.cid, entry.block) for entry in found)
        self._known.update(starts)

    def _next_entries(self) -> Entries:
        limits = self.frame_limits
        blocks: list[tuple[Cid, bytes]] = []
        size = 0
        while self._send_queue:
            cid, block = self._send_queue[0]
            cost = entries_overhead(len(block))
            if blocks and (
                size + cost > limits.target_frame_bytes
                or size + cost + 16 > limits.max_frame_bytes
                or len(blocks) >= limits.max_blocks_per_frame
            ):
                break
            self._send_queue.popleft()
            blocks.append((cid, block))
            size += cost
        return Entries(blocks=tuple(blocks))

    def _decide_want(self) -> None:
        if self._we_satisfied:  # pragma: no cover - guarded by the Done count
            return
        fresh = sorted(self._needed - self._wanted)
        if fresh and self._want_rounds < self.limits.max_want_rounds:
            fresh = fresh[: self.frame_limits.max_cids_per_message]
            self._wanted.update(fresh)
            self._want_rounds += 1
            self._dones_expected += 1
            self._outbox.append(Want(cids=tuple(fresh)))
        else:
            self._we_satisfied = True
            self._outbox.append(Want(cids=()))
