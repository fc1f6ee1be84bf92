"""orbitstore: an eventually-consistent, decentralized database for Python.

Every write is a signed entry in an append-only log; entries are DAG-CBOR blocks
addressed by CID; CRDT views turn the log into key-value, documents, feed, counter and
collaborative-text databases.

    async with orbitstore.open_node("data/") as node:
        db = await node.open("chat")
        await db.append({"text": "hello"})

The names below are the supported API; everything else is reached through its module
(errors in :mod:`orbitstore.errors`). They are imported on first use, so ``import
orbitstore`` costs milliseconds and a command that needs no SQL never imports sqlglot.

Left out on purpose: ``OpLog`` and ``ReceiveResult`` (the sans-IO core under every
database: use :class:`Database`; tests and tools import them from
:mod:`orbitstore.core.oplog`), storage backends and the view classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orbitstore._lazy import lazy_getattr

if TYPE_CHECKING:
    from orbitstore.core.cid import Cid as Cid
    from orbitstore.core.entry import Entry as Entry
    from orbitstore.core.identity import Identity as Identity
    from orbitstore.core.limits import EntryLimits as EntryLimits
    from orbitstore.core.manifest import Manifest as Manifest
    from orbitstore.core.unixfs import AttachmentLimits as AttachmentLimits
    from orbitstore.core.unixfs import FileLayout as FileLayout
    from orbitstore.core.unixfs import ReadProgress as ReadProgress
    from orbitstore.errors import OrbitstoreError as OrbitstoreError
    from orbitstore.node.attachments import AttachmentsConfig as AttachmentsConfig
    from orbitstore.node.config import DiscoveryConfig as DiscoveryConfig
    from orbitstore.node.config import NodeConfig as NodeConfig
    from orbitstore.node.config import ReplicationConfig as ReplicationConfig
    from orbitstore.node.counter import Counter as Counter
    from orbitstore.node.database import Database as Database
    from orbitstore.node.documents import Documents as Documents
    from orbitstore.node.feed import Feed as Feed
    from orbitstore.node.handle_statistics import DatabaseStatistics as DatabaseStatistics
    from orbitstore.node.keyvalue import KeyValue as KeyValue
    from orbitstore.node.node import Node as Node
    from orbitstore.node.node import open_node as open_node
    from orbitstore.node.replication import SyncProgress as SyncProgress
    from orbitstore.node.subscription import Subscription as Subscription
    from orbitstore.node.ydoc import YDocument as YDocument
    from orbitstore.query.limits import QueryLimits as QueryLimits
    from orbitstore.query.results import QueryPlan as QueryPlan
    from orbitstore.query.results import QueryResult as QueryResult
    from orbitstore.storage.sqlite import SqliteConfig as SqliteConfig
    from orbitstore.views.base import Change as Change
    from orbitstore.views.base import Conflict as Conflict
    from orbitstore.views.base import Lagged as Lagged
    from orbitstore.views.feed import FeedItem as FeedItem

# name -> the module that defines it (kept equal to the block above by a test)
_EXPORTS: dict[str, str] = {
    "Cid": "orbitstore.core.cid",
    "Entry": "orbitstore.core.entry",
    "Identity": "orbitstore.core.identity",
    "EntryLimits": "orbitstore.core.limits",
    "Manifest": "orbitstore.core.manifest",
    "AttachmentLimits": "orbitstore.core.unixfs",
    "FileLayout": "orbitstore.core.unixfs",
    "ReadProgress": "orbitstore.core.unixfs",
    "OrbitstoreError": "orbitstore.errors",
    "AttachmentsConfig": "orbitstore.node.attachments",
    "DiscoveryConfig": "orbitstore.node.config",
    "NodeConfig": "orbitstore.node.config",
    "ReplicationConfig": "orbitstore.node.config",
    "Counter": "orbitstore.node.counter",
    "Database": "orbitstore.node.database",
    "DatabaseStatistics": "orbitstore.node.handle_statistics",
    "Documents": "orbitstore.node.documents",
    "Feed": "orbitstore.node.feed",
    "KeyValue": "orbitstore.node.keyvalue",
    "Node": "orbitstore.node.node",
    "open_node": "orbitstore.node.node",
    "SyncProgress": "orbitstore.node.replication",
    "Subscription": "orbitstore.node.subscription",
    "YDocument": "orbitstore.node.ydoc",
    "QueryLimits": "orbitstore.query.limits",
    "QueryPlan": "orbitstore.query.results",
    "QueryResult": "orbitstore.query.results",
    "SqliteConfig": "orbitstore.storage.sqlite",
    "Change": "orbitstore.views.base",
    "Conflict": "orbitstore.views.base",
    "Lagged": "orbitstore.views.base",
    "FeedItem": "orbitstore.views.feed",
}

__all__ = list(_EXPORTS)
__version__ = "0.1.0"


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
