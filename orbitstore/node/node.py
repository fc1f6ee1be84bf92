"""The node: composition root that wires identity, storage and databases together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from orbitstore.core.cid import Cid
from orbitstore.core.devices import ANY_DATABASE, Delegation, Unlink
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest, is_address, parse_address
from orbitstore.core.pairing import DEFAULT_TTL
from orbitstore.errors import ClosedError, StorageError, UsageError
from orbitstore.net.transport import BlockFetcher, Transport
from orbitstore.node.access import Membership, parse_invite
from orbitstore.node.asof import Heads
from orbitstore.node.attachments import Attachments
from orbitstore.node.config import NodeConfig
from orbitstore.node.construct import new_keys, new_log
from orbitstore.node.database import Database
from orbitstore.node.devices import DeviceState
from orbitstore.node.manifests import Manifests, check_open, new_manifest
from orbitstore.node.opening import (
    KEYSTORE_FILE,
    STORE_FILE,
    Network,
    SyncWaiter,
    device_state,
    open_network,
    store_and_identity,
)
from orbitstore.node.query import Params, QueryService, resolve_all
from orbitstore.node.services import HandleServices
from orbitstore.node.types import database_class, with_opener
from orbitstore.node.user import PairingOffer, UserDevices
from orbitstore.node.verify import Verifier
from orbitstore.node.writes import NodeWrites
from orbitstore.query.results import QueryPlan, QueryResult
from orbitstore.storage.base import NodeStore
from orbitstore.storage.lock import DirectoryLock

if TYPE_CHECKING:
    from orbitstore.node.check import CheckReport, Progress
    from orbitstore.node.drop import DropReport
    from orbitstore.query.catalog import Catalog

__all__ = ["KEYSTORE_FILE", "STORE_FILE", "Node", "open_node"]


class Node:
    """Owns one store and one identity, and the databases opened on them."""

    def __init__(
        self,
        *,
        store: NodeStore,
        identity: Identity,
        config: NodeConfig,
        network: Network | None = None,
        owns_store: bool = True,
        device: DeviceState | None = None,
    ) -> None:
        self.store = store
        self.identity = identity
        #: This node as a device of a user (docs/identity.md).
        self.device = device if device is not None else DeviceState(device=identity)
        self.config = config
        #: The replication service, when the node was opened with a transport.
        self.replication = replication = None if network is None else network.replication
        #: DHT provider discovery, when the node runs its own transport with the DHT on.
        self.discovery = None if network is None else network.discovery
        self._owns_store = owns_store
        self._open: dict[Cid, Database] = {}
        self._closed = False
        #: The write lock and batches shared by this node's databases (node/writes.py).
        self.writes = NodeWrites(store)
        self.queries = QueryService(store, config.query)
        #: Large binary values as UnixFS blocks (node/attachments.py); fetched over the
        #: transport when it can fetch blocks (libp2p: Bitswap).
        self.attachments = Attachments(store, config.attachments)
        if network is not None and isinstance(network.transport, BlockFetcher):
            self.attachments.fetcher = network.transport
        self._manifests = Manifests(
            store=store,
            writes=self.writes,
            network=network,
            delegation=lambda: self.device.delegation,
        )
        # What its database handles share (node/services.py); they write for its user.
        self._services = HandleServices(
            writes=self.writes,
            queries=self.queries,
            sync=None if network is None else SyncWaiter(network),
            attachments=self.attachments,
            members=Membership(lambda: self.device.delegation),
            verifier=Verifier(config.verify_threads, processes=config.verify_processes),
        )
        self._user = UserDevices(
            device=self.device,
            identity=identity,
            replication=replication,
            databases=lambda: list(self._open.values()),
        )

    @property
    def id(self) -> str:
        """This node's writer id (``did:key``)."""
        return self.identity.id

    async def open(
        self,
        name_or_address: str,
        *,
        type: str = "log",
        write: Iterable[str] | None = None,
        meta: dict[str, object] | None = None,
        access: str = "static",
        encrypted: bool = False,
        private: bool = False,
        replicas: Iterable[str] | None = None,
    ) -> Database:
        """Open a database by local name (created if new) or by ``/orbitstore/<cid>``.

        ``type`` is one of ``log``, ``feed``, ``keyvalue``, ``documents``, ``counter``,
        ``ydoc``; the handle returned is of the matching class.

        A new database is writable by ``write`` (writer ids, or ``["*"]`` for anyone;
        default: only this node). With ``access="capabilities"`` this node's identity
        owns the new database and grants rights with ``db.grant`` / ``db.invite``
        (see docs/security-model.md). Opening an address whose manifest declares another
        ``type`` raises WrongDatabaseTypeError.

        Opening an address whose manifest this node's store lacks asks every connected
        peer for it (``ReplicationConfig.manifest_timeout``), verifies and stores the
        first answer, then opens and replicates as usual. With no transport, no peer, or
        no valid answer it raises NotFoundError saying how many peers were asked.

        ``encrypted=True`` (for a new database) seals every payload under a database key
        that only members hold; this node is its owner and first member, and adds others
        with ``db.set_readers(...)`` (see docs/encryption.md). Whether an existing
        database is encrypted is read from its manifest.

        ``private=True`` (for a new database) makes it readable by its members only:
        this node serves it — sync, manifest, blocks — only to peers that prove a
        member identity, or one of the ``replicas`` (identities allowed to hold and
        serve it without writing), and never gossips its heads (see
        docs/security-model.md).
        """
        if self._closed:
            raise ClosedError("the node is closed")
        db, manifest, created = await self._resolve(
            name_or_address,
            lambda: new_manifest(
                name_or_address,
                type,
                write,
                meta,
                access,
                encrypted,
                private,
                replicas,
                node_id=self.id,
                user_id=self.user_id,
            ),
        )
        check_open(manifest, name_or_address, type_name=type, encrypted=encrypted, private=private)
        async with self.writes.locked():  # the log's row and the view's catch-up write
            existing = self._open.get(db)
            if existing is not None and not existing._closed:  # a closed handle is reopened
                return existing
            self._check_not_in_batch(name_or_address)
            database = self._construct(db, manifest)
        if created and database.encrypted:  # the owner's key and the first epoch
            await database.announce_key()
            await database.set_readers([self.id])
        if self.replication is not None:
            await self.replication.add_database(database)
        if self.discovery is not None:
            self.discovery.add_database(database)
        return database

    async def _resolve(
        self, name_or_address: str, new: Callable[[], Manifest]
    ) -> tuple[Cid, Manifest, bool]:
        """``(db, manifest, created)`` of the database :meth:`open` names: by address
        (its manifest fetched from peers if need be), by a known local name, or a new
        database with the manifest ``new()`` builds (stored, with its name)."""
        if is_address(name_or_address):
            db = parse_address(name_or_address)
            manifest = await self._manifests.find(db)
            if self._closed:
                raise ClosedError("the node was closed while the manifest was fetched")
            return db, manifest, False
        found = self.store.get_name(name_or_address)
        if found is not None:
            return found, self._manifests.load(found), False
        manifest = new()
        self._check_not_in_batch(name_or_address)
        return await self._manifests.add(name_or_address, manifest), manifest, True

    def _check_not_in_batch(self, name_or_address: str) -> None:
        if self.writes.in_batch:  # a rollback would undo the store under the new handle
            raise UsageError(
                f"cannot open {name_or_address!r:.200} inside a batch: open databases before"
                " the batch (an already open database can be opened again)"
            )

    def _construct(self, db: Cid, manifest: Manifest) -> Database:
        log = new_log(
            db, manifest, store=self.store, identity=self.identity, limits=self.config.limits
        )
        keys = new_keys(db, manifest, identity=self.identity, log=log)
        cls, make_view = database_class(manifest.type)
        if keys is not None and make_view is not None:
            make_view = with_opener(make_view, keys.opened)  # views that read entries back
        database = cls(
            manifest=manifest,
            db=db,
            log=log,
            store=self.store,
            view=make_view(self.store, db, manifest) if make_view is not None else None,
            timestamps=self.config.timestamps,
            view_factory=make_view,
            keys=keys,
            services=self._services,
        )
        self._open[db] = database
        return database

    async def redeem(
        self, link: str, *, timeout: float = 30.0, name: str | None = None
    ) -> Database:
        """Open the database of an invite link and redeem the invite for this node.

        With a transport, waits (up to ``timeout`` seconds) until the invite's grant
        has been replicated here. Returns the opened database, named here ``name`` (or
        by its manifest's name, if free; see :meth:`Manifests.name_opened`)."""
        address, _ = parse_invite(link)
        if name is not None:  # a name that cannot be given fails before anything else
            self._manifests.check_name_free(name, parse_address(address))
        manifest = await self._manifests.find(parse_address(address))
        db = await self.open(address, type=manifest.type)
        if self.replication is not None and db.log.capabilities is not None:
            async with db.subscribe() as changes:
                with trio.move_on_after(timeout):
                    while not db.can_redeem(link):
                        await changes.__anext__()  # any change: look again
        await db.redeem(link)
        await self._manifests.name_opened(db.cid, name)
        return db

    def manifest(self, name_or_address: str) -> Manifest:
        """The manifest (name, type, access, meta) of a database this node knows, by local
        name or address, without opening or creating it. NotFoundError if there is none."""
        return self._manifests.lookup(name_or_address)

    def databases(self) -> dict[str, str]:
        """Local names and their addresses."""
        return {name: f"/orbitstore/{cid}" for name, cid in self.store.names().items()}

    def open_databases(self) -> list[Database]:
        """The databases open on this node (by name or by address), in opening order."""
        return self._live()

    async def drop(self, name_or_address: str) -> DropReport:
        """Close a database, stop replicating it and remove all its data from this node
        (entries, views, heads, names, manifest); peers keep their copies. NotFoundError
        if this node has no such database. See :mod:`orbitstore.node.drop`."""
        from orbitstore.node.drop import drop_database

        if self._closed:
            raise ClosedError("the node is closed")
        return await drop_database(self, name_or_address)

    # -- this node as a device of a user (node/user.py; docs/identity.md) ---------------

    @property
    def user_id(self) -> str:
        """The user this node writes for (its own ``id`` if it is no linked device)."""
        return self.device.user_id

    def create_user(self) -> str:
        """Make a new user whose first device is this node (root key in the keystore)."""
        return self._user.create_user()

    def delegate_device(
        self, device: str, *, expires: int | None = None, purpose: str = ANY_DATABASE
    ) -> Delegation:
        """Sign a delegation of this node's user to ``device`` (needs the root key):
        hand it to that device (``accept_delegation``) by any means."""
        return self._user.delegate_device(device, expires=expires, purpose=purpose)

    def accept_delegation(self, delegation: Delegation | str) -> None:
        """Become the device ``delegation`` names (its text form is accepted too)."""
        self._user.accept_delegation(delegation)

    async def unlink_device(
        self, device: str, databases: Iterable[Database] | None = None
    ) -> Unlink:
        """Unlink ``device`` (needs the root key). The unlinking is posted to
        ``databases`` (capabilities ones), by default to every open capabilities database
        where a link op names the device; post it elsewhere later with
        ``db.unlink_device(statement)`` (an unlinking posted before the link still
        kills it: it compares the root's issue times)."""
        return await self._user.unlink_device(device, databases)

    def device_info(self) -> dict[str, Any]:
        """This node as a device: its id, its user, whether it holds the root key."""
        return self.device.describe()

    def open_pairing(
        self, *, ttl: float = DEFAULT_TTL, purpose: str = ANY_DATABASE, expires: int | None = None
    ) -> PairingOffer:
        """Open a one-time pairing code (needs the root key and a transport)."""
        return self._user.open_pairing(ttl=ttl, purpose=purpose, expires=expires)

    async def wait_paired(self) -> Delegation:
        """Wait until a device pairs with a code this node opened; its delegation."""
        return await self._user.wait_paired()

    async def pair(self, link: str, *, timeout: float = 30.0) -> Delegation:
        """Pair this node with the device that showed ``link``: it signs a delegation to
        this node's key, which this node accepts. Needs a transport."""
        return await self._user.pair(link, timeout=timeout)

    # -- SQL ---------------------------------------------------------------------------

    def _live(self) -> list[Database]:
        return [d for d in self._open.values() if not d._closed]

    def _handles(self) -> dict[str, Database]:
        return {d.name.lower(): d for d in self._live()}

    def _catalog(self) -> Catalog:
        if self._closed:
            raise ClosedError("the node is closed")
        return self.queries.catalog_of(self._live())

    def query(
        self, sql: str, params: Params = None, *, as_of: Mapping[str, Heads] | None = None
    ) -> QueryResult:
        """Run a SELECT over the open databases, each named by its local name as a
        table (joins allowed). See docs/query.md.

        ``as_of={name: heads}`` reads those databases as of past heads (the others as
        they are now); see ``Database.query``."""
        catalog = self._catalog()
        return self.queries.query(sql, params, catalog, resolve_all(self._handles(), as_of))

    def explain(
        self, sql: str, params: Params = None, *, as_of: Mapping[str, Heads] | None = None
    ) -> QueryPlan:
        """Which declared index (or scan) serves each table of the query."""
        catalog = self._catalog()
        return self.queries.explain(sql, params, catalog, resolve_all(self._handles(), as_of))

    def watch(self, sql: str, params: Params = None) -> AsyncIterator[QueryResult]:
        """A live query over the open databases: ``async for result in node.watch(sql)``."""
        catalog = self._catalog()
        return self.queries.watch(sql, params, catalog, self._handles())

    def check(self, *, repair: bool = False, progress: Progress | None = None) -> CheckReport:
        """Verify everything this node stores: the SQLite file, every entry (hash,
        signature, structure, parents, clock), the heads and the views; with ``repair``,
        remove damaged entries (and their descendants, to be fetched again from peers),
        fix the heads and rebuild the views. See :mod:`orbitstore.node.check`.

        Blocking and O(size of the store). Repair needs every database closed."""
        from orbitstore.node.check import check_store  # only for `check`: keeps open quick

        if self._closed:
            raise ClosedError("the node is closed")
        if repair and self._live():
            raise UsageError(
                "close the open databases before repairing: "
                + ", ".join(sorted(d.name for d in self._live()))
            )
        return check_store(self.store, repair=repair, limits=self.config.limits, progress=progress)

    async def aclose(self) -> None:
        """Close every database, then the store — all of them even if one fails (a
        damaged disk): the first StorageError is raised once everything is closed."""
        if self._closed:
            return
        self._closed = True
        failed: StorageError | None = None
        for database in self._open.values():
            try:
                await database.aclose()
            except StorageError as exc:
                failed = failed or exc
        self._open.clear()
        await self._services.verifier.aclose()
        try:
            self.queries.close()
            if self._owns_store:
                self.store.close()
        except StorageError as exc:
            failed = failed or exc
        if failed is not None:
            raise failed


@asynccontextmanager
async def open_node(
    path: str | Path | None = None,
    *,
    config: NodeConfig | None = None,
    identity: Identity | None = None,
    transport: Transport | None = None,
    store: NodeStore | None = None,
) -> AsyncIterator[Node]:
    """Open a node whose data lives in the directory ``path``.

    One process owns a node directory: the node holds an exclusive OS lock on
    ``<path>/orbitstore.lock`` (with its pid in it) from before it reads the keystore
    until it has closed its store. A second opener, in this process or another, gets
    :class:`~orbitstore.errors.NodeLockedError` naming the holder's pid: stop that
    process, or talk to it through its API. The lock dies with the process.

    ``path=None`` keeps everything in memory (tests). Otherwise the directory holds
    ``orbitstore.sqlite`` (blocks, logs, views) and ``keystore.json`` (the node's key,
    created on first use, mode 0600).

    With ``config.network`` (a ``Libp2pConfig``) the node starts its own libp2p transport
    (peer identity in ``<path>/peer.key``; a random one for an in-memory node), runs it
    for as long as the node is open and stops it on exit; with ``dht=True`` it also
    announces every open database as a DHT provider and dials the other providers
    (``node.discovery``). With a ``transport`` (libp2p, or
    :mod:`orbitstore.testing.network`) instead, the node replicates over that one, and
    the transport's lifetime belongs to the caller. Either way the node replicates every
    database it opens; see ``node.replication``. A ``store`` passed in (instead of ``path``) is used
    as is and left open on exit, so a test can reopen a node on it after a "crash".
    """
    if path is None or store is not None:
        async with _open_node(path, config, identity, transport, store) as node:
            yield node
        return
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)  # OSError: the CLI says so, as before
    lock = DirectoryLock.acquire(root)
    try:
        async with _open_node(path, config, identity, transport, store) as node:
            yield node
    finally:
        lock.release()


@asynccontextmanager
async def _open_node(
    path: str | Path | None,
    config: NodeConfig | None,
    identity: Identity | None,
    transport: Transport | None,
    store: NodeStore | None,
) -> AsyncIterator[Node]:
    config = config or NodeConfig()
    owns_store = store is None
    store, identity = store_and_identity(path, config, identity, store)
    if transport is None and config.network is None:
        plain = Node(
            store=store,
            identity=identity,
            config=config,
            owns_store=owns_store,
            device=device_state(path, identity),
        )
        try:
            yield plain
        finally:
            await plain.aclose()
        return
    node: Node | None = None
    try:
        async with open_network(
            path=path, config=config, identity=identity, transport=transport, store=store
        ) as network:
            node = Node(
                store=store,
                identity=identity,
                config=config,
                network=network,
                owns_store=owns_store,
                device=device_state(path, identity),
            )
            yield node
    finally:
        # After the transport stopped: no gossip or stream reaches a closed database.
        if node is not None:
            await node.aclose()
        elif owns_store:
            store.close()
