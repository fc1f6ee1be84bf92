"""Database handles: one op-log, its manifest, its view, and the storage around them.

Every write runs in one storage transaction: the log appends (or receives) entries, the
view folds them in, and the view's checkpoint moves — all committed together, so view
and log never disagree, even after a crash. Writes hold the node's write lock, and
changes are published to subscribers after the (outermost) commit; if a write or batch
rolls back, the log and view in memory go back with it (see :mod:`orbitstore.node.writes`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ClassVar

from orbitstore.core.cid import Cid
from orbitstore.core.devices import Delegation, Unlink
from orbitstore.core.entry import Entry
from orbitstore.core.manifest import Manifest, format_address
from orbitstore.core.oplog import LogSnapshot, OpLog, ReceiveResult
from orbitstore.errors import ClosedError, UsageError
from orbitstore.node.access import Right
from orbitstore.node.asof import Heads
from orbitstore.node.attachments import Attachments, AttachmentSource, ProgressCallback
from orbitstore.node.database_writes import DatabaseWrites
from orbitstore.node.encrypted import DatabaseEncryption
from orbitstore.node.encryption import DatabaseKeys
from orbitstore.node.folding import ViewFactory, ViewFolder
from orbitstore.node.handle_queries import HandleQueries
from orbitstore.node.handle_statistics import DatabaseStatistics, statistics_fields
from orbitstore.node.query import DEFAULT_WATCH_DEBOUNCE_S, Params
from orbitstore.node.services import HandleServices
from orbitstore.node.subscription import DEFAULT_SUBSCRIPTION_BUFFER, Subscribers, Subscription
from orbitstore.node.verify import Verifier
from orbitstore.node.writes import Frame, NodeWrites
from orbitstore.query.results import QueryPlan, QueryResult
from orbitstore.storage.base import NodeStore
from orbitstore.views.base import Change, View


class Database:
    """An append-only log database (``type="log"``); the base of the typed databases.

    Writes are ``async`` and durable when they return. Reads are plain methods: they
    read the local store and never wait on the network.

    The node builds handles (:meth:`Node.open`) and passes in what they share with the
    node's other databases (``services``, :class:`~orbitstore.node.services.HandleServices`):
    the write coordinator, the SQL service, the membership service, the attachments and,
    on a node with a transport, its replication.
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
        view_factory: ViewFactory | None = None,
        keys: DatabaseKeys | None = None,
        services: HandleServices | None = None,
    ) -> None:
        self.manifest = manifest
        self.cid = db
        self._log = log
        self._store = store
        # The node's services (shared by its databases); private ones if alone.
        if services is None:
            services = HandleServices(writes=NodeWrites(store))
        self._writes = services.writes
        self._sql = HandleQueries(self, services.queries)  # node/handle_queries.py
        self._sync = services.sync
        attachments = services.attachments
        self._attachments = attachments if attachments is not None else Attachments(store)
        self._members = services.members
        # The write path (node/database_writes.py), verifying on the node's workers.
        self._writer = DatabaseWrites(self, verifier=services.verifier, timestamps=timestamps)
        self._closed = False
        self._subscribers = Subscribers()
        # The keys of an encrypted database (see node/encryption.py); None in the clear.
        self._keys = keys
        # Their state at rest, and the encryption methods (node/encrypted.py).
        self._encryption = DatabaseEncryption(self, keys)
        # The view, its checkpoint and how it is rebuilt (node/folding.py).
        self._folder = ViewFolder(self, view, view_factory)
        self._reapplied = self._folder.catch_up()

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
        """How many signature checks of a large received batch run in parallel, on worker
        processes (``NodeConfig.verify_threads``)."""
        return self._writer.verifier.workers

    @property
    def verifier(self) -> Verifier:
        """The node's verifier of received blocks (node/verify.py)."""
        return self._writer.verifier

    # -- views and checkpoints -----------------------------------------------------------

    @property
    def _view(self) -> View | None:
        """The view (None for a type without one); a typed handle reads it."""
        return self._folder.view

    def _apply(self, entries: Sequence[Entry], *, local: bool) -> list[Change]:
        """Fold entries into the view (inside the caller's transaction); see
        :meth:`ViewFolder.apply`."""
        return self._folder.apply(entries, local=local)

    def fresh_view(self, store: NodeStore) -> View | None:
        """A new, empty view of this database's type over ``store`` (for AS OF
        snapshots); None for a type without a view or a handle built without a factory."""
        return self._folder.fresh(store)

    # -- writing --------------------------------------------------------------------------

    async def append(self, payload: Any) -> Entry:
        """Append one entry; returns it once it is committed."""
        return (await self.append_many([payload]))[0]

    async def append_many(self, payloads: Iterable[Any]) -> list[Entry]:
        """Append several entries in one transaction (one commit for all). In an
        encrypted database each payload is sealed (NotAMemberError without the key)."""
        seal = None if self._keys is None else self._keys.sealer()
        return await self._writer.append(payloads, seal)

    async def receive(self, blocks: Iterable[tuple[Cid, bytes]]) -> ReceiveResult:
        """Verify and apply entry blocks from elsewhere (a peer, a file).

        Batches of :data:`~orbitstore.node.verify.MIN_BLOCKS_FOR_THREADS` or more are
        verified on ``NodeConfig.verify_threads`` worker processes, a chunk ahead of the
        one being applied (:func:`~orbitstore.node.verify.receive_pipelined`): each chunk
        is its own write (inside a batch, a savepoint of it) and holds the write lock
        only while it is applied. The result is the same as verifying them one by one.
        """
        return await self._writer.receive(blocks)

    async def receive_entries(
        self, entries: Iterable[Entry], *, all_or_nothing: bool = False
    ) -> ReceiveResult:
        """Apply entries already verified by :meth:`Entry.from_block`.

        With ``all_or_nothing``, one rejected entry refuses them all: nothing is stored
        and the result lists the rejections (:meth:`OpLog.receive_entries`)."""
        return await self._writer.receive_entries(entries, all_or_nothing=all_or_nothing)

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
        if not self._closed:
            self._folder.reopen()

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
        async with self._subscribers.subscribe(buffer) as sub:
            yield sub

    def _publish(self, changes: Sequence[Change]) -> None:
        """Publish changes made outside a write (at once, or when the batch commits)."""
        self._writes.publish(self, changes)

    def _push_changes(self, changes: Sequence[Change]) -> None:
        self._subscribers.push(changes)

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
        return await self._sql.changes_since(seq, limit)

    # -- SQL ------------------------------------------------------------------------------

    def query(self, sql: str, params: Params = None, *, as_of: Heads | None = None) -> QueryResult:
        """Run a SELECT over this database (its name, and ``this``, are the table); see
        docs/query.md for the dialect.

        With ``as_of`` (entry CIDs of this log, or their text), over the state the
        database had when those were its heads: the view of exactly those entries and
        their ancestors. NotFoundError for a CID this log does not hold; ``as_of=()``
        is the empty database."""
        return self._sql.query(sql, params, as_of)

    def explain(self, sql: str, params: Params = None, *, as_of: Heads | None = None) -> QueryPlan:
        """How the query would run: which declared index serves it, or a scan. With
        ``as_of``, the plan over the snapshot (see :meth:`query`)."""
        return self._sql.explain(sql, params, as_of)

    def watch(
        self, sql: str, params: Params = None, *, debounce_s: float = DEFAULT_WATCH_DEBOUNCE_S
    ) -> AsyncIterator[QueryResult]:
        """A live query: ``async for result in db.watch(sql): ...``."""
        return self._sql.watch(sql, params, debounce_s)

    # -- encryption (node/encrypted.py; docs/encryption.md) ------------------------------

    @property
    def encrypted(self) -> bool:
        """Whether payloads of this database are sealed (``node.open(encrypted=True)``)."""
        return self._keys is not None

    @property
    def readers(self) -> frozenset[str]:
        """The members of the current key epoch: who can read new entries. (Not
        ``members``: under capabilities that names who holds which right.)"""
        return self._encryption.readers

    @property
    def is_reader(self) -> bool:
        """Whether this node holds the current epoch key (can read new entries and write)."""
        return self._encryption.is_reader

    def open_entry(self, entry: Entry) -> Any:
        """The plaintext payload of a sealed entry. NotAMemberError without its epoch
        key; DecryptionError if it does not open (tampered, or bound to another entry)."""
        return self._encryption.open_entry(entry)

    async def announce_key(self, announcement: dict[str, Any] | None = None) -> Entry | None:
        """Publish this node's X25519 key for the database (or another member's
        self-signed ``announcement``) in the log, so the owner can seal keys to it. None
        if it is already there (see :meth:`DatabaseEncryption.announce_key`)."""
        return await self._encryption.announce_key(announcement)

    async def set_readers(self, members: Sequence[str]) -> Entry:
        """The owner (or, under capabilities, an admin): start a new key epoch readable
        by ``members``, the owner and this node (see
        :meth:`DatabaseEncryption.set_readers`)."""
        return await self._encryption.set_readers(members)

    def view_entries(self, entries: Sequence[Entry]) -> list[Entry]:
        """``entries`` as the view sees them: unchanged in the clear; for an encrypted
        database, opened with the keys this node holds now (reserved and unreadable
        entries left out). Used to fold AS OF snapshots."""
        return self._encryption.view_entries(entries)

    # -- membership (node/access.py; capabilities access only) ----------------------------

    async def grant(self, did: str, right: str = "write", scope: str | None = None) -> Entry:
        """Grant ``right`` (``write`` or ``admin``) to ``did``, for keys/ids starting
        with ``scope`` (write only). Needs the admin right."""
        return await self._members.grant(self, did, right, scope)

    async def revoke(self, did: str, right: str = "write", scope: str | None = None) -> Entry:
        """Revoke ``right`` from ``did``: its entries concurrent with this revocation are
        retracted once it is known. Admin rights are revoked by the owner only."""
        return await self._members.revoke(self, did, right, scope)

    async def invite(self, scope: str | None = None) -> str:
        """A one-time invite link granting ``write`` (within ``scope``) to whoever
        redeems it first (:meth:`redeem`, or ``node.redeem``)."""
        return await self._members.invite(self, scope)

    async def revoke_invite(self, link: str) -> Entry:
        """Revoke an unused invite: a redeem not after this revocation grants nothing."""
        return await self._members.revoke_invite(self, link)

    async def redeem(self, link: str, did: str | None = None) -> Entry:
        """Use an invite: an entry signed by the invite key grants ``write`` to ``did``
        (default: this node). The invite's grant must have reached this node."""
        return await self._members.redeem(self, link, did)

    def can_redeem(self, link: str) -> bool:
        """Whether this node knows the invite's grant, unused and unrevoked."""
        return self._members.can_redeem(self, link)

    def members(self) -> dict[str, list[Right]]:
        """Who holds which rights now (the owner holds every right)."""
        return self._members.members(self)

    def writers(self) -> list[dict[str, Any]]:
        """Members as users with their devices: ``[{user, rights, devices}]``, each
        device ``{device, linked, since, links, unlinks}`` — linked now (through the
        ``links`` ops) or unlinked (by the ``unlinks`` ops), ``since`` the root-signed
        time in ms of its delegation or unlinking (JSON-friendly)."""
        return self._members.writers(self)

    def devices(self) -> dict[str, list[str]]:
        """``{user: [device, ...]}``: the devices linked now, by user."""
        return self._members.devices(self)

    def user_of(self, writer: str) -> str:
        """The user ``writer`` writes for now (itself if it is no linked device)."""
        return self._members.user_of(self, writer)

    def is_member(self, did: str) -> bool:
        """Whether ``did`` holds a right now, directly or as a linked device of a user
        who does (the owner and its devices included). For read control."""
        return self._members.is_member(self, did)

    async def link_device(self, delegation: Delegation | None = None) -> Entry:
        """Post a link op for ``delegation`` (default: this node's own). Only the device
        it names can post it; writes post this node's automatically when needed."""
        return await self._members.link_device(self, delegation)

    async def unlink_device(self, statement: Unlink) -> Entry:
        """Post an unlinking (signed by the user's root key): the device's entries not
        in its past are excluded, as after a revocation; the user and its other
        devices keep their rights."""
        return await self._members.unlink_device(self, statement)

    def access_state(self) -> dict[str, Any]:
        """Owner, rights with the grants that give them, and every ACL op with whether
        it is valid and, if not, why (JSON-friendly)."""
        return self._members.access_state(self)

    # -- statistics -----------------------------------------------------------------------

    def statistics(self) -> DatabaseStatistics:
        return DatabaseStatistics(**self._statistics())

    def _statistics(self) -> dict[str, Any]:
        """The fields of :class:`DatabaseStatistics`, for subclasses that add some."""
        return statistics_fields(self)

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
        if self._folder.snapshots is not None:
            async with self._write():
                self._folder.save_snapshot()
        self._closed = True
        self._subscribers.close()

    async def close(self) -> None:
        """The same as :meth:`aclose` (the older name, kept as an alias)."""
        await self.aclose()

    def _check(self) -> None:
        if self._closed:
            raise ClosedError(f"database {self.name!r} is closed")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.address}>"
