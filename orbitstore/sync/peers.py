"""What a node knows of its peers for one database, as plain state (no I/O).

How it works
============

:class:`PeerRecord` — one per (database, peer). It remembers the heads the peer told us
of (its Hello, or an announcement), and which of those we did not hold then: they are
*attributed* to the peer, and ``wait_synced`` waits for them.

Rule 1 — a claim counts until the peer fails to back it. A head the peer told us of
counts as missing until we hold it, or until a session with that peer that started
after the claim *completed* (both sides said they want nothing more; or the session
ended by the peer's fault) and the head is still missing: the peer had every chance to
send it and did not, so it is a head the peer cannot serve (a liar, or a peer that lost
data). Such a head is *undelivered* and stops counting, for that peer only; another peer
that sends it clears it. Heads told while the session ran (a newer announcement) still
count, unless the session's Hello named them: the next session is about them. A head
another session is still verifying or applying (:class:`Arrivals`: this session skipped
its block, the other one claimed it) is not undelivered either: it was delivered, and
is on its way into the log; if that other session fails, the head still counts.

Rule 2 — an older message never removes a claim. Gossip may replay an older
announcement after a newer Hello; its heads are added, none are forgotten.

:class:`InflightWants` — one per database. A CID the log needs is wanted from one peer
at a time: :meth:`InflightWants.claim` hands a session the needed CIDs no other session
is asking for, and the claim is released when the entry arrives or the session ends.

:func:`sources_for` — whom to sync with for heads a peer announced that we lack: that
peer if we are connected to it; otherwise (gossip forwarded its announcement) every
connected peer that has the database, since the peers it came through likely hold them.

Everything here is a pure function of the calls made; the node (``node/replication``)
owns the records and calls them from its tasks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from orbitstore.core.cid import Cid

Has = Callable[[Cid], bool]


def _nothing(cid: Cid) -> bool:
    return False


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncFailure:
    """Why a session (or an announcement) from a peer failed, as a typed value."""

    error: str
    """The exception's class name (``ProtocolError``, ``ServeLimitError``, ...)."""
    code: str
    """Its stable code (``protocol``, ``serve_limit``, ... or ``internal`` for an
    exception we did not expect)."""
    message: str = ""
    user: str | None = None
    """The user whose write (or identity) was refused, where one is known."""
    device: str | None = None
    """The device key that signed it, when the writer is a device of ``user``."""

    @classmethod
    def of(cls, exc: BaseException, *, code: str | None = None) -> SyncFailure:
        found = getattr(exc, "code", None)
        details = getattr(exc, "details", None)
        details = details if isinstance(details, dict) else {}
        user, device = details.get("user"), details.get("device")
        return cls(
            error=type(exc).__name__,
            code=code or (found if isinstance(found, str) else "internal"),
            message=str(exc)[:1024],
            user=user if isinstance(user, str) else None,
            device=device if isinstance(device, str) else None,
        )

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


@dataclass(slots=True)
class PeerRecord:
    """One peer, for one database; see the module docstring."""

    heads: frozenset[Cid] = frozenset()
    """The peer's heads, as it last told us."""
    heard: bool = False
    """We heard from the peer on this connection (a Hello, or "not found")."""
    entries: int | None = None
    """How many entries of the database the peer holds, from its last Hello (None: it
    did not say, a node from before the field, or no Hello yet)."""
    has_db: bool = True
    unheld: dict[Cid, int] = field(default_factory=dict)
    """Claimed heads we lack -> the claim's number (``told`` counts them)."""
    undelivered: set[Cid] = field(default_factory=set)
    told_count: int = 0
    entries_sent: int = 0
    entries_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    sessions: int = 0
    failures: int = 0
    cut_off: int = 0
    """Sessions cut off because the peer asked for more than we serve."""
    last_sync: float | None = None
    """When the last session completed (the caller's clock)."""
    last_failure: SyncFailure | None = None

    def told(self, heads: frozenset[Cid], has: Has) -> None:
        """The peer told us its heads (Rule 2: adds claims, never removes one)."""
        self.heads = heads
        self.told_count += 1
        for h in heads:
            if not has(h):
                self.unheld[h] = self.told_count

    def missing(self, has: Has) -> int:
        """Heads the peer claims that we lack and that still count (Rule 1)."""
        if self.unheld:
            self.unheld = {h: n for h, n in self.unheld.items() if not has(h)}
            self.undelivered.intersection_update(self.unheld)
        return sum(1 for h in self.unheld if h not in self.undelivered)

    def session_started(self) -> int:
        """Call when a session starts; pass the result to :meth:`session_completed`."""
        return self.told_count

    def all_missing(self, has: Has) -> int:
        """Every head the peer claims that we lack, undelivered ones included."""
        self.missing(has)
        return len(self.unheld)

    def session_completed(
        self, started: int, hello_heads: frozenset[Cid], has: Has, arriving: Has = _nothing
    ) -> None:
        """A session with the peer completed (Rule 1)."""
        self.heard = True
        self.failed_to_deliver(started, hello_heads, has, arriving)

    def failed_to_deliver(
        self, started: int, hello_heads: frozenset[Cid], has: Has, arriving: Has = _nothing
    ) -> None:
        """A session that started at ``started`` (:meth:`session_started`), whose Hello
        named ``hello_heads``, is over (completed, or ended by the peer's fault): the
        claims made before it, and its Hello's, that we still lack are undelivered,
        unless another session is bringing them (``arriving``: :meth:`Arrivals.pending`)."""
        self.missing(has)
        for h, n in self.unheld.items():
            if (n <= started or h in hello_heads) and not arriving(h):
                self.undelivered.add(h)


class InflightWants:
    """Which session (peer) is asking for each needed CID of one database."""

    def __init__(self) -> None:
        self._owner: dict[Cid, object] = {}
        #: The blocks being verified or just applied, by any session of the database.
        self.arriving = Arrivals()

    def __len__(self) -> int:
        return len(self._owner)

    def claim(self, owner: object, needed: Iterable[Cid]) -> set[Cid]:
        """The CIDs of ``needed`` that ``owner`` may ask for: those nobody else asks
        for (now claimed by ``owner``) and those it claimed already."""
        out: set[Cid] = set()
        for cid in needed:
            current = self._owner.setdefault(cid, owner)
            if current is owner:
                out.add(cid)
        return out

    def arrived(self, cids: Iterable[Cid]) -> None:
        """These entries are in the log: nobody asks for them any more."""
        for cid in cids:
            self._owner.pop(cid, None)

    def release(self, owner: object) -> None:
        """``owner``'s session ended: its claims go back to the pool."""
        for cid in [c for c, o in self._owner.items() if o is owner]:
            del self._owner[cid]


class Arrivals:
    """The blocks of one database that a session is verifying or has just applied.

    Two sessions can stream the same log at once (each side opened one as the other
    did); every block then arrives twice, a few frames apart. A session skips the
    blocks another one has :meth:`claim` ed and not :meth:`release` d, and the last
    ``recent`` ones applied, instead of verifying them a second time. A block claimed by
    a session that then fails is released: if a skipping session dropped it, the log
    misses it and wants it as it wants any missing parent."""

    def __init__(self, recent: int = 65536) -> None:
        self._claimed: set[Cid] = set()
        self._recent: OrderedDict[Cid, None] = OrderedDict()
        self._limit = recent

    def claim(self, cids: Iterable[Cid]) -> list[bool]:
        """For each of ``cids``: True (now claimed by the caller) unless another
        session claimed it or it was applied just now."""
        claimed, recent = self._claimed, self._recent
        out = []
        for cid in cids:
            fresh = cid not in claimed and cid not in recent
            if fresh:
                claimed.add(cid)
            out.append(fresh)
        return out

    def applied(self, cids: Iterable[Cid]) -> None:
        """The caller applied these claimed blocks (they are remembered a while)."""
        recent = self._recent
        for cid in cids:
            self._claimed.discard(cid)
            recent[cid] = None
        while len(recent) > self._limit:
            recent.popitem(last=False)

    def release(self, cids: Iterable[Cid]) -> None:
        """The caller will not apply these claimed blocks (its session failed)."""
        self._claimed.difference_update(cids)

    def pending(self, cid: Cid) -> bool:
        """Whether a session claimed ``cid`` and has neither applied nor released it."""
        return cid in self._claimed


def sources_for(sender: str, connected: Iterable[str], has_db: Callable[[str], bool]) -> list[str]:
    """The peers to sync with for heads ``sender`` announced that we lack (sorted)."""
    connected = set(connected)
    if sender in connected:
        return [sender]
    return [peer for peer in sorted(connected) if has_db(peer)]


__all__ = ["Arrivals", "InflightWants", "PeerRecord", "SyncFailure", "sources_for"]
