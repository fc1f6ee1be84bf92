"""The view of one database handle: folding entries in, its checkpoint, catching up on
open, rebuilding after an access change, reopening after a rollback.

Every method runs inside the caller's transaction (a database write, or the handle's
construction): the view and its checkpoint move with the log, or not at all. In an
encrypted database entries are folded opened (the handle's ``_readable``), and the keys
learned so far are kept with the checkpoint; under capabilities access only visible
entries are folded, and a change of visibility rebuilds the view from the log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import takewhile
from typing import TYPE_CHECKING

from orbitstore.core.capability_log import CapabilityLog
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.manifest import Manifest
from orbitstore.storage.base import NodeStore
from orbitstore.views.base import Change, SnapshotView, View, change_for

if TYPE_CHECKING:
    from orbitstore.node.database import Database

ViewFactory = Callable[[NodeStore, Cid, Manifest], View]

#: Entries folded per view call when catching up or rebuilding (bounds memory).
FOLD_CHUNK = 1000


class ViewFolder:
    """The view (None for a type without one) of the handle ``db``, and how it is made
    again (``factory``; None: it cannot be rebuilt or reopened)."""

    def __init__(self, db: Database, view: View | None, factory: ViewFactory | None) -> None:
        self._db = db
        self._store = db._store
        self.view = view
        self.factory = factory
        # A view that keeps its own checkpoint (snapshots); None for the others.
        self.snapshots = view if isinstance(view, SnapshotView) else None

    def _last_seq(self) -> int:
        return self._store.log_store(self._db.cid).last_seq()

    def apply(self, entries: Sequence[Entry], *, local: bool) -> list[Change]:
        """Fold entries into the view (inside the caller's transaction).

        A local entry that changes no view state (a key announcement or epoch, an access
        op) still yields a ``Change(kind="meta")``: subscribers, and the replication
        announcer among them, learn of every local write.
        """
        db = self._db
        stored = entries
        if db._keys is not None:
            entries = db._encryption._readable(entries)
        if db.log.capabilities is not None:  # only visible entries
            changes = self._visible_changes(db.log.capabilities, list(entries), local=local)
            if self.view is not None:
                self.checkpoint(self._last_seq())
        elif self.view is None:
            changes = [
                change_for(e, "append", key=e.cid, value=e.payload, local=local) for e in entries
            ]
        else:
            changes = self.view.apply(entries, local=local)
            self.checkpoint(self._last_seq())
        if local and len(entries) < len(stored):
            shown = {e.cid for e in entries}
            changes += [change_for(e, "meta", local=True) for e in stored if e.cid not in shown]
        return changes

    def fresh(self, store: NodeStore) -> View | None:
        """A new, empty view of this database's type over ``store``; None for a type
        without a view or a handle built without a factory."""
        if self.factory is None:
            return None
        return self.factory(store, self._db.cid, self._db.manifest)

    def checkpoint(self, seq: int) -> None:
        """Record that the view reflects the log up to ``seq`` (a snapshotting view
        decides itself when to store that)."""
        assert self.view is not None
        if self.snapshots is not None:
            self.snapshots.save(seq)
        else:
            self._store.set_checkpoint(self._db.cid, self.view.name, seq)
            self._db._encryption._save_keys(seq)

    def catch_up(self) -> int:
        """Apply entries that arrived after the view's checkpoint. Returns how many."""
        db = self._db
        log_store = self._store.log_store(db.cid)
        if self.view is None:
            if db._keys is not None:  # no view: only the keys to learn again
                db._keys.learn(db.log.traverse())
            return 0
        if self.snapshots is not None:
            since = self.snapshots.checkpoint()
        else:
            since = self._store.get_checkpoint(db.cid, self.view.name)
        if db._keys is not None:  # the keys the view's state already reflects
            start = 0 if self.snapshots is not None else db._encryption._load_keys(since)
            db._keys.learn(
                Entry.from_trusted_block(cid, block)
                for seq, cid, block in takewhile(
                    lambda row: row[0] <= since, log_store.iter_since(start)
                )
            )
        if since >= log_store.last_seq():
            return 0
        count = 0
        with self._store.transaction():
            batch: list[Entry] = []
            upto = since
            caps = db.log.capabilities
            for seq, cid, block in log_store.iter_since(since):
                entry = Entry.from_trusted_block(cid, block)
                if caps is not None and not caps.visible(entry):
                    continue
                batch.append(entry)
                if len(batch) >= FOLD_CHUNK:
                    self._fold_caught_up(batch, upto)
                    count += len(batch)
                    batch, upto = [], seq
            if batch:
                self._fold_caught_up(batch, upto)
                count += len(batch)
            self.checkpoint(log_store.last_seq())
        return count

    def _fold_caught_up(self, batch: Sequence[Entry], upto: int) -> None:
        assert self.view is not None
        db = self._db
        self.view.apply(
            batch if db._keys is None else db._encryption._readable(batch, upto=upto), local=False
        )

    def reopen(self) -> None:
        """After a rollback: the view reopened on the rolled-back store, then caught up
        (a view's in-memory state, such as a ydoc's document, cannot be undone)."""
        if self.view is not None and self.factory is not None:
            self.view = self.factory(self._store, self._db.cid, self._db.manifest)
            self.snapshots = self.view if isinstance(self.view, SnapshotView) else None
            self.catch_up()

    def save_snapshot(self) -> None:
        """Store a snapshotting view's state now (on close)."""
        if self.snapshots is not None:
            self.snapshots.save(self._last_seq(), force=True)

    # -- capabilities access (docs/security-model.md) ------------------------------------

    def _visible_changes(
        self, caps: CapabilityLog, entries: list[Entry], *, local: bool
    ) -> list[Change]:
        """The changes of applying ``entries`` under capabilities access (rebuilding the
        view if access changed)."""
        acl = [
            change_for(e, "access", key=str(e.cid), value=e.payload, local=local)
            for e in entries
            if caps.is_acl(e.cid)
        ]
        if caps.take_change():
            self.rebuild(caps)
            if not entries:  # the log changed outside a database write: nothing to name
                return acl
            trigger = next((e for e in reversed(entries) if caps.is_acl(e.cid)), entries[-1])
            return [*acl, change_for(trigger, "rebuild", local=local)]
        visible = [e for e in entries if caps.visible(e)]
        if self.view is None:
            return [
                *acl,
                *(
                    change_for(e, "append", key=e.cid, value=e.payload, local=local)
                    for e in visible
                ),
            ]
        return [*acl, *self.view.apply(visible, local=local)]

    def rebuild(self, caps: CapabilityLog) -> None:
        """Rebuild the view from the visible entries (inside the caller's transaction)."""
        from orbitstore.storage.memory import MemoryStore
        from orbitstore.storage.sqlite import SqliteStore
        from orbitstore.storage.views import reset_view_rows

        db = self._db
        if self.view is None or self.factory is None:
            return
        store = self._store
        if isinstance(store, SqliteStore):
            reset_view_rows(store, store.log_store(db.cid).log_id)
        elif isinstance(store, MemoryStore):
            store.view_states.pop((db.manifest.type, db.cid), None)
        view = self.factory(store, db.cid, db.manifest)
        self.view = view
        self.snapshots = view if isinstance(view, SnapshotView) else None
        log_store = store.log_store(db.cid)
        batch: list[Entry] = []
        for _, cid, block in log_store.iter_since(0):
            entry = Entry.from_trusted_block(cid, block)
            if caps.visible(entry):
                batch.append(entry)
            if len(batch) >= FOLD_CHUNK:
                view.apply(db.view_entries(batch), local=False)
                batch = []
        if batch:
            view.apply(db.view_entries(batch), local=False)
        if isinstance(view, SnapshotView):  # its stored snapshot holds retracted updates
            view.save(log_store.last_seq(), force=True)
