"""Bounds on what we serve a peer: per session and per unit of time (no I/O, no clock).

How it works
============

What a peer may send us is bounded (:class:`~orbitstore.sync.frames.FrameLimits`,
:class:`~orbitstore.sync.session.SessionLimits`); what it may make us send is bounded
the same way, or one small ``want`` could be answered with megabytes, again and again.

Rule 1 — per session. :class:`ServeLimits` caps the non-empty wants we answer in one
session (an honest peer sends at most ``SessionLimits.max_want_rounds``), and the
entries and bytes we send in one session. The session (:mod:`orbitstore.sync.session`)
enforces them and raises :class:`~orbitstore.errors.ServeLimitError` past them.

Rule 2 — per peer, over time. A peer could open session after session. A
:class:`TokenBucket` per peer meters the bytes we serve it and the wants we answer
across its sessions; the caller passes the time in (this module reads no clock). A peer
that runs a bucket dry is cut off the same way.

A peer cut off gets ``Error{code: "serve_limit"}`` and its session is dropped; what it
received before is kept (it is valid), and it may come back once the bucket refilled.

Rule 3 — per peer, a share of our time. Bytes and wants do not say what a request
costs: a want of 4,096 CIDs we share no history on walks (reads and decodes) the whole
log, and a peer's frames cost us decoding. The caller measures the CPU time each step
of a peer's sessions takes — answering its hello and wants, building the frames we send
it, decoding the frames it sends — and charges it to the peer's third bucket, in seconds,
refilled at ``peer_serve_share`` seconds per second (a share of one core) up to
``peer_serve_burst_s``. Before each such step a session whose peer's bucket is in debt
waits (:meth:`TokenBucket.wait`) while the sessions of other peers go on: a peer, with
all its sessions together, gets at most its share of our time on average, however many
sessions it opens and however costly its requests. An honest replica needs a few
percent of a core to be served (reading and framing ~10 µs an entry, against its own
~100 µs to verify and apply one), so the share never slows it; an attacker's flood is
held to the share. What we verify and apply for ourselves is not charged (it is what we
asked for; junk fails at its first bad entry, see ``node/session_runner.py``).

CPU time (the serving thread's), not wall time: on a busy machine a step's wall time
includes the time the process waited for a core, and charging that held an honest
replica of 100,000 entries to ~6,000 entries/s on two shared cores (measured: with CPU
time, ~8,000/s on the same machine, the same sitting).
"""

from __future__ import annotations

from dataclasses import dataclass

from orbitstore.errors import InvalidValueError

_MIN_WAIT = 1e-4  # seconds: the shortest wait a bucket in debt asks for


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeLimits:
    """What we serve one peer. Defaults with the reason for each."""

    # Non-empty wants answered per session: what the protocol lets a peer ask
    # (SessionLimits.max_want_rounds = 4; honest peers need one, rarely two). A want loop
    # is cut off after 4 answers: at most 5 times the log for one session.
    max_wants_per_session: int = 4
    # Bytes served per session: the FrameLimits.max_total_bytes we accept ourselves
    # (1 GiB). A larger log is served over several sessions (the next one starts from
    # the peer's new heads).
    max_bytes_per_session: int = 1024 * 1024 * 1024
    # Entries served per session: 1 GiB of the smallest entries (~250 bytes).
    max_entries_per_session: int = 4 * 1024 * 1024
    # Per peer, across sessions: bytes served, refilled at this rate up to the burst.
    # The burst is one full session, so a fresh replica of a large log catches up at
    # once; the rate (16 MiB/s) then bounds what a peer that keeps reconnecting costs us.
    peer_bytes_per_second: float = 16 * 1024 * 1024
    peer_bytes_burst: int = 1024 * 1024 * 1024
    # Per peer, across sessions: non-empty wants answered. Honest peers want once or
    # twice per session, and sessions run on announcements and every 30 s; 64 at once
    # and 4 per second leave them far from the limit.
    peer_wants_per_second: float = 4.0
    peer_wants_burst: int = 64
    # Per peer, across sessions: seconds of our time spent on its requests (Rule 3),
    # refilled at this share of one core, up to the burst. An honest replica needs a few
    # percent (serving is ~10 % of the cost of a catch-up, the replica's verification the
    # rest); 20 % holds a flood to a fifth of a core, and the small burst makes it
    # binding within a quarter second.
    peer_serve_share: float = 0.2
    peer_serve_burst_s: float = 0.25

    def __post_init__(self) -> None:
        for name in (
            "max_wants_per_session",
            "max_bytes_per_session",
            "max_entries_per_session",
            "peer_bytes_burst",
            "peer_wants_burst",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidValueError(f"serve limit {name} must be a positive integer")
        for name in (
            "peer_bytes_per_second",
            "peer_wants_per_second",
            "peer_serve_share",
            "peer_serve_burst_s",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InvalidValueError(f"serve limit {name} must be a positive number")


DEFAULT_SERVE_LIMITS = ServeLimits()


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; time is passed in."""

    __slots__ = ("_at", "_tokens", "capacity", "rate")

    def __init__(self, *, rate: float, capacity: float, now: float) -> None:
        if rate <= 0 or capacity <= 0:
            raise InvalidValueError("a token bucket has a positive rate and capacity")
        self.rate = rate
        self.capacity = capacity
        self._tokens = float(capacity)
        self._at = now

    def tokens(self, now: float) -> float:
        """Tokens available at ``now``."""
        if now > self._at:
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
        return self._tokens

    def take(self, amount: float, now: float) -> bool:
        """Take ``amount`` tokens if there are that many; False (nothing taken) if not."""
        if self.tokens(now) < amount:
            return False
        self._tokens -= amount
        return True

    def charge(self, amount: float, now: float) -> None:
        """Take ``amount`` tokens even if that leaves the bucket in debt (for a cost known
        only once it was paid, like time spent)."""
        self._tokens = self.tokens(now) - amount

    def wait(self, now: float) -> float:
        """Seconds from ``now`` until the bucket is out of debt (0 if it is not)."""
        tokens = self.tokens(now)
        # At least _MIN_WAIT: a debt of a few ulps would ask for a wait so short that
        # ``now + wait == now`` in floating point, and a caller that sleeps it (on trio's
        # virtual clock) would never see the bucket refill.
        return 0.0 if tokens >= 0 else max(-tokens / self.rate, _MIN_WAIT)


class PeerServeBudget:
    """The three buckets of one peer (Rules 2 and 3)."""

    __slots__ = ("bytes", "time", "wants")

    def __init__(self, limits: ServeLimits, now: float) -> None:
        self.bytes = TokenBucket(
            rate=limits.peer_bytes_per_second, capacity=limits.peer_bytes_burst, now=now
        )
        self.wants = TokenBucket(
            rate=limits.peer_wants_per_second, capacity=limits.peer_wants_burst, now=now
        )
        self.time = TokenBucket(
            rate=limits.peer_serve_share, capacity=limits.peer_serve_burst_s, now=now
        )

    def full(self, now: float) -> bool:
        """Every bucket is full: forgetting them loses nothing."""
        return all(b.tokens(now) >= b.capacity for b in (self.bytes, self.wants, self.time))


class PeerBudgets:
    """Every peer's buckets, kept across its sessions and reconnects (Rules 2 and 3)."""

    __slots__ = ("_budgets", "limits")

    def __init__(self, limits: ServeLimits) -> None:
        self.limits = limits
        self._budgets: dict[str, PeerServeBudget] = {}

    def get(self, peer: str, now: float) -> PeerServeBudget:
        """The peer's buckets (fresh, full ones for a peer we hold none of)."""
        budget = self._budgets.get(peer)
        if budget is None:
            budget = self._budgets[peer] = PeerServeBudget(self.limits, now)
        return budget

    def disconnected(self, peer: str, now: float) -> None:
        """The peer went away: forget its buckets if they are full (a fresh one is the
        same); a peer in debt stays in debt when it reconnects."""
        budget = self._budgets.get(peer)
        if budget is not None and budget.full(now):
            del self._budgets[peer]

    def __len__(self) -> int:
        return len(self._budgets)


__all__ = ["DEFAULT_SERVE_LIMITS", "PeerBudgets", "PeerServeBudget", "ServeLimits", "TokenBucket"]
