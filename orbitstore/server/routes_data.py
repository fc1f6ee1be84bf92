"""Databases and their entries: create/open, list, info, close; each type's reads and
writes. Values are DAG-JSON (bytes ``{"/": {"bytes": "<base64>"}}``, links ``{"/": cid}``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from orbitstore.core.cid import Cid
from orbitstore.core.manifest import parse_address
from orbitstore.errors import (
    InvalidCidError,
    InvalidValueError,
    NotFoundError,
    WrongDatabaseTypeError,
)
from orbitstore.node.counter import Counter
from orbitstore.node.documents import Documents
from orbitstore.node.feed import Feed
from orbitstore.node.keyvalue import KeyValue
from orbitstore.node.ydoc import YDocument
from orbitstore.server.context import ApiContext, bool_param, context, int_param
from orbitstore.server.handles import database_info
from orbitstore.server.paging import cursor_entry, entries_page
from orbitstore.server.responses import (
    JSONResponse,
    conflicts_json,
    entry_json,
    field,
    json_object,
    jsonable,
    read_body,
)
from orbitstore.views.feed import FeedItem

# -- databases ----------------------------------------------------------------------------


async def list_databases(request: Request) -> Response:
    api = context(request)
    out = []
    open_now = {db.address: db for db in api.node.open_databases()}
    named = api.node.databases()
    for name, address in sorted(named.items()):
        manifest = api.handles.manifest(address)
        out.append(
            {"name": name, "address": address, "type": manifest.type, "open": address in open_now}
        )
    for address, db in open_now.items():  # opened by address: no local name here
        if address not in named.values():
            out.append({"name": None, "address": address, "type": db.type, "open": True})
    return JSONResponse({"databases": out})


async def open_database(request: Request) -> Response:
    """``{"name": ..., "type": ..., "write": [...], "meta": {...}}`` creates or opens by
    local name (``"private": true`` and ``"replicas": [did, ...]`` make a new one
    private); ``{"address": "/orbitstore/<cid>"}`` opens by address (asking peers for
    the manifest when this node lacks it)."""
    api = context(request)
    body = await json_object(request, api.config.max_body_bytes)
    name = field(body, "name", str, default=None)
    address = field(body, "address", str, default=None)
    if (name is None) == (address is None):
        raise InvalidValueError("give either 'name' (a local name) or 'address', not both")
    if address is not None:
        parse_address(address)  # InvalidAddressError for anything else
    ref = name if name is not None else address
    assert ref is not None
    write = field(body, "write", list, default=None)
    meta = field(body, "meta", dict, default=None)
    kind = field(body, "type", str, default=None)
    access = field(body, "access", str, default="static")
    encrypted = field(body, "encrypted", bool, default=False)
    private = field(body, "private", bool, default=False)
    replicas = field(body, "replicas", list, default=None)
    if kind is None:
        try:
            kind = api.node.manifest(ref).type
        except NotFoundError:
            kind = "log" if name is not None else None
    if kind is None:  # an address whose manifest we lack: its type comes from the peer
        db = await api.node.open(ref, type=await _type_from_peers(api, ref))
    else:
        db = await api.node.open(
            ref,
            type=kind,
            write=write,
            meta=meta,
            access=access,
            encrypted=encrypted,
            private=private,
            replicas=replicas,
        )
    api.handles.remember(db.name if name is not None else ref, db)
    return JSONResponse(database_info(db))


async def _type_from_peers(api: ApiContext, address: str) -> str:
    """Fetch the manifest (Node.open does, for the type given) and read its type: try
    ``log`` first and reopen with the manifest's type when it is another."""
    try:
        await api.node.open(address, type="log")
    except WrongDatabaseTypeError as exc:
        return str(exc.details["actual"])
    return "log"


async def database_info_route(request: Request) -> Response:
    db = await context(request).handles.get(request.path_params["db"])
    return JSONResponse(database_info(db))


async def close_database(request: Request) -> Response:
    db = await context(request).handles.close(request.path_params["db"])
    return JSONResponse({"name": db.name, "address": db.address, "open": False})


async def drop_database(request: Request) -> Response:
    """Close the database, stop replicating it and remove its data from this node."""
    api = context(request)
    ref = request.path_params["db"]
    report = await api.node.drop(api.handles.address_of(ref))
    api.handles.forget(report.address)
    return JSONResponse(
        {
            "address": report.address,
            "names": list(report.names),
            "entries": report.entries,
            "dropped": True,
        }
    )


# -- log (every type) -------------------------------------------------------------------


async def append_entry(request: Request) -> Response:
    api = context(request)
    db = await api.handles.get(request.path_params["db"])
    if db.type != "log":
        raise InvalidValueError(
            f"{db.name!r} is a {db.type} database: write through its own endpoints"
            " (raw entries are for log databases)"
        )
    body = await json_object(request, api.config.max_body_bytes)
    if "payload" not in body:
        raise InvalidValueError("the request body needs a 'payload' field")
    entry = await db.append(body["payload"])
    return JSONResponse(entry_json(entry, seq=None), status_code=201)


async def list_entries(request: Request) -> Response:
    """One page in total order; ``next`` (the last CID, when the page is full) is the
    ``after`` of the next page."""
    api = context(request)
    db = await api.handles.get(request.path_params["db"])
    q = request.query_params
    limit = _page_limit(api, q)
    reverse = bool_param(q, "reverse")
    after = q.get("after")
    cursor = cursor_entry(db, after) if after else None
    page = entries_page(db, api.node.store, after=cursor, reverse=reverse, limit=limit)
    entries = [entry_json(e) for e in page]
    following = entries[-1]["cid"] if len(entries) == limit else None
    return JSONResponse({"entries": entries, "next": following})


def _page_limit(api: ApiContext, q: Any) -> int:
    """``limit`` (default and at most the configured page size)."""
    limit = int_param(q, "limit", default=api.config.changes_limit)
    assert limit is not None
    return min(limit, api.config.changes_limit)


async def get_entry(request: Request) -> Response:
    db = await context(request).handles.get(request.path_params["db"])
    cid = request.path_params["cid"]
    try:
        entry = db.get_entry(Cid.parse(cid))
    except InvalidCidError as exc:  # a bad path segment is the caller's mistake (400)
        raise InvalidValueError(f"not a CID: {cid!r:.80}") from exc
    if entry is None:
        raise NotFoundError(f"{db.name!r} holds no entry {cid:.80}")
    return JSONResponse(entry_json(entry))


# -- keyvalue ------------------------------------------------------------------------------


async def kv_put(request: Request) -> Response:
    api = context(request)
    kv = await api.handles.typed(request.path_params["db"], KeyValue)
    body = await json_object(request, api.config.max_body_bytes)
    if "value" not in body:
        raise InvalidValueError("the request body needs a 'value' field")
    entry = await kv.put(request.path_params["key"], body["value"])
    return JSONResponse({"key": request.path_params["key"], "cid": str(entry.cid)})


async def kv_get(request: Request) -> Response:
    """``?conflicts=true`` adds the concurrent writes that lost to the value."""
    kv = await context(request).handles.typed(request.path_params["db"], KeyValue)
    key = request.path_params["key"]
    missing = object()
    value = kv.get(key, missing)
    with_conflicts = bool_param(request.query_params, "conflicts")
    if value is missing and not (with_conflicts and kv.conflicts(key)):
        raise NotFoundError(f"{kv.name!r} has no key {key!r:.200}", key=key)
    out: dict[str, Any] = {"key": key, "value": None if value is missing else jsonable(value)}
    if with_conflicts:
        out["deleted"] = value is missing
        out["conflicts"] = conflicts_json(kv.conflicts(key))
    return JSONResponse(out)


async def kv_delete(request: Request) -> Response:
    kv = await context(request).handles.typed(request.path_params["db"], KeyValue)
    entry = await kv.delete(request.path_params["key"])
    return JSONResponse({"key": request.path_params["key"], "cid": str(entry.cid)})


async def kv_items(request: Request) -> Response:
    api = context(request)
    kv = await api.handles.typed(request.path_params["db"], KeyValue)
    q = request.query_params
    limit, reverse = _page_limit(api, q), bool_param(q, "reverse")
    start, stop, after = q.get("start"), q.get("stop"), q.get("after")
    if after is not None and reverse:  # keys before the cursor (stop is exclusive)
        stop = after if stop is None else min(stop, after)
    elif after is not None:  # keys after it: from it (start is inclusive), skipping it
        start = after if start is None else max(start, after)
    items = kv.items(
        prefix=q.get("prefix"),
        start=start,
        stop=stop,
        limit=limit + 1 if after is not None and not reverse else limit,
        reverse=reverse,
    )
    page = [(k, v) for k, v in items if not (after is not None and k == after)][:limit]
    following = page[-1][0] if len(page) == limit else None
    return JSONResponse(
        {"items": [{"key": k, "value": jsonable(v)} for k, v in page], "next": following}
    )


# -- documents ----------------------------------------------------------------------------


async def doc_put(request: Request) -> Response:
    api = context(request)
    docs = await api.handles.typed(request.path_params["db"], Documents)
    doc = await json_object(request, api.config.max_body_bytes)
    doc_id = request.path_params.get("id")
    if doc_id is not None:
        given = doc.setdefault(docs.id_field, doc_id)
        if given != doc_id:
            raise InvalidValueError(
                f"the document's {docs.id_field!r} ({given!r:.80}) is not the id in the path"
            )
    entry = await docs.put(doc)
    return JSONResponse({"id": doc[docs.id_field], "cid": str(entry.cid)})


async def doc_get(request: Request) -> Response:
    """``?conflicts=true`` adds ``_conflicts`` (as CouchDB does): the concurrent writes
    that lost to this version; a deleted document with conflicts is ``{"_deleted":
    true, "_conflicts": [...]}``."""
    docs = await context(request).handles.typed(request.path_params["db"], Documents)
    doc_id = request.path_params["id"]
    doc = docs.get(doc_id)
    with_conflicts = bool_param(request.query_params, "conflicts")
    conflicts = docs.conflicts(doc_id) if with_conflicts else ()
    if doc is None and not conflicts:
        raise NotFoundError(f"{docs.name!r} has no document {doc_id!r:.200}")
    out: dict[str, Any] = (
        jsonable(doc) if doc is not None else {docs.id_field: doc_id, "_deleted": True}
    )
    if with_conflicts:
        out["_conflicts"] = conflicts_json(conflicts)
    return JSONResponse(out)


async def doc_delete(request: Request) -> Response:
    docs = await context(request).handles.typed(request.path_params["db"], Documents)
    entry = await docs.delete(request.path_params["id"])
    return JSONResponse({"id": request.path_params["id"], "cid": str(entry.cid)})


async def doc_patch(request: Request) -> Response:
    """``{"set": {field: value}, "unset": [field, ...]}``."""
    api = context(request)
    docs = await api.handles.typed(request.path_params["db"], Documents)
    body = await json_object(request, api.config.max_body_bytes)
    unknown = set(body) - {"set", "unset"}
    if unknown:
        raise InvalidValueError(f"a patch has 'set' and 'unset', not {sorted(unknown)}")
    entry = await docs.patch(
        request.path_params["id"],
        set=field(body, "set", dict, default={}),
        unset=field(body, "unset", list, default=[]),
    )
    return JSONResponse({"id": request.path_params["id"], "cid": str(entry.cid)})


async def doc_find(request: Request) -> Response:
    """``{"filter": {...}, "sort": [[field, 1 | -1], ...], "limit": n, "skip": n}``:
    the documents matching a Mongo-style filter (docs/query.md)."""
    api = context(request)
    docs = await api.handles.typed(request.path_params["db"], Documents)
    body = await json_object(request, api.config.max_body_bytes)
    unknown = set(body) - {"filter", "sort", "limit", "skip"}
    if unknown:
        raise InvalidValueError(f"a find has filter, sort, limit and skip, not {sorted(unknown)}")
    sort = []
    for item in field(body, "sort", list, default=[]):
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or item[1] not in (1, -1)
        ):
            raise InvalidValueError("'sort' is a list of [field, 1 or -1] pairs")
        sort.append((item[0], int(item[1])))
    limit = field(body, "limit", int, default=None)
    skip = field(body, "skip", int, default=0)
    if (limit is not None and limit < 0) or skip < 0:
        raise InvalidValueError("'limit' and 'skip' are 0 or more")
    found = docs.find(field(body, "filter", dict, default={}), sort=sort, limit=limit, skip=skip)
    return JSONResponse({"documents": [jsonable(d) for d in found]})


async def doc_indexes(request: Request) -> Response:
    docs = await context(request).handles.typed(request.path_params["db"], Documents)
    return JSONResponse({"indexes": docs.indexes()})


async def doc_create_index(request: Request) -> Response:
    """``{"field": "address.city"}``: declare an index on this node (not replicated)."""
    api = context(request)
    docs = await api.handles.typed(request.path_params["db"], Documents)
    path = field(await json_object(request, api.config.max_body_bytes), "field", str)
    await docs.create_index(path)
    return JSONResponse({"indexes": docs.indexes()})


async def doc_list(request: Request) -> Response:
    api = context(request)
    docs = await api.handles.typed(request.path_params["db"], Documents)
    limit = int_param(request.query_params, "limit", default=api.config.changes_limit)
    return JSONResponse({"documents": [jsonable(d) for d in docs.all(limit=limit)]})


# -- feed ------------------------------------------------------------------------------------


def item_json(item: FeedItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "cid": str(item.cid),
        "index": item.index,
        "writer": item.writer,
        "clock": item.clock,
        "ts": item.ts,
        "value": jsonable(item.value),
    }


async def feed_add(request: Request) -> Response:
    """``{"value": v}`` adds one item; ``{"values": [v, ...]}`` several in one entry."""
    api = context(request)
    feed = await api.handles.typed(request.path_params["db"], Feed)
    body = await json_object(request, api.config.max_body_bytes)
    if ("value" in body) == ("values" in body):
        raise InvalidValueError("give either 'value' (one item) or 'values' (a list)")
    if "value" in body:
        items = [await feed.add(body["value"])]
    else:
        items = await feed.add_many(field(body, "values", list))
    return JSONResponse({"items": [item_json(i) for i in items]}, status_code=201)


async def feed_items(request: Request) -> Response:
    api = context(request)
    feed = await api.handles.typed(request.path_params["db"], Feed)
    q = request.query_params
    limit, reverse = _page_limit(api, q), bool_param(q, "reverse")
    gt, gte, lt, lte, after = q.get("gt"), q.get("gte"), q.get("lt"), q.get("lte"), q.get("after")
    if after is not None and reverse:  # the cursor replaces the upper bound
        lt, lte = after, None
    elif after is not None:
        gt, gte = after, None
    items = [
        item_json(i)
        for i in feed.items(gt=gt, gte=gte, lt=lt, lte=lte, limit=limit, reverse=reverse)
    ]
    following = items[-1]["id"] if len(items) == limit else None
    return JSONResponse({"items": items, "next": following})


async def feed_item(request: Request) -> Response:
    feed = await context(request).handles.typed(request.path_params["db"], Feed)
    item = feed.get(request.path_params["item"])
    if item is None:
        raise NotFoundError(f"{feed.name!r} has no item {request.path_params['item']!r:.200}")
    return JSONResponse(item_json(item))


# -- counter ----------------------------------------------------------------------------------


async def counter_value(request: Request) -> Response:
    counter = await context(request).handles.typed(request.path_params["db"], Counter)
    return JSONResponse({"value": counter.value})


async def counter_increment(request: Request) -> Response:
    """``{"by": n}`` (default 1; negative to decrement)."""
    api = context(request)
    counter = await api.handles.typed(request.path_params["db"], Counter)
    body = await json_object(request, api.config.max_body_bytes)
    return JSONResponse({"value": await counter.increment(field(body, "by", int, default=1))})


# -- ydoc ------------------------------------------------------------------------------------


async def ydoc_update(request: Request) -> Response:
    """The body is one Yjs v1 update (``application/octet-stream``)."""
    api = context(request)
    ydoc = await api.handles.typed(request.path_params["db"], YDocument)
    update = await read_body(request, api.config.max_body_bytes)
    entry = await ydoc.append_update(update)
    return JSONResponse({"cid": str(entry.cid)}, status_code=201)


async def ydoc_text(request: Request) -> Response:
    """The content of a root Text (``?field=``, default ``text``)."""
    ydoc = await context(request).handles.typed(request.path_params["db"], YDocument)
    name = request.query_params.get("field", "text")
    return JSONResponse({"field": name, "text": ydoc.text(name)})


async def ydoc_append_text(request: Request) -> Response:
    """``{"text": "...", "field": "text"}``: append to a root Text, as one entry."""
    api = context(request)
    ydoc = await api.handles.typed(request.path_params["db"], YDocument)
    body = await json_object(request, api.config.max_body_bytes)
    name = field(body, "field", str, default="text")
    entries = await ydoc.append_text(field(body, "text", str), name=name)
    return JSONResponse({"field": name, "entries": [str(e.cid) for e in entries]})


async def ydoc_state(request: Request) -> Response:
    """The whole document as one Yjs v1 update (``Y.applyUpdate(doc, state)`` loads it)."""
    ydoc = await context(request).handles.typed(request.path_params["db"], YDocument)
    return Response(ydoc.snapshot(), media_type="application/octet-stream")


def routes() -> list[BaseRoute]:
    db = "/v1/databases/{db}"
    return [
        Route("/v1/databases", list_databases, methods=["GET"]),
        Route("/v1/databases", open_database, methods=["POST"]),
        Route(db, database_info_route, methods=["GET"]),
        Route(db, drop_database, methods=["DELETE"]),
        Route(db + "/close", close_database, methods=["POST"]),
        Route(db + "/entries", list_entries, methods=["GET"]),
        Route(db + "/entries", append_entry, methods=["POST"]),
        Route(db + "/entries/{cid}", get_entry, methods=["GET"]),
        Route(db + "/keys", kv_items, methods=["GET"]),
        Route(db + "/keys/{key:path}", kv_get, methods=["GET"]),
        Route(db + "/keys/{key:path}", kv_put, methods=["PUT"]),
        Route(db + "/keys/{key:path}", kv_delete, methods=["DELETE"]),
        Route(db + "/docs", doc_list, methods=["GET"]),
        Route(db + "/docs", doc_put, methods=["POST"]),
        Route(db + "/docs/find", doc_find, methods=["POST"]),
        Route(db + "/indexes", doc_indexes, methods=["GET"]),
        Route(db + "/indexes", doc_create_index, methods=["POST"]),
        Route(db + "/docs/{id}", doc_get, methods=["GET"]),
        Route(db + "/docs/{id}", doc_put, methods=["PUT"]),
        Route(db + "/docs/{id}", doc_patch, methods=["PATCH"]),
        Route(db + "/docs/{id}", doc_delete, methods=["DELETE"]),
        Route(db + "/items", feed_items, methods=["GET"]),
        Route(db + "/items", feed_add, methods=["POST"]),
        Route(db + "/items/{item:path}", feed_item, methods=["GET"]),
        Route(db + "/counter", counter_value, methods=["GET"]),
        Route(db + "/counter", counter_increment, methods=["POST"]),
        Route(db + "/ydoc/state", ydoc_state, methods=["GET"]),
        Route(db + "/ydoc/update", ydoc_update, methods=["POST"]),
        Route(db + "/ydoc/text", ydoc_text, methods=["GET"]),
        Route(db + "/ydoc/text", ydoc_append_text, methods=["POST"]),
    ]
