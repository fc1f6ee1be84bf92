"""Database handles: one op-log, its manifest, its view, and the storage around them.

Every write runs in one storage transaction: the log appends (or receives) entries, the
view folds them in, and the view's checkpoint moves — all committed together, so view
and log never disagree, even after a crash. Writes hold the node's write lock, and
changes are published to subscribers after the (outermost) commit; if a write or batch
rolls back, the log and view in memory go back with it (see :mod:`orbitstore.node.writes`).
"""

from __future__ import annotations

import time
from collections.abc import (
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from itertools import takewhile
from typing import Any, ClassVar, Protocol

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.manifest import Manifest, format_address
from orbitstore.core.oplog import LogSnapshot, OpLog, PayloadSealer, ReceiveResult
from orbitstore.errors import ClosedError, UsageError
from orbitstore.node.access import AccessMethods, _link_payloads, visible_changes
from orbitstore.node.asof import AsOf, Heads, request
from orbitstore.node.attachments import Attachments, AttachmentSource, ProgressCallback
from orbitstore.node.encrypted import EncryptionMethods
from orbitstore.node.encryption import DatabaseKeys, EncryptionStatistics
from orbitstore.node.query import DEFAULT_WATCH_DEBOUNCE_S, Params, QueryService
from orbitstore.node.subscription import DEFAULT_SUBSCRIPTION_BUFFER, Subscription
from orbitstore.node.verify import MIN_BLOCKS_FOR_THREADS, receive_pipelined
from orbitstore.node.writes import Frame, NodeWrites
from orbitstore.query.results import QueryPlan, QueryResult
from orbitstore.storage.base import NodeStore
from orbitstore.storage.keys import KeyStateStore
from orbitstore.views.base import Change, SnapshotView, View, change_for


class SyncWaiter(Protocol):
    """What :meth:`Database.wait_synced` asks of the node's replication (node/node.py)."""

    async def wait_synced(
        self, database: Database, *, peer: str | None, timeout: float
    ) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseStatistics:
    """What :meth:`Database.statistics` reports (a typed handle may add fields)."""

    entries: int
    heads: int
    pending: int
    reapplied_on_open: int
    subscribers: int
    encryption: EncryptionStatistics | None = None
    """Key epochs and unreadable entries of an encrypted database; None in the clear."""


class Database(AccessMethods, EncryptionMethods):
    """An append-only log database (``type="log"``); the base of the typed databases.

    Writes are ``async`` and durable when they return. Reads are plain methods: they
    read the local store and never wait on the network.

    The node builds handles (:meth:`Node.open`) and passes in what they share with the
    node's other databases: the write coordinator (``writes``), the SQL service
    (``queries``) and, on a node with a transport, its replication (``sync``).
    """

    #: The database type this class handles (the manifest's ``type``).
    type_name: ClassVar[str] = "log"

    def __init__(
        self,
        *,
        manifest: Manifest,
        db: Cid,
        log: OpLog,
        store: NodeStore,
        view: View | None = None,
        timestamps: bool = True,
        verify_threads: int = 1,
        view_factory: Callable[[NodeStore, Cid, Manifest], View] | None = None,
        keys: DatabaseKeys | None = None,
        writes: NodeWrites | None = None,
        queries: QueryService | None = None,
        sync: SyncWaiter | None = None,
        attachments: Attachments | None = None,
    ) -> None:
        self.manifest = manifest
        self.cid = db
        self._log = log
        self._store = store
        self._view = view
        self._view_factory = view_factory
        # A view that keeps its own checkpoint (snapshots); None for the others.
        self._snapshots = view if isinstance(view, SnapshotView) else None
        self._timestamps = timestamps
        self._verify_threads = verify_threads
        # The node's write coordinator (shared by its databases); a private one if alone.
        self._writes = writes if writes is not None else NodeWrites(store)
        self._closed = False
        self._subscribers: set[Subscription] = set()
        # The keys of an encrypted database (see node/encryption.py); None in the clear.
        self._keys = keys
        # Its learned keys at rest, sealed (storage/keys.py): reopening skips the log.
        self._key_state = None if keys is None else KeyStateStore(store, db)
        self._keys_saved: Any = None  # the keys snapshot last written there
        self._queries = queries
        self._sync = sync
        self._reapplied = self._catch_up()
        # The node's attachments (node/attachments.py); a local store if alone.
        self._attachments = attachments

    @classmethod
    def check_meta(cls, meta: Mapping[str, Any]) -> None:
        """Raise a UsageError if ``meta`` is not valid for this type (checked before a
        new database's manifest is written)."""

    # -- identity -------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``/orbitstore/<manifest cid>``: give this to peers to open the same database."""
        return format_address(self.cid)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def type(self) -> str:
        return self.manifest.type

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` was called."""
        return self._closed

    @property
    def log(self) -> OpLog:
        return self._log

    @property
    def verify_threads(self) -> int:
        """Worker threads that verify large received batches (``NodeConfig``)."""
        return self._verify_threads

    # -- views and checkpoints -----------------------------------------------------------

    def _apply(self, entries: Sequence[Entry], *, local: bool) -> list[Change]:
        """Fold entries into the view (inside the caller's transaction).

        A local entry that changes no view state (a key announcement or epoch, an access
        op) still yields a ``Change(kind="meta")``: subscribers, and the replication
        announcer among them, learn of every local write.
        """
        stored = entries
        if self._keys is not None:
            entries = self._readable(entries)
        if self._log.capabilities is not None:  # only visible entries (node/access.py)
            changes = visible_changes(self, list(entries), local=local)
            assert changes is not None
            if self._view is not None:
                self._checkpoint(self._store.log_store(self.cid).last_seq())
        elif self._view is None:
            changes = [
                change_for(e, "append", key=e.cid, value=e.payload, local=local) for e in entries
            ]
        else:
            changes = self._view.apply(entries, local=local)
            self._checkpoint(self._store.log_store(self.cid).last_seq())
        if local and len(entries) < len(stored):
            shown = {e.cid for e in entries}
            changes += [change_for(e, "meta", local=True) for e in stored if e.cid not in shown]
        return changes

    def fresh_view(self, store: NodeStore) -> View | None:
        """A new, empty view of this database's type over ``store`` (for AS OF
        snapshots); None for a type without a view or a handle built without a factory."""
        if self._view_factory is None:
            return None
        return self._view_factory(store, self.cid, self.manifest)

    def _checkpoint(self, seq: int) -> None:
        """Record that the view reflects the log up to ``seq`` (a snapshotting view
        decides itself when to store that)."""
        assert self._view is not None
        if self._snapshots is not None:
            self._snapshots.save(seq)
        else:
            self._store.set_checkpoint(self.cid, self._view.name, seq)
            self._save_keys(seq)

    def _catch_up(self) -> int:
        """Apply entries that arrived after the view's checkpoint. Returns how many."""
        log_store = self._store.log_store(self.cid)
        if self._view is None:
            if self._keys is not None:  # no view: only the keys to learn again
                self._keys.learn(self._log.traverse())
            return 0
        if self._snapshots is not None:
            since = self._snapshots.checkpoint()
        else:
            since = self._store.get_checkpoint(self.cid, self._view.name)
        if self._keys is not None:  # the keys the view's state already reflects
            start = 0 if self._snapshots is not None else self._load_keys(since)
            self._keys.learn(
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
            caps = self._log.capabilities
            for seq, cid, block in log_store.iter_since(since):
                entry = Entry.from_trusted_block(cid, block)
                if caps is not None and not caps.visible(entry):
                    continue
                batch.append(entry)
                if len(batch) >= 1000:
                    self._fold_caught_up(batch, upto)
                    count += len(batch)
                    batch, upto = [], seq
            if batch:
                self._fold_caught_up(batch, upto)
                count += len(batch)
            self._checkpoint(log_store.last_seq())
        return count

    def _fold_caught_up(self, batch: Sequence[Entry], upto: int) -> None:
        assert self._view is not None
        self._view.apply(
            batch if self._keys is None else self._readable(batch, upto=upto), local=False
        )

    # -- writing --------------------------------------------------------------------------

    def _ts(self) -> int | None:
        return int(time.time() * 1000) if self._timestamps else None

    async def append(self, payload: Any) -> Entry:
        """Append one entry; returns it once it is committed."""
        return (await self.append_many([payload]))[0]

    async def append_many(self, payloads: Iterable[Any]) -> list[Entry]:
        """Append several entries in one transaction (one commit for all). In an
        encrypted database each payload is sealed (NotAMemberError without the key)."""
        return await self._append(payloads, None if self._keys is None else self._keys.sealer())

    async def _append(self, payloads: Iterable[Any], seal: PayloadSealer | None) -> list[Entry]:
        self._check()
        async with self._write() as frame:
            payloads = _link_payloads(self, payloads)  # a linked device's first write
            entries = self._log.append_many(payloads, ts=self._ts(), seal=seal)
            frame.publish(self, self._apply(entries, local=True))
        return entries

    async def receive(self, blocks: Iterable[tuple[Cid, bytes]]) -> ReceiveResult:
        """Verify and apply entry blocks from elsewhere (a peer, a file).

        Batches of :data:`~orbitstore.node.verify.MIN_BLOCKS_FOR_THREADS` or more are
        verified on ``NodeConfig.verify_threads`` worker threads, a chunk ahead of the
        one being applied (:func:`~orbitstore.node.verify.receive_pipelined`): each chunk
        is its own write (inside a batch, a savepoint of it) and holds the write lock
        only while it is applied. The result is the same as verifying them one by one.
        """
        self._check()
        blocks = list(blocks)
        if len(blocks) < MIN_BLOCKS_FOR_THREADS:
            async with self._write() as frame:
                result = self._log.receive(blocks)
                frame.publish(self, self._apply(result.added, local=False))
            return result
        # Under the lock: another context's open batch may hold some of these entries
        # uncommitted, and roll them back (this receive must then store them).
        async with self._lock:
            unknown = set(self._log.missing(cid for cid, _ in blocks))
        fresh = [(cid, block) for cid, block in blocks if cid in unknown]
        return await receive_pipelined(
            fresh, apply=self.receive_entries, threads=self._verify_threads, limits=self._log.limits
        )

    async def receive_entries(
        self, entries: Iterable[Entry], *, all_or_nothing: bool = False
    ) -> ReceiveResult:
        """Apply entries already verified by :meth:`Entry.from_block`.

        With ``all_or_nothing``, one rejected entry refuses them all: nothing is stored
        and the result lists the rejections (:meth:`OpLog.receive_entries`)."""
        self._check()
        async with self._write() as frame:
            result = self._log.receive_entries(entries, all_or_nothing=all_or_nothing)
            frame.publish(self, self._apply(result.added, local=False))
        return result

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Group writes into one transaction, committed when the block exits::

            async with db.batch():
                await db.append("a")
                await other_db.append("b")   # same node: part of the same batch

        The batch holds the node's write lock until it ends: writes from other tasks
        (replication, too) wait and run after it. Writes in the batch's context (this
        task and tasks started inside the block) are part of it, on every database of
        the node. Batches nest: an inner batch that raises rolls back only its own
        writes. Subscribers see the changes after the outermost batch commits; if it
        raises, nothing is stored, nothing is published, and every database's log and
        view in memory are as before the batch. See docs/batches.md.
        """
        self._check()
        async with self._writes.batch():
            yield

    @property
    def _lock(self) -> AbstractAsyncContextManager[None]:
        """The node's write lock, as the current context holds it (node/writes.py)."""
        return self._writes.locked()

    def _write(self) -> AbstractAsyncContextManager[Frame]:
        """One write: the write lock, and a transaction that memory follows
        (node/writes.py). The body must not await."""
        return self._writes.write(self)

    def _snapshot_state(self) -> tuple[LogSnapshot, Any]:
        return self._log.snapshot(), None if self._keys is None else self._keys.snapshot()

    def _restore_state(self, snapshot: tuple[LogSnapshot, Any]) -> None:
        """Called after a rollback: the log from its snapshot, the view reopened on the
        rolled-back store (a view's in-memory state, such as a ydoc's document, cannot be
        undone; reopening it replays what its checkpoint lacks). A ydoc's document is
        then a new ``pycrdt.Doc``: local edits not committed on the old one are dropped,
        since Yjs cannot apply them without the rolled-back updates they follow."""
        self._log.restore(snapshot[0])
        if self._keys is not None:
            self._keys.restore(snapshot[1])
        if self._view is not None and self._view_factory is not None and not self._closed:
            self._view = self._view_factory(self._store, self.cid, self.manifest)
            self._snapshots = self._view if isinstance(self._view, SnapshotView) else None
            self._catch_up()

    # -- change notifications ------------------------------------------------------------

    @asynccontextmanager
    async def subscribe(
        self, *, buffer: int = DEFAULT_SUBSCRIPTION_BUFFER
    ) -> AsyncIterator[Subscription]:
        """Changes from now on, local and remote::

            async with db.subscribe() as changes:
                async for change in changes:
                    ...

        A subscriber more than ``buffer`` changes behind receives one :class:`Lagged`
        marker (with the count it missed) instead of blocking writers.
        """
        self._check()
        sub = Subscription(buffer)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
            sub._close()

    def _publish(self, changes: Sequence[Change]) -> None:
        """Publish changes made outside a write (at once, or when the batch commits)."""
        self._writes.publish(self, changes)

    def _push_changes(self, changes: Sequence[Change]) -> None:
        for sub in self._subscribers:
            sub._push(changes)

    # -- reading --------------------------------------------------------------------------

    @property
    def heads(self) -> frozenset[Cid]:
        return self._log.heads

    def __len__(self) -> int:
        return len(self._log)

    def get_entry(self, cid: Cid | str) -> Entry | None:
        """The entry with this CID, if this log holds it."""
        return self._log.get(Cid.parse(cid) if isinstance(cid, str) else cid)

    def entries(self, *, reverse: bool = False, limit: int | None = None) -> Iterator[Entry]:
        """Entries in total order (oldest first; newest first with ``reverse``). In an
        encrypted database, entries this node can open carry their plaintext payload;
        the others (key entries, and all of them on a blind replica) are as stored."""
        self._check()
        found = self._log.traverse(reverse=reverse, limit=limit)
        return found if self._keys is None else map(self._keys.opened, found)

    @property
    def last_seq(self) -> int:
        """This node's arrival number (``seq``) of the newest entry of this log; 0 if
        none. Arrival numbers only grow, and never name another entry (see
        :meth:`changes_since`)."""
        self._check()
        return self._store.log_store(self.cid).last_seq()

    async def changes_since(self, seq: int, *, limit: int | None = None) -> list[tuple[int, Entry]]:
        """Committed entries that arrived on this node after arrival number ``seq``,
        oldest arrival first (a causal order), at most ``limit``: a resumable cursor
        (pass the last ``seq`` seen to get exactly what came after it).

        Read under the node's write lock: an open batch's entries are in the store's
        (one) connection before they commit, and a rollback frees their numbers for
        others; waiting for the batch keeps both out of the answer."""
        self._check()
        async with self._lock:
            self._check()
            out: list[tuple[int, Entry]] = []
            for n, cid, block in self._store.log_store(self.cid).iter_since(seq):
                if limit is not None and len(out) >= limit:
                    break
                out.append((n, Entry.from_trusted_block(cid, block)))
        return out

    # -- SQL ------------------------------------------------------------------------------

    def _query_service(self) -> QueryService:
        self._check()
        if self._queries is None:
            raise UsageError("this database handle was built without a query service")
        return self._queries

    def query(self, sql: str, params: Params = None, *, as_of: Heads | None = None) -> QueryResult:
        """Run a SELECT over this database (its name, and ``this``, are the table); see
        docs/query.md for the dialect.

        With ``as_of`` (entry CIDs of this log, or their text), over the state the
        database had when those were its heads: the view of exactly those entries and
        their ancestors. NotFoundError for a CID this log does not hold; ``as_of=()``
        is the empty database."""
        service = self._query_service()
        return service.query(sql, params, service.catalog_for(self), self._as_of(as_of))

    def explain(self, sql: str, params: Params = None, *, as_of: Heads | None = None) -> QueryPlan:
        """How the query would run: which declared index serves it, or a scan. With
        ``as_of``, the plan over the snapshot (see :meth:`query`)."""
        service = self._query_service()
        return service.explain(sql, params, service.catalog_for(self), self._as_of(as_of))

    def watch(
        self, sql: str, params: Params = None, *, debounce_s: float = DEFAULT_WATCH_DEBOUNCE_S
    ) -> AsyncIterator[QueryResult]:
        """A live query: ``async for result in db.watch(sql): ...``."""
        service = self._query_service()
        catalog = service.catalog_for(self)
        handles = {key: self for key in catalog.sources}
        return service.watch(sql, params, catalog, handles, debounce_s=debounce_s)

    def _as_of(self, as_of: Heads | None) -> tuple[AsOf, ...]:
        found = request(self, as_of)
        return () if found is None else (found,)

    # -- statistics -----------------------------------------------------------------------

    def statistics(self) -> DatabaseStatistics:
        return DatabaseStatistics(**self._statistics())

    def _statistics(self) -> dict[str, Any]:
        """The fields of :class:`DatabaseStatistics`, for subclasses that add some."""
        return {
            "entries": len(self._log),
            "heads": len(self._log.heads),
            "pending": self._log.pending_count,
            "reapplied_on_open": self._reapplied,
            "subscribers": len(self._subscribers),
            "encryption": None if self._keys is None else self._keys.statistics(),
        }

    async def wait_synced(self, *, peer: str | None = None, timeout: float = 30.0) -> None:
        """Return once this node holds everything the connected peers (or ``peer``, a
        transport peer id) have announced for this database. On a node configured with
        bootstrap peers it also waits until at least one peer is connected. Raises
        SyncTimeoutError after ``timeout`` seconds, UsageError on a node without a
        transport."""
        self._check()
        if self._sync is None:
            raise UsageError("this node has no transport: there is nothing to sync with")
        await self._sync.wait_synced(self, peer=peer, timeout=timeout)

    # -- attachments (node/attachments.py; docs/attachments.md) ----------------------------

    def _attachment_store(self) -> Attachments:
        self._check()
        if self._attachments is None:
            self._attachments = Attachments(self._store)
        return self._attachments

    async def attach(self, source: AttachmentSource) -> Cid:
        """Store a large binary value (bytes, a path or a binary file object) as a
        UnixFS file in the node; returns its CID, to link in a payload
        (``{"image": cid}``). Replicas fetch it only when they read it."""
        return await self._attachment_store().attach(source)

    async def read_attachment(
        self, cid: Cid | str, *, progress: ProgressCallback | None = None
    ) -> bytes:
        """The bytes of an attachment, fetched from peers if this node lacks them."""
        return await self._attachment_store().read(cid, progress=progress)

    def open_attachment(
        self, cid: Cid | str, *, progress: ProgressCallback | None = None
    ) -> AsyncIterator[bytes]:
        """An attachment's bytes as they arrive (see :meth:`read_attachment`)."""
        return self._attachment_store().open(cid, progress=progress)

    # -- lifecycle ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close this handle: its subscriptions end, its replication stops, and further
        use raises ClosedError. The node closes every handle when it closes; opening the
        database again gives a new handle."""
        if self._closed:
            return
        if self._snapshots is not None:
            async with self._write():
                self._snapshots.save(self._store.log_store(self.cid).last_seq(), force=True)
        self._closed = True
        for sub in list(self._subscribers):
            sub._close()

    async def close(self) -> None:
        """The same as :meth:`aclose` (the older name, kept as an alias)."""
        await self.aclose()

    def _check(self) -> None:
        if self._closed:
            raise ClosedError(f"database {self.name!r} is closed")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.address}>"
