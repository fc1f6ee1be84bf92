"""``orbitstore sync status``: one line per database, and ``--wait`` with a progress bar.

A database's state, in words (:func:`sync_state`), from ``GET /v1/sync``:

- ``no peers``: no connected peer has the database open;
- ``behind by N``: N heads the peers announced, and parents our entries name, are not
  here yet (the work left, in the units the sync protocol knows before it sends);
- ``peer unreachable``: the last session with every peer that has it failed;
- ``syncing with N peers``: we heard of nothing missing but a session has not said so;
- ``in sync with N peers``: we hold everything every connected peer announced.

``--wait`` polls until no database is behind, syncing or failing (exit status 0), or
until ``--timeout`` (exit status 1). On a terminal it redraws one bar per database on
stderr, in entries when the peers say how many they hold: ``received N of M entries``,
N the entries our log gained since the command started and M that plus what the
fullest connected peer holds beyond our log now (each peer's ``entries``, from the
``n`` of its sync Hello: docs/sync-protocol.md). M never shrinks, so the bar never moves
back; it is exact for a replica catching up from one peer, and grows as needed when
peers hold entries we hold not. A peer from before that field says nothing: the bar
then counts heads, ``done/total`` of those heads and parents, with ``total`` the most
that were outstanding at once plus what was fetched since, and the entries received
from peers beside it.

Only the standard library is imported here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BAR_WIDTH = 24
POLL_S = 0.25


def sync_state(status: dict[str, Any]) -> str:
    """One database's sync state in words (the ``sync status`` line)."""
    peers = [p for p in status["peers"] if p["has_database"]]
    behind = outstanding(status)
    if not peers:
        return "no peers"
    if behind:
        return f"behind by {behind}"
    if not status["synced"] and all(p["last_error"] for p in peers):
        return "peer unreachable"
    n = len(peers)
    if status["synced"]:
        return f"in sync with {n} peer{'s' if n != 1 else ''}"
    return f"syncing with {n} peer{'s' if n != 1 else ''}"


def refusals(status: dict[str, Any]) -> list[str]:
    """The peers' last failures that name a user (a refused write or identity):
    ``<peer>: <code> by device <D> of user <U>`` (or ``by <U>``)."""
    out = []
    for p in status["peers"]:
        failure = p.get("last_failure") or {}
        if failure.get("user"):
            who = failure["user"]
            if failure.get("device"):
                who = f"device {failure['device']} of user {who}"
            out.append(f"{p['peer']}: {failure['code']} by {who}")
    return out


def outstanding(status: dict[str, Any]) -> int:
    """Heads announced and not held, plus parents our entries wait for."""
    return int(status["missing"]) + int(status["needed"])


def settled(state: str) -> bool:
    """Whether ``--wait`` is done with a database in this state."""
    return state == "no peers" or state.startswith("in sync")


def received(status: dict[str, Any]) -> int:
    return sum(int(p.get("received", 0)) for p in status["peers"])


def peer_entries(status: dict[str, Any]) -> int | None:
    """The most entries a connected peer that has the database says it holds (None:
    none says: peers from before the Hello's entry count)."""
    counts = [
        int(p["entries"])
        for p in status["peers"]
        if p.get("has_database") and p.get("entries") is not None
    ]
    return max(counts) if counts else None


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """``[#####-----]``: ``done`` of ``total`` (full when total is 0)."""
    filled = width if total <= 0 else min(width, done * width // total)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


@dataclass(slots=True)
class Progress:
    """One database's bar while ``--wait`` runs: totals that only grow (in heads, and
    in entries once a peer said how many it holds)."""

    start_received: int
    start_entries: int | None = None
    done: int = 0
    total: int = 0
    last: int | None = None
    entries_done: int = 0
    entries_total: int | None = None

    def update(self, status: dict[str, Any]) -> None:
        now = outstanding(status)
        if self.last is not None and now < self.last:
            self.done += self.last - now
        self.last = now
        self.total = max(self.total, self.done + now)
        ours = int(status["entries"])
        if self.start_entries is None:
            self.start_entries = ours
        theirs = peer_entries(status)
        if theirs is not None or self.entries_total is not None:
            self.entries_done = max(0, ours - self.start_entries)
            ahead = 0 if theirs is None else max(0, theirs - ours)
            self.entries_total = max(self.entries_total or 0, self.entries_done + ahead)

    def line(self, name: str, state: str, status: dict[str, Any]) -> str:
        if self.entries_total is not None:
            done, total = self.entries_done, self.entries_total
            return f"{name}: {bar(done, total)} received {done} of {total} entries — {state}"
        got = received(status) - self.start_received
        return (
            f"{name}: {bar(self.done, self.total)} {self.done}/{self.total} heads,"
            f" {got} entries received — {state}"
        )


@dataclass(slots=True)
class Waiter:
    """The ``--wait`` loop over snapshots of ``GET /v1/sync`` (``fetch``)."""

    fetch: Callable[[], list[dict[str, Any]]]
    timeout: float
    draw: Callable[[list[str]], None] | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    bars: dict[str, Progress] = field(default_factory=dict)

    def run(self) -> tuple[bool, list[dict[str, Any]]]:
        """``(settled, last statuses)`` once every database settled or time is up."""
        deadline = self.clock() + self.timeout
        while True:
            statuses = self.fetch()
            lines = []
            for status in statuses:
                name = status["name"] or status["address"]
                progress = self.bars.setdefault(
                    status["address"], Progress(start_received=received(status))
                )
                progress.update(status)
                lines.append(progress.line(name, sync_state(status), status))
            if self.draw is not None:
                self.draw(lines)
            if all(settled(sync_state(s)) for s in statuses):
                return True, statuses
            if self.clock() >= deadline:
                return False, statuses
            self.sleep(POLL_S)


class TerminalBars:
    """Redraws a block of lines on a terminal's stderr in place."""

    def __init__(self) -> None:
        self.height = 0

    def __call__(self, lines: list[str]) -> None:
        up = f"\x1b[{self.height}F" if self.height else ""
        text = "".join(f"\x1b[2K{line}\n" for line in lines)
        sys.stderr.write(up + text)
        sys.stderr.flush()
        self.height = len(lines)
