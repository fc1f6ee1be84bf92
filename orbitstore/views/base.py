"""Views: state derived from the set of valid entries.

How it works
============

A view is a deterministic function of the set of valid entries of one log. It is kept
*materialized*: every entry the log applies (local or remote) is handed to the view's
:meth:`View.apply` in the same storage transaction, in an order in which parents come
before children (the log's apply order). The view updates its state through an injected
*state* object (a protocol each view defines; SQLite and memory implementations live in
:mod:`orbitstore.storage.views`) and returns the :class:`Change` values that describe what
became visible.

Because entries arrive in any order that respects causality, a view must give the same
state whatever that order is. The views do this with CRDT rules keyed on the total order
``(clock, writer, cid)`` of :mod:`orbitstore.core.order`: a register keeps the value of
the greatest entry that wrote it, so a late entry that sorts before the current winner
changes nothing, and one that sorts after it wins.

Checkpoints: after applying, the database records the log's local arrival number
(``seq``) the view reflects. On open, only entries that arrived after the checkpoint are
applied (normally none), so reopening costs nothing like a replay.

A view whose state lives in memory and is persisted as a snapshot (ydoc) cannot afford a
snapshot per write. Such a view implements :class:`SnapshotView`: it owns its checkpoint
(the ``seq`` its last snapshot reflects), the database offers it the log's last ``seq``
after every apply and on close, and on open replays the entries after its checkpoint.

Views do no I/O: no files, no clock, no randomness. Their state objects do the storing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry


@dataclass(frozen=True, slots=True, kw_only=True)
class Conflict:
    """A concurrent write that lost to the visible value of a register (a keyvalue key,
    a document, or in field mode one field of a document).

    ``value`` is what it wrote (None when ``deleted``: it deleted the key or document, or
    in field mode left the field absent); ``cid``, ``writer`` and ``clock`` name its
    entry; ``field`` is the document field in field mode, else None. A write that the
    winner's writer had seen is never a conflict: only writes concurrent with it are.
    """

    value: Any
    deleted: bool
    cid: Cid
    writer: str
    clock: int
    field: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One visible change, as delivered to subscribers of a database.

    ``kind`` is one of ``"append"`` (log), ``"add"`` (feed), ``"put"``/``"delete"``
    (keyvalue, documents), ``"increment"`` (counter), ``"update"`` (ydoc), and
    ``"conflict"`` (keyvalue, documents) when only the set of concurrent values of a
    key or document changed: ``value`` is then the unchanged visible value.

    ``conflicts`` (keyvalue, documents) are the concurrent writes that lost to the
    visible value after this change, newest first; empty when there are none (a
    ``"conflict"`` change with no conflicts says a merge cleared them).
    """

    kind: str
    key: Any = None
    value: Any = None
    cid: Cid
    writer: str
    clock: int
    local: bool = True
    conflicts: tuple[Conflict, ...] = ()


@dataclass(frozen=True, slots=True)
class Lagged:
    """Delivered to a subscriber whose buffer overflowed: ``missed`` changes were
    dropped for it (never for the database). Re-read the state to catch up."""

    missed: int


class View(Protocol):
    """The interface every view implements."""

    #: The name under which the view's checkpoint is stored.
    name: str

    def apply(self, entries: Sequence[Entry], *, local: bool) -> list[Change]:
        """Fold newly valid entries (parents first) into the state; say what changed."""
        ...


@runtime_checkable
class SnapshotView(View, Protocol):
    """A view that persists its state in snapshots and so owns its checkpoint."""

    def checkpoint(self) -> int:
        """The ``seq`` its stored state reflects; entries after it are replayed on open."""
        ...

    def save(self, seq: int, *, force: bool = False) -> None:
        """Offered after each apply (inside its transaction) and, with ``force``, on
        close: store a snapshot reflecting ``seq`` if the view judges it due."""
        ...


@runtime_checkable
class SnapshotFold(View, Protocol):
    """A view that can fold a whole history at once (:mod:`orbitstore.views.history`)."""

    def fold_snapshot(self, entries: Sequence[Entry]) -> bool:
        """Fold ``entries`` (ancestor-closed, in total order) into the empty state: the
        state :meth:`apply` would reach, for a read-only snapshot. False, with nothing
        written, when this history must be folded with :meth:`apply` instead."""
        ...


def change_for(
    entry: Entry,
    kind: str,
    *,
    key: Any = None,
    value: Any = None,
    local: bool,
    conflicts: tuple[Conflict, ...] = (),
) -> Change:
    return Change(
        kind=kind,
        key=key,
        value=value,
        cid=entry.cid,
        writer=entry.writer,
        clock=entry.clock,
        local=local,
        conflicts=conflicts,
    )
