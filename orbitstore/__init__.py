"""orbitstore: an eventually-consistent, decentralized database for Python.

Every write is a signed entry in an append-only log; entries are DAG-CBOR blocks
addressed by CID; CRDT views turn the log into key-value, documents, feed, counter and
collaborative-text databases.

    async with orbitstore.open_node("data/") as node:
        db = await node.open("chat")
        await db.append({"text": "hello"})
"""

from orbitstore.core.cid import Cid as Cid
from orbitstore.core.entry import Entry as Entry
from orbitstore.core.identity import Identity as Identity
from orbitstore.core.limits import EntryLimits as EntryLimits
from orbitstore.core.manifest import Manifest as Manifest
from orbitstore.core.oplog import OpLog as OpLog
from orbitstore.core.oplog import ReceiveResult as ReceiveResult
from orbitstore.node import Counter as Counter
from orbitstore.node import Database as Database
from orbitstore.node import Documents as Documents
from orbitstore.node import Node as Node
from orbitstore.node import NodeConfig as NodeConfig
from orbitstore.node import open_node as open_node
from orbitstore.node.feed import Feed as Feed
from orbitstore.node.keyvalue import KeyValue as KeyValue
from orbitstore.node.ydoc import YDocument as YDocument
from orbitstore.storage.sqlite import SqliteConfig as SqliteConfig
from orbitstore.views.base import Conflict as Conflict
from orbitstore.views.feed import FeedItem as FeedItem

__version__ = "0.1.0"
