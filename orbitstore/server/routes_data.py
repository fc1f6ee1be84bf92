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
from orbitstore.server.responses import (
    JSONResponse,
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
    local name; ``{"address": "/orbitstore/<cid>"}`` opens by address (asking peers for
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
    if kind is None:
        try:
            kind = api.node.manifest(ref).type
        except NotFoundError:
            kind = "log" if name is not None else None
    if kind is None:  # an address whose manifest we lack: its type comes from the peer
        db = await api.node.open(ref, type=await _type_from_peers(api, ref))
    else:
        db = await api.node.open(ref, type=kind, write=write, meta=meta)
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
    api = context(request)
    db = await api.handles.get(request.path_params["db"])
    limit = int_param(request.query_params, "limit", default=api.config.changes_limit)
    reverse = bool_param(request.query_params, "reverse")
    entries = [entry_json(e) for e in db.entries(reverse=reverse, limit=limit)]
    return JSONResponse({"entries": entries})


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
    kv = await context(request).handles.typed(request.path_params["db"], KeyValue)
    key = request.path_params["key"]
    missing = object()
    value = kv.get(key, missing)
    if value is missing:
        raise NotFoundError(f"{kv.name!r} has no key {key!r:.200}", key=key)
    return JSONResponse({"key": key, "value": jsonable(value)})


async def kv_delete(request: Request) -> Response:
    kv = await context(request).handles.typed(request.path_params["db"], KeyValue)
    entry = await kv.delete(request.path_params["key"])
    return JSONResponse({"key": request.path_params["key"], "cid": str(entry.cid)})


async def kv_items(request: Request) -> Response:
    api = context(request)
    kv = await api.handles.typed(request.path_params["db"], KeyValue)
    q = request.query_params
    items = kv.items(
        prefix=q.get("prefix"),
        start=q.get("start"),
        stop=q.get("stop"),
        limit=int_param(q, "limit", default=api.config.changes_limit),
        reverse=bool_param(q, "reverse"),
    )
    return JSONResponse({"items": [{"key": k, "value": jsonable(v)} for k, v in items]})


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
    docs = await context(request).handles.typed(request.path_params["db"], Documents)
    doc = docs.get(request.path_params["id"])
    if doc is None:
        raise NotFoundError(f"{docs.name!r} has no document {request.path_params['id']!r:.200}")
    return JSONResponse(jsonable(doc))


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
    items = feed.items(
        gt=q.get("gt"),
        gte=q.get("gte"),
        lt=q.get("lt"),
        lte=q.get("lte"),
        limit=int_param(q, "limit", default=api.config.changes_limit),
        reverse=bool_param(q, "reverse"),
    )
    return JSONResponse({"items": [item_json(i) for i in items]})


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
    ]
