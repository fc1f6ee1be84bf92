"""How the writes of one node are ordered, grouped into batches, and published.

How it works
============

Every database of a node writes to one store, and the store has one transaction at a
time (one SQLite connection). A single write (an append, a received frame) is
synchronous inside its transaction, so single writes never overlap. A *batch* is
different: its transaction stays open across awaits while the application writes, and
whatever another task wrote meanwhile — replication receiving entries for another
database, say — would land inside it: rolled back with it, or published before it
commits. This module keeps every write in the transaction it belongs to.

Rule 1 — one writer at a time. Every write holds the node's write lock (:meth:`locked`)
for its transaction. A batch holds it from its start to its end, so other tasks' writes
wait and run after it; they never join it, and never deadlock with it (the batch does
not wait for them). A write made *inside* the batch — by the task that opened it, or by
a task of a nursery opened inside its block (structured concurrency: such tasks end
before the block does) — is part of the batch and goes ahead. A task started from
inside the block into a nursery that was already open (a long-lived service's) is not
inside: it waits like any other.

Rule 2 — levels. An open batch is a *level* with a lock of its own. Writes and nested
batches inside it take the level's lock, so two tasks of one batch write in turn
and a nested batch in one task excludes the other task's writes until it ends. The
node's lock is the root level. A lock its own task already holds is not taken again.

Rule 3 — frames. Every write and every batch is a *frame*: a store transaction (nested:
a savepoint) plus a record of the databases it touched — each with a snapshot of its
in-memory state, taken before its first change in the frame — and of the changes to
publish. A frame that raises rolls its transaction or savepoint back and restores every
database it touched from those snapshots, so memory follows the store exactly; its
changes are dropped. A frame that succeeds hands both records to the enclosing frame,
and only the outermost one, after its commit, publishes the changes to subscribers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Protocol

import trio

from orbitstore.errors import UsageError
from orbitstore.storage.base import NodeStore
from orbitstore.views.base import Change


class Participant(Protocol):
    """A database handle, as the write coordinator sees it."""

    def _snapshot_state(self) -> Any:
        """Its in-memory state now (cheap: taken before every first change in a frame)."""
        ...

    def _restore_state(self, snapshot: Any) -> None:
        """Go back to ``snapshot``: the store was rolled back to when it was taken."""
        ...

    def _push_changes(self, changes: Sequence[Change]) -> None:
        """Hand committed changes to its subscribers."""
        ...


class Frame:
    """One write or batch: what it touched and what it will publish (Rule 3)."""

    __slots__ = ("changes", "touched")

    def __init__(self) -> None:
        self.touched: dict[Participant, Any] = {}
        self.changes: list[tuple[Participant, Sequence[Change]]] = []

    def touch(self, database: Participant) -> None:
        """Call before ``database`` changes anything in memory within this frame."""
        if database not in self.touched:
            self.touched[database] = database._snapshot_state()

    def publish(self, database: Participant, changes: Sequence[Change]) -> None:
        """Publish ``changes`` once the outermost frame has committed."""
        if changes:
            self.changes.append((database, changes))


class _Level:
    """An open batch: its lock, the task that opened it, and the nurseries that task
    had open before (tasks in those are not inside the batch)."""

    __slots__ = ("lock", "outside", "owner")

    def __init__(self, owner: trio.lowlevel.Task | None) -> None:
        self.lock = trio.Lock()
        self.owner = owner
        self.outside = {id(n) for n in owner.child_nurseries} if owner is not None else set()

    def contains(self, task: trio.lowlevel.Task) -> bool:
        """True if ``task`` is the owner or runs in a nursery opened inside the batch."""
        if self.owner is None:
            return True  # the root level: every task
        current: trio.lowlevel.Task | None = task
        while current is not None:
            if current is self.owner:
                return True
            nursery = current.parent_nursery
            if nursery is None:
                return False
            parent = nursery.parent_task
            if parent is self.owner:
                return id(nursery) not in self.outside
            current = parent
        return False


class NodeWrites:
    """The write lock, batches and publishing of one node's store (see the module doc)."""

    def __init__(self, store: NodeStore) -> None:
        self._store = store
        self._root = _Level(None)
        self._levels: list[_Level] = []  # open batches, outermost first
        self._frames: list[Frame] = []

    def _level(self) -> _Level:
        """The innermost open batch the current task is inside (the root level if none)."""
        if self._levels:
            task = trio.lowlevel.current_task()
            for level in reversed(self._levels):
                if level.contains(task):
                    return level
        return self._root

    @property
    def in_batch(self) -> bool:
        """True inside an open batch (Rule 1)."""
        return self._level() is not self._root

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Hold the write lock of the current level (waits while another context's batch
        is open)."""
        lock = self._level().lock
        if lock.statistics().owner is trio.lowlevel.current_task():
            yield
            return
        async with lock:
            yield

    @contextmanager
    def frame(self, database: Participant | None = None) -> Iterator[Frame]:
        """One transaction (or savepoint) with its records (Rule 3). Hold :meth:`locked`
        (or be inside a batch that does) around it."""
        frame = Frame()
        if database is not None:
            frame.touch(database)
        self._frames.append(frame)
        try:
            with self._store.transaction():
                yield frame
        except BaseException:
            if frame in self._frames:
                self._frames.remove(frame)
            for touched, snapshot in reversed(frame.touched.items()):
                touched._restore_state(snapshot)
            if self._frames:  # restored again if the enclosing frame rolls back too
                for touched, snapshot in frame.touched.items():
                    self._frames[-1].touched.setdefault(touched, snapshot)
            raise
        self._pop(frame)
        if self._frames:
            parent = self._frames[-1]
            for touched, snapshot in frame.touched.items():
                parent.touched.setdefault(touched, snapshot)  # the older snapshot wins
            parent.changes.extend(frame.changes)
        else:
            for touched, changes in frame.changes:
                touched._push_changes(changes)

    def _pop(self, frame: Frame) -> None:
        if not self._frames or self._frames[-1] is not frame:
            raise UsageError(
                "a batch ended while a task started inside it was still writing; let"
                " every task started in a batch finish inside the batch's block"
            )
        self._frames.pop()

    def publish(self, database: Participant, changes: Sequence[Change]) -> None:
        """Changes made outside a store write (e.g. a ydoc update applied late): at once,
        or with the open batch of this context when it commits."""
        if self.in_batch and self._frames:
            self._frames[-1].publish(database, changes)
        elif changes:
            database._push_changes(changes)

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """A level and a frame until the block exits: committed (outermost) or released
        (nested: a savepoint) if it ends normally, rolled back if it raises."""
        async with self.locked():
            level = _Level(trio.lowlevel.current_task())
            self._levels.append(level)
            try:
                with self.frame():
                    yield
            finally:
                self._levels.remove(level)
