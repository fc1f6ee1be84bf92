"""The OpenAPI 3.1 document of the API, and a small self-contained page to browse and
try it (no CDN: the page is one HTML file with a few lines of script)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from orbitstore.server import routes_attachments
from orbitstore.server.responses import JSONResponse

_DB = {"name": "db", "in": "path", "required": True, "description": "local name or CID"}
_JSON_BODY = {"content": {"application/json": {"schema": {"type": "object"}}}}
_BYTES_BODY = {"content": {"application/octet-stream": {"schema": {"type": "string"}}}}
_CAR_BODY = {"content": {"application/vnd.ipld.car": {"schema": {"type": "string"}}}}


def _q(*names: str) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in names
    ]


def _p(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


# (method, path, summary, extra parameters, request body)
_OPERATIONS: list[tuple[str, str, str, list[dict[str, Any]], dict[str, Any] | None]] = [
    ("get", "/v1/node", "This node: writer id, peer id, addresses, connected peers", [], None),
    ("get", "/v1/databases", "Databases this node knows by local name", [], None),
    (
        "post",
        "/v1/databases",
        "Create or open: {name, type, write, meta} or {address}",
        [],
        _JSON_BODY,
    ),
    (
        "get",
        "/v1/databases/{db}",
        "Database info (type, access, entries, heads, last_seq)",
        [],
        None,
    ),
    ("post", "/v1/databases/{db}/close", "Close the database's handle on this node", [], None),
    (
        "delete",
        "/v1/databases/{db}",
        "Drop: close, stop replicating, remove its data from this node",
        [],
        None,
    ),
    ("get", "/v1/databases/{db}/car", "Export the database as a CAR v1 file", [], None),
    ("post", "/v1/import", "Import a CAR file (?name= gives a local name)", _q("name"), _CAR_BODY),
    (
        "get",
        "/v1/databases/{db}/entries",
        "Log entries in total order (a page; next is the after= of the next)",
        _q("limit", "reverse", "after"),
        None,
    ),
    ("post", "/v1/databases/{db}/entries", "Append {payload} to a log database", [], _JSON_BODY),
    ("get", "/v1/databases/{db}/entries/{cid}", "One entry by CID", [_p("cid")], None),
    (
        "get",
        "/v1/databases/{db}/changes",
        "Changes feed (since, limit, feed=longpoll, timeout, conflicts)",
        _q("since", "limit", "feed", "timeout", "conflicts"),
        None,
    ),
    (
        "get",
        "/v1/databases/{db}/keys",
        "keyvalue: live items in key order (a page; next is the after= of the next)",
        _q("prefix", "start", "stop", "limit", "reverse", "after"),
        None,
    ),
    (
        "get",
        "/v1/databases/{db}/keys/{key}",
        "keyvalue: get (conflicts=true adds the concurrent losing writes)",
        [_p("key"), *_q("conflicts")],
        None,
    ),
    ("put", "/v1/databases/{db}/keys/{key}", "keyvalue: put {value}", [_p("key")], _JSON_BODY),
    ("delete", "/v1/databases/{db}/keys/{key}", "keyvalue: delete", [_p("key")], None),
    ("get", "/v1/databases/{db}/docs", "documents: all, by id", _q("limit"), None),
    ("post", "/v1/databases/{db}/docs", "documents: put (the id field inside)", [], _JSON_BODY),
    (
        "get",
        "/v1/databases/{db}/docs/{id}",
        "documents: get (conflicts=true adds _conflicts)",
        [_p("id"), *_q("conflicts")],
        None,
    ),
    (
        "post",
        "/v1/databases/{db}/docs/find",
        "documents: find {filter, sort, limit, skip}",
        [],
        _JSON_BODY,
    ),
    ("get", "/v1/databases/{db}/indexes", "documents: declared indexes", [], None),
    ("post", "/v1/databases/{db}/indexes", "documents: declare an index {field}", [], _JSON_BODY),
    ("put", "/v1/databases/{db}/docs/{id}", "documents: put", [_p("id")], _JSON_BODY),
    (
        "patch",
        "/v1/databases/{db}/docs/{id}",
        "documents: patch {set, unset}",
        [_p("id")],
        _JSON_BODY,
    ),
    ("delete", "/v1/databases/{db}/docs/{id}", "documents: delete", [_p("id")], None),
    (
        "get",
        "/v1/databases/{db}/items",
        "feed: items (gt, gte, lt, lte, limit, reverse; a page, next is the after=)",
        _q("gt", "gte", "lt", "lte", "limit", "reverse", "after"),
        None,
    ),
    ("post", "/v1/databases/{db}/items", "feed: add {value} or {values}", [], _JSON_BODY),
    ("get", "/v1/databases/{db}/items/{item}", "feed: one item", [_p("item")], None),
    ("get", "/v1/databases/{db}/counter", "counter: value", [], None),
    ("post", "/v1/databases/{db}/counter", "counter: increment {by}", [], _JSON_BODY),
    ("get", "/v1/databases/{db}/ydoc/state", "ydoc: the document as one Yjs update", [], None),
    ("post", "/v1/databases/{db}/ydoc/update", "ydoc: apply one Yjs update", [], _BYTES_BODY),
    ("get", "/v1/databases/{db}/ydoc/text", "ydoc: a root Text's content", _q("field"), None),
    (
        "post",
        "/v1/databases/{db}/ydoc/text",
        "ydoc: append {text, field} to a root Text",
        [],
        _JSON_BODY,
    ),
    (
        "get",
        "/v1/databases/{db}/members",
        "Members and their rights (ops=true adds every ACL op)",
        _q("ops"),
        None,
    ),
    (
        "get",
        "/v1/databases/{db}/writers",
        "Writers as users with their devices (linked or unlinked, since when)",
        [],
        None,
    ),
    ("post", "/v1/databases/{db}/members", "Grant {did, right, scope}", [], _JSON_BODY),
    ("post", "/v1/databases/{db}/members/revoke", "Revoke {did, right, scope}", [], _JSON_BODY),
    ("post", "/v1/databases/{db}/invites", "A one-time invite link {scope}", [], _JSON_BODY),
    ("post", "/v1/databases/{db}/invites/revoke", "Revoke an unused invite {link}", [], _JSON_BODY),
    ("post", "/v1/redeem", "Redeem an invite {link} for this node", _q("timeout"), _JSON_BODY),
    ("get", "/v1/databases/{db}/sync", "Sync status of one database (ydoc: awareness)", [], None),
    ("post", "/v1/query", "SQL: {sql, params, database?}", [], _JSON_BODY),
    ("post", "/v1/explain", "EXPLAIN: {sql, params, database?}", [], _JSON_BODY),
    ("get", "/v1/sync", "Sync status of every database (ydoc: awareness)", [], None),
    ("get", "/v1/peers", "Peer id, addresses, connected peers", [], None),
    ("post", "/v1/peers", "Connect to a peer: {address}", [], _JSON_BODY),
    *routes_attachments.OPERATIONS,
]

_WEBSOCKETS = {
    "/v1/databases/{db}/changes/ws": "WebSocket: the changes feed from ?since=N, then live",
    "/v1/watch": "WebSocket: a live query; send {sql, params, database?}",
    "/ydoc/{db}": "WebSocket: y-websocket sync and awareness for a ydoc database",
}

_ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def openapi_document(version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, params, body in _OPERATIONS:
        op: dict[str, Any] = {
            "summary": summary,
            "parameters": ([{**_DB, "schema": {"type": "string"}}] if "{db}" in path else [])
            + params,
            "responses": {"200": {"description": "JSON"}, "default": _ERROR},
        }
        if body is not None:
            op["requestBody"] = body
        paths.setdefault(path, {})[method] = op
    for path, summary in _WEBSOCKETS.items():
        paths.setdefault(path, {})["get"] = {
            "summary": summary,
            "description": "Upgrade to a WebSocket (see docs/http-api.md).",
            "responses": {"101": {"description": "switching protocols"}},
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "orbitstore node API", "version": version},
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                            "required": ["code", "message"],
                        }
                    },
                }
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>orbitstore API</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}
code,pre,textarea,input{font:13px ui-monospace,monospace}
details{border:1px solid #ddd;margin:.3em 0;padding:.3em .6em;border-radius:4px}
summary{cursor:pointer}.m{display:inline-block;width:4.5em;font-weight:bold}
pre{background:#f6f6f6;padding:.5em;overflow:auto;max-height:30em}
</style></head><body>
<h1>orbitstore API</h1>
<p>The <a href="/openapi.json">OpenAPI document</a>; the guide is docs/http-api.md.
Token (if the node needs one): <input id="token" size="40"></p>
<div id="ops"></div>
<script>
async function main(){
  const spec = await (await fetch('/openapi.json')).json();
  const ops = document.getElementById('ops');
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const d = document.createElement('details');
      const s = document.createElement('summary');
      s.innerHTML = '<span class="m"></span><code></code> ';
      s.children[0].textContent = method.toUpperCase();
      s.children[1].textContent = path;
      s.append(op.summary);
      d.append(s);
      if (op.responses && op.responses['101']) { ops.append(d); continue; }
      const url = document.createElement('input'); url.size = 80; url.value = path;
      const body = document.createElement('textarea'); body.rows = 3; body.cols = 80;
      const go = document.createElement('button'); go.textContent = 'send';
      const out = document.createElement('pre');
      go.onclick = async () => {
        const headers = {'content-type': 'application/json'};
        const t = document.getElementById('token').value;
        if (t) headers['authorization'] = 'Bearer ' + t;
        const init = {method: method.toUpperCase(), headers};
        if (op.requestBody) init.body = body.value;
        const r = await fetch(url.value, init);
        out.textContent = r.status + ' ' + r.statusText + '\\n' + await r.text();
      };
      d.append(url, document.createElement('br'));
      if (op.requestBody) d.append(body, document.createElement('br'));
      d.append(go, out);
      ops.append(d);
    }
  }
}
main();
</script></body></html>
"""


async def openapi_route(request: Request) -> Response:
    from orbitstore import __version__

    return JSONResponse(openapi_document(__version__))


async def docs_page(request: Request) -> Response:
    return HTMLResponse(_PAGE)


def routes() -> list[BaseRoute]:
    return [
        Route("/openapi.json", openapi_route, methods=["GET"]),
        Route("/docs", docs_page, methods=["GET"]),
    ]
