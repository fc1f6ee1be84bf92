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

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from types import TracebackType
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

    __slots__ = ("holder", "lock", "outside", "owner")

    def __init__(self, owner: trio.lowlevel.Task | None) -> None:
        self.lock = trio.Lock()
        self.holder: trio.lowlevel.Task | None = None  # who took ``lock`` (see _Hold)
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


class _Hold:
    """``async with writes.locked():`` (a class, not a generator: every write takes it).
    The level's ``holder`` is the task that took its lock here; a task that is already
    the holder goes ahead without taking it again (Rule 2)."""

    __slots__ = ("_level", "_writes")

    def __init__(self, writes: NodeWrites) -> None:
        self._writes = writes
        self._level: _Level | None = None

    async def __aenter__(self) -> None:
        level = self._writes._level()
        task = trio.lowlevel.current_task()
        if level.holder is task:
            return
        await level.lock.acquire()
        level.holder = task
        self._level = level

    async def __aexit__(self, *exc: object) -> None:
        level, self._level = self._level, None
        if level is not None:
            level.holder = None
            level.lock.release()


class _FrameScope:
    """``with writes.frame(db) as frame:`` (see :meth:`NodeWrites.frame`)."""

    __slots__ = ("_database", "_frame", "_transaction", "_writes")

    def __init__(self, writes: NodeWrites, database: Participant | None) -> None:
        self._writes = writes
        self._database = database

    def __enter__(self) -> Frame:
        self._frame, self._transaction = self._writes._enter_frame(self._database)
        return self._frame

    def __exit__(self, kind: object, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._writes._exit_frame(self._frame, self._transaction, exc, tb)


class _Write:
    """``async with writes.write(db) as frame:`` (see :meth:`NodeWrites.write`)."""

    __slots__ = ("_database", "_frame", "_hold", "_transaction", "_writes")

    def __init__(self, writes: NodeWrites, database: Participant) -> None:
        self._writes = writes
        self._database = database
        self._hold = _Hold(writes)

    async def __aenter__(self) -> Frame:
        await self._hold.__aenter__()
        try:
            self._frame, self._transaction = self._writes._enter_frame(self._database)
        except BaseException:
            await self._hold.__aexit__()
            raise
        return self._frame

    async def __aexit__(
        self, kind: object, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._writes._exit_frame(self._frame, self._transaction, exc, tb)
        finally:
            await self._hold.__aexit__()


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

    def locked(self) -> _Hold:
        """Hold the write lock of the current level (waits while another context's batch
        is open): ``async with writes.locked():``."""
        return _Hold(self)

    def frame(self, database: Participant | None = None) -> _FrameScope:
        """One transaction (or savepoint) with its records (Rule 3):
        ``with writes.frame(db) as frame:``. Hold :meth:`locked` (or be inside a batch
        that does) around it."""
        return _FrameScope(self, database)

    def write(self, database: Participant) -> _Write:
        """:meth:`locked` and :meth:`frame` in one: ``async with writes.write(db) as
        frame:`` (one write of ``database``; the body must not await)."""
        return _Write(self, database)

    def _enter_frame(
        self, database: Participant | None
    ) -> tuple[Frame, AbstractContextManager[None]]:
        frame = Frame()
        if database is not None:
            frame.touch(database)
        self._frames.append(frame)
        transaction = self._store.transaction()
        try:
            transaction.__enter__()
        except BaseException:
            self._frame_failed(frame)
            raise
        return frame, transaction

    def _exit_frame(
        self,
        frame: Frame,
        transaction: AbstractContextManager[None],
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            transaction.__exit__(type(exc) if exc is not None else None, exc, tb)
        except BaseException:
            self._frame_failed(frame)  # the rollback or the commit failed
            raise
        if exc is not None:  # rolled back; the caller's exception goes on
            self._frame_failed(frame)
            return
        self._pop(frame)
        if self._frames:
            parent = self._frames[-1]
            for touched, snapshot in frame.touched.items():
                parent.touched.setdefault(touched, snapshot)  # the older snapshot wins
            parent.changes.extend(frame.changes)
        else:
            for touched, changes in frame.changes:
                touched._push_changes(changes)

    def _frame_failed(self, frame: Frame) -> None:
        if frame in self._frames:
            self._frames.remove(frame)
        for touched, snapshot in reversed(frame.touched.items()):
            touched._restore_state(snapshot)
        if self._frames:  # restored again if the enclosing frame rolls back too
            for touched, snapshot in frame.touched.items():
                self._frames[-1].touched.setdefault(touched, snapshot)

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
