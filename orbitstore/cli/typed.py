"""The per-type commands: ``kv``, ``feed``, ``docs``, ``counter`` and ``ydoc``.

Commands that write create the database on first use (like ``node.open``), and say so on
stderr; commands that only read refuse a database the node does not know, so a typo
never leaves an empty database behind. Opening a database as another type than its
manifest declares is a WrongDatabaseTypeError.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from orbitstore.cli.output import (
    Output,
    jsonable,
    parse_object,
    parse_value,
    render,
    sort_spec,
)
from orbitstore.core.manifest import Manifest, is_address
from orbitstore.errors import NotFoundError
from orbitstore.node.database import Database
from orbitstore.node.node import Node, open_node

# Each command imports only its own type's handle: `kv get` never imports pycrdt.
if TYPE_CHECKING:
    from orbitstore.views.feed import FeedItem

D = TypeVar("D", bound=Database)

_MISSING = object()


async def open_existing(node: Node, name: str) -> Database:
    """A database the node knows, as the type its manifest declares."""
    manifest = _known_manifest(node, name, None)
    return await node.open(name, type=manifest.type)


async def open_as(node: Node, name: str, cls: type[D], *, create: bool, out: Output | None) -> D:
    """Open ``name`` as a ``cls`` database; create it if ``create`` and it is new."""
    fresh = False
    if create and not is_address(name):
        try:
            node.manifest(name)
        except NotFoundError:
            fresh = True
    else:
        _known_manifest(node, name, cls.type_name)
    db = await node.open(name, type=cls.type_name)
    if fresh and out is not None:
        out.note(f"created the {cls.type_name} database {name!r} ({db.address})")
    if not isinstance(db, cls):  # pragma: no cover - node.open checked the type
        raise TypeError(f"node.open returned {type(db).__name__} for a {cls.type_name}")
    return db


def _known_manifest(node: Node, name: str, type_name: str | None) -> Manifest:
    try:
        return node.manifest(name)
    except NotFoundError as exc:
        if is_address(name):
            raise
        hint = f" --type {type_name}" if type_name else " --type TYPE"
        raise NotFoundError(
            f"{exc} (create it with: orbitstore create {name}{hint})", name=name
        ) from exc


# -- keyvalue -------------------------------------------------------------------------------


async def cmd_kv_put(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node.keyvalue import KeyValue

    value = parse_value(args.value)
    async with open_node(home) as node:
        kv = await open_as(node, args.name, KeyValue, create=True, out=out)
        entry = await kv.put(args.key, value)
        out.emit(str(entry.cid), {"key": args.key, "cid": str(entry.cid), "clock": entry.clock})
    return 0


async def cmd_kv_get(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node.keyvalue import KeyValue

    async with open_node(home) as node:
        kv = await open_as(node, args.name, KeyValue, create=False, out=out)
        value = kv.get(args.key, _MISSING)
        if value is _MISSING:
            raise NotFoundError(f"no key {args.key!r:.200} in {kv.name!r}", key=args.key)
        out.emit(render(value), {"key": args.key, "value": jsonable(value)})
    return 0


async def cmd_kv_del(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node.keyvalue import KeyValue

    async with open_node(home) as node:
        kv = await open_as(node, args.name, KeyValue, create=False, out=out)
        entry = await kv.delete(args.key)
        out.emit(str(entry.cid), {"key": args.key, "cid": str(entry.cid), "clock": entry.clock})
    return 0


async def cmd_kv_ls(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node.keyvalue import KeyValue

    async with open_node(home) as node:
        kv = await open_as(node, args.name, KeyValue, create=False, out=out)
        for key, value in kv.items(prefix=args.prefix, limit=args.limit):
            out.emit(f"{key}\t{render(value)}", {"key": key, "value": jsonable(value)})
    return 0


# -- feed -----------------------------------------------------------------------------------


def _item_dict(item: FeedItem) -> dict[str, object]:
    return {
        "id": item.id,
        "cid": str(item.cid),
        "writer": item.writer,
        "clock": item.clock,
        "ts": item.ts,
        "value": jsonable(item.value),
    }


async def cmd_feed_add(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node.feed import Feed

    value = parse_value(args.value)
    async with open_node(home) as node:
        feed = await open_as(node, args.name, Feed, create=True, out=out)
        item = await feed.add(value)
        out.emit(item.id, _item_dict(item))
    return 0


async def cmd_feed_ls(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node.feed import Feed

    async with open_node(home) as node:
        feed = await open_as(node, args.name, Feed, create=False, out=out)
        items = feed.items(gt=args.gt, lt=args.lt, limit=args.limit, reverse=args.reverse)
        for item in items:
            out.emit(f"{item.id}\t{render(item.value)}", _item_dict(item))
    return 0


# -- documents ------------------------------------------------------------------------------


async def cmd_docs_put(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node.documents import Documents

    doc = parse_object(args.document, "document")
    async with open_node(home) as node:
        docs = await open_as(node, args.name, Documents, create=True, out=out)
        entry = await docs.put(doc)
        doc_id = doc.get(docs.id_field)
        out.emit(
            f"{doc_id}\t{entry.cid}",
            {"id": jsonable(doc_id), "cid": str(entry.cid), "clock": entry.clock},
        )
    return 0


async def cmd_docs_get(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node.documents import Documents

    async with open_node(home) as node:
        docs = await open_as(node, args.name, Documents, create=False, out=out)
        doc = docs.get(args.id)
        if doc is None:
            raise NotFoundError(f"no document {args.id!r:.200} in {docs.name!r}", id=args.id)
        out.emit(render(doc), jsonable(doc))
    return 0


async def cmd_docs_rm(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node.documents import Documents

    async with open_node(home) as node:
        docs = await open_as(node, args.name, Documents, create=False, out=out)
        entry = await docs.delete(args.id)
        out.emit(str(entry.cid), {"id": args.id, "cid": str(entry.cid), "clock": entry.clock})
    return 0


async def cmd_docs_find(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node.documents import Documents

    spec = parse_object(args.filter, "filter")
    sort = sort_spec(args.sort)
    async with open_node(home) as node:
        docs = await open_as(node, args.name, Documents, create=False, out=out)
        for doc in docs.find(spec, sort=sort, limit=args.limit, skip=args.skip):
            out.emit(render(doc), jsonable(doc))
    return 0


async def cmd_docs_patch(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node.documents import Documents

    fields = parse_object(args.set, "--set")
    async with open_node(home) as node:
        docs = await open_as(node, args.name, Documents, create=False, out=out)
        entry = await docs.patch(args.id, set=fields)
        out.emit(str(entry.cid), {"id": args.id, "cid": str(entry.cid), "clock": entry.clock})
    return 0


async def cmd_docs_index(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node.documents import Documents

    async with open_node(home) as node:
        docs = await open_as(node, args.name, Documents, create=False, out=out)
        await docs.create_index(args.field)
        indexes = docs.indexes()
        out.emit(
            f"indexes of {docs.name!r}: {', '.join(indexes)}",
            {"name": docs.name, "indexes": indexes},
        )
    return 0


# -- counter --------------------------------------------------------------------------------


async def cmd_counter_inc(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node.counter import Counter

    async with open_node(home) as node:
        counter = await open_as(node, args.name, Counter, create=True, out=out)
        value = await counter.increment(args.by)
        out.emit(str(value), {"value": value})
    return 0


async def cmd_counter_get(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node.counter import Counter

    async with open_node(home) as node:
        counter = await open_as(node, args.name, Counter, create=False, out=out)
        out.emit(str(counter.value), {"value": counter.value})
    return 0


# -- ydoc -----------------------------------------------------------------------------------


async def cmd_ydoc_text(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node.ydoc import YDocument

    async with open_node(home) as node:
        ydoc = await open_as(node, args.name, YDocument, create=False, out=out)
        text = ydoc.text(args.field)
        out.emit(text, {"field": args.field, "text": text})
    return 0


async def cmd_ydoc_append(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node.ydoc import YDocument

    async with open_node(home) as node:
        ydoc = await open_as(node, args.name, YDocument, create=True, out=out)
        entries = await ydoc.append_text(args.string, name=args.field)
        cids = [str(e.cid) for e in entries]
        out.emit("\n".join(cids) or "(no change)", {"field": args.field, "entries": cids})
    return 0
