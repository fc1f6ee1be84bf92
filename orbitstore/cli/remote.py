"""The commands, through the HTTP API of the ``orbitstore serve`` that owns the directory.

While a node runs, its directory is locked (storage/lock.py): a command cannot open it,
and a write made beside it would never be replicated. ``main`` asks
:func:`orbitstore.cli.apifile.running_api`; when it names a live API, a command listed
in :data:`HANDLERS` runs here instead, prints what the direct command prints, and maps
an API error back to our error class of the same ``code`` (exit status 2,
``error: <message> [<code>]``). The others open the directory as before (and meet the
lock's NodeLockedError). Only the standard library's ``http.client`` is used: no httpx,
no trio, so ``kv get`` stays quick.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
from collections.abc import Callable
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode, urlsplit

from orbitstore import errors
from orbitstore.cli.apifile import RunningApi
from orbitstore.cli.attachments import REMOTE_HANDLERS as REMOTE_ATTACHMENTS
from orbitstore.cli.output import Output, parse_object, parse_value, render, shown_info
from orbitstore.cli.sync_view import TerminalBars, Waiter, refusals, sync_state
from orbitstore.core import dagjson
from orbitstore.errors import OrbitstoreError, error_classes

# A local API answers at once; a stuck one should not hang the terminal forever.
TIMEOUT_S = 60.0
# Bytes per read and write of a CAR download or upload.
CHUNK_BYTES = 256 * 1024


class ApiUnreachable(Exception):
    """The API named in api.json does not answer (the caller opens the directory)."""


class _Connection(http.client.HTTPConnection):
    """``http.client`` sends a request's headers and body in two writes; without
    TCP_NODELAY the body waits for the server to acknowledge the headers (Nagle's
    algorithm against delayed ACKs): a PUT through the API took ~2x as long."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Client:
    """One connection to the API; ``call`` answers the JSON body or raises our error."""

    def __init__(self, api: RunningApi) -> None:
        parts = urlsplit(api.url)
        self._conn = _Connection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=TIMEOUT_S)
        self._token = api.token
        self._used = False
        self.api = api

    def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self._conn.request(method, path, body=data, headers=headers)
            response = self._conn.getresponse()
            raw = response.read()
            # One connection per request: the server may close a connection after an
            # error answer without saying so, and a local connect costs nothing.
            self._conn.close()
        except (ConnectionRefusedError, ConnectionResetError) as exc:
            if not self._used:  # nothing was done: the directory may be opened instead
                raise ApiUnreachable(str(exc)) from exc
            raise errors.NetworkError(f"the node's API stopped answering: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise errors.NetworkError(f"the node's API at {path} failed: {exc}") from exc
        self._used = True
        try:
            answer = json.loads(raw) if raw else None
        except ValueError as exc:
            raise errors.NetworkError(f"the node's API answered {path} with non-JSON") from exc
        if response.status >= 400:
            raise _error(answer, response.status)
        return answer

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def download(self, path: str, write: Callable[[bytes], object]) -> dict[str, str]:
        """GET ``path`` and hand the body to ``write`` in chunks (an error answer raises
        our error); returns the response headers (lower-case names)."""
        try:
            self._conn.request("GET", path, headers=self._headers())
            response = self._conn.getresponse()
            if response.status >= 400:
                self._used = True
                raw = response.read()
                self._conn.close()
                raise _error(_json_or_none(raw), response.status)
            while chunk := response.read(CHUNK_BYTES):
                write(chunk)
            self._conn.close()
        except (ConnectionRefusedError, ConnectionResetError) as exc:
            if not self._used:
                raise ApiUnreachable(str(exc)) from exc
            raise errors.NetworkError(f"the node's API stopped answering: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise errors.NetworkError(f"the node's API at {path} failed: {exc}") from exc
        self._used = True
        return {k.lower(): v for k, v in response.getheaders()}

    def upload(self, path: str, source: BinaryIO) -> Any:
        """POST the bytes of ``source`` (streamed in chunks) to ``path``; the JSON answer."""
        headers = {**self._headers(), "Content-Type": "application/vnd.ipld.car"}
        headers["Accept"] = "application/json"
        try:
            self._conn.putrequest("POST", path)
            headers["Transfer-Encoding"] = "chunked"
            for name, value in headers.items():
                self._conn.putheader(name, value)
            self._conn.endheaders()
            while chunk := source.read(CHUNK_BYTES):
                self._conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self._conn.send(b"0\r\n\r\n")
            response = self._conn.getresponse()
            raw = response.read()
            self._conn.close()
        except (ConnectionRefusedError, ConnectionResetError) as exc:
            if not self._used:
                raise ApiUnreachable(str(exc)) from exc
            raise errors.NetworkError(f"the node's API stopped answering: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise errors.NetworkError(f"the node's API at {path} failed: {exc}") from exc
        self._used = True
        answer = _json_or_none(raw)
        if response.status >= 400:
            raise _error(answer, response.status)
        return answer

    def close(self) -> None:
        self._conn.close()


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _error(answer: Any, status: int) -> OrbitstoreError:
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return errors.NetworkError(f"the node's API answered HTTP {status}")
    code, message = str(error.get("code", "error")), str(error.get("message", ""))
    cls = error_classes().get(code)
    if cls is None:
        exc = OrbitstoreError(message)
        exc.code = code  # keep the node's code even if this CLI does not know it
        return exc
    return cls(message)


api_error = _error  # for the command modules that make their own requests (attachments)


def db_path(name: str) -> str:
    return "/v1/databases/" + quote(name.removeprefix("/orbitstore/"), safe="")


def api_value(answer_value: Any) -> Any:
    """An API (DAG-JSON form) value as the DAG-CBOR value the direct command holds."""
    return dagjson.from_json(json.dumps(answer_value))


def creating(
    client: Client,
    args: argparse.Namespace,
    out: Output,
    *,
    type_name: str,
    method: str,
    path: str,
    body: Any,
) -> Any:
    """A write that creates its database on first use, like the direct commands."""
    try:
        return client.call(method, path, body)
    except errors.NotFoundError:
        if args.name.startswith("/orbitstore/"):
            raise
    info = client.call("POST", "/v1/databases", {"name": args.name, "type": type_name})
    out.note(f"created the {type_name} database {args.name!r} ({info['address']})")
    return client.call(method, path, body)


def _clock(client: Client, name: str, cid: str) -> Any:
    return client.call("GET", f"{db_path(name)}/entries/{quote(cid, safe='')}").get("clock")


def kv_put(client: Client, args: argparse.Namespace, out: Output) -> None:
    value = parse_value(args.value)
    body = {"value": json.loads(dagjson.to_json(value))}
    path = f"{db_path(args.name)}/keys/{quote(args.key, safe='')}"
    answer = creating(client, args, out, type_name="keyvalue", method="PUT", path=path, body=body)
    cid = answer["cid"]
    out.emit(cid, {"key": args.key, "cid": cid, "clock": _clock(client, args.name, cid)})


def kv_get(client: Client, args: argparse.Namespace, out: Output) -> None:
    answer = client.call("GET", f"{db_path(args.name)}/keys/{quote(args.key, safe='')}")
    out.emit(render(api_value(answer["value"])), {"key": args.key, "value": answer["value"]})


def kv_del(client: Client, args: argparse.Namespace, out: Output) -> None:
    answer = client.call("DELETE", f"{db_path(args.name)}/keys/{quote(args.key, safe='')}")
    cid = answer["cid"]
    out.emit(cid, {"key": args.key, "cid": cid, "clock": _clock(client, args.name, cid)})


def kv_ls(client: Client, args: argparse.Namespace, out: Output) -> None:
    from orbitstore.cli.remote_admin import pages

    query: dict[str, Any] = {}
    if args.prefix is not None:
        query["prefix"] = args.prefix
    for item in pages(client, f"{db_path(args.name)}/keys", "items", query, args.limit):
        out.emit(f"{item['key']}\t{render(api_value(item['value']))}", item)


def _item(item: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "cid", "writer", "clock", "ts", "value")
    return {k: item.get(k) for k in keys}


def feed_add(client: Client, args: argparse.Namespace, out: Output) -> None:
    body = {"value": json.loads(dagjson.to_json(parse_value(args.value)))}
    answer = creating(
        client,
        args,
        out,
        type_name="feed",
        method="POST",
        path=f"{db_path(args.name)}/items",
        body=body,
    )
    item = answer["items"][0]
    out.emit(item["id"], _item(item))


def feed_ls(client: Client, args: argparse.Namespace, out: Output) -> None:
    from orbitstore.cli.remote_admin import pages

    query: dict[str, Any] = {"reverse": "true" if args.reverse else "false"}
    for key in ("gt", "lt"):
        if getattr(args, key) is not None:
            query[key] = getattr(args, key)
    for item in pages(client, f"{db_path(args.name)}/items", "items", query, args.limit):
        out.emit(f"{item['id']}\t{render(api_value(item['value']))}", _item(item))


def docs_put(client: Client, args: argparse.Namespace, out: Output) -> None:
    doc = parse_object(args.document, "document")
    body = json.loads(dagjson.to_json(doc))
    answer = creating(
        client,
        args,
        out,
        type_name="documents",
        method="POST",
        path=f"{db_path(args.name)}/docs",
        body=body,
    )
    cid = answer["cid"]
    out.emit(
        f"{render(api_value(answer['id'])) if not isinstance(answer['id'], str) else answer['id']}"
        f"\t{cid}",
        {"id": answer["id"], "cid": cid, "clock": _clock(client, args.name, cid)},
    )


def docs_get(client: Client, args: argparse.Namespace, out: Output) -> None:
    answer = client.call("GET", f"{db_path(args.name)}/docs/{quote(args.id, safe='')}")
    out.emit(render(api_value(answer)), answer)


def docs_rm(client: Client, args: argparse.Namespace, out: Output) -> None:
    answer = client.call("DELETE", f"{db_path(args.name)}/docs/{quote(args.id, safe='')}")
    cid = answer["cid"]
    out.emit(cid, {"id": args.id, "cid": cid, "clock": _clock(client, args.name, cid)})


def counter_inc(client: Client, args: argparse.Namespace, out: Output) -> None:
    path = f"{db_path(args.name)}/counter"
    answer = creating(
        client, args, out, type_name="counter", method="POST", path=path, body={"by": args.by}
    )
    out.emit(str(answer["value"]), {"value": answer["value"]})


def counter_get(client: Client, args: argparse.Namespace, out: Output) -> None:
    answer = client.call("GET", f"{db_path(args.name)}/counter")
    out.emit(str(answer["value"]), {"value": answer["value"]})


def append(client: Client, args: argparse.Namespace, out: Output) -> None:
    body = {"payload": json.loads(dagjson.to_json(parse_value(args.value)))}
    e = creating(
        client,
        args,
        out,
        type_name="log",
        method="POST",
        path=f"{db_path(args.name)}/entries",
        body=body,
    )
    out.emit(
        e["cid"],
        {k: e.get(k) for k in ("cid", "clock", "writer", "ts", "payload")},
    )


def ls(client: Client, args: argparse.Namespace, out: Output) -> None:
    for db in client.call("GET", "/v1/databases")["databases"]:
        if db.get("name") is None:
            continue  # open by address only: the direct `ls` lists local names
        out.emit(
            f"{db['name']}\t{db['type']}\t{db['address']}",
            {"name": db["name"], "type": db["type"], "address": db["address"]},
        )


def create(client: Client, args: argparse.Namespace, out: Output) -> None:
    if args.name.startswith("/orbitstore/"):
        raise errors.UsageError("a new database needs a local name, not an address")
    if args.replica and not args.private:
        raise errors.UsageError("--replica names who may hold a --private database")
    body: dict[str, Any] = {"name": args.name, "type": args.type, "access": args.access}
    if args.write:
        body["write"] = args.write
    if args.meta is not None:
        body["meta"] = json.loads(dagjson.to_json(parse_object(args.meta, "--meta")))
    if args.private:
        body["private"] = True
    if args.replica is not None:
        body["replicas"] = args.replica
    names = {d.get("name"): d for d in client.call("GET", "/v1/databases")["databases"]}
    if args.name in names:
        existing = names[args.name]
        raise errors.UsageError(
            f"this node already has a {existing['type']} database named {args.name!r}"
            f" ({existing['address']})"
        )
    info = client.call("POST", "/v1/databases", body)
    writers = info.get("access", {}).get("write", [])
    out.emit(
        info["address"],
        {
            "name": info["name"],
            "type": info["type"],
            "address": info["address"],
            "writers": writers,
        },
    )


def query(client: Client, args: argparse.Namespace, out: Output) -> None:
    params = [json.loads(dagjson.to_json(parse_value(p, "--param"))) for p in args.param or []]
    if args.explain:
        plan = client.call("POST", "/v1/explain", {"sql": args.sql, "params": params})
        keys = ("table", "access", "index", "path", "detail")
        out.table(keys, [tuple(s.get(k) for k in keys) for s in plan["steps"]])
        return
    answer = client.call("POST", "/v1/query", {"sql": args.sql, "params": params})
    rows = [tuple(api_value(v) for v in row) for row in answer["rows"]]
    out.table(tuple(answer["columns"]), rows)


def docs_patch(client: Client, args: argparse.Namespace, out: Output) -> None:
    body = {"set": json.loads(dagjson.to_json(parse_object(args.set, "--set")))}
    answer = client.call("PATCH", f"{db_path(args.name)}/docs/{quote(args.id, safe='')}", body)
    cid = answer["cid"]
    out.emit(cid, {"id": args.id, "cid": cid, "clock": _clock(client, args.name, cid)})


def info(client: Client, args: argparse.Namespace, out: Output) -> None:
    """What ``GET /v1/databases/{db}`` says, in the direct command's layout."""
    got = client.call("GET", db_path(args.name))
    access = got.get("access") or {}
    shown: dict[str, Any] = {
        "name": got["name"],
        "type": got["type"],
        "address": got["address"],
        "entries": got["entries"],
        "heads": got["heads"],
        "access": access.get("type", "?"),
        "writers": access.get("write", []),
        "users": got.get("writers", []),
    }
    if got.get("meta"):
        shown["meta"] = got["meta"]
    stats = {k: got[k] for k in ("count", "indexes", "id_field", "value") if k in got}
    stats.update(got.get("ydoc") or {})
    shown["statistics"] = stats
    out.record(shown_info(shown, out))


def peers(client: Client, args: argparse.Namespace, out: Output) -> None:
    node = client.call("GET", "/v1/peers")
    out.emit(f"peer id: {node['peer_id']}", {"peer_id": node["peer_id"]})
    for address in node["addresses"]:
        out.emit(f"listening: {address}", {"address": address})
    for peer in node["connected"]:
        out.emit(f"connected: {peer}", {"connected": peer})


def connect(client: Client, args: argparse.Namespace, out: Output) -> None:
    answer = client.call("POST", "/v1/peers", {"address": args.address})
    out.emit(f"connected: {answer['peer']}", answer)


def sync_status(client: Client, args: argparse.Namespace, out: Output) -> None:
    """One line per open database; ``--wait``: follow until each is in sync (exit
    status 1 if ``--timeout`` passes first), with progress bars on a terminal."""

    def fetch() -> list[dict[str, Any]]:
        databases: list[dict[str, Any]] = client.call("GET", "/v1/sync")["databases"]
        return databases

    statuses, done = fetch(), True
    if getattr(args, "wait", False):
        draw = TerminalBars() if sys.stderr.isatty() and not out.json else None
        done, statuses = Waiter(fetch=fetch, timeout=args.timeout, draw=draw).run()
    for status in statuses:
        state = sync_state(status)
        name = status["name"] or status["address"]
        refused = refusals(status)
        out.emit(
            f"{name}: {state}" + "".join(f"\n  refused {r}" for r in refused),
            {
                "refused": refused,
                "name": name,
                "address": status["address"],
                "state": state,
                "missing": status["missing"],
                "needed": status["needed"],
                "entries": status["entries"],
            },
        )
    if not done:
        raise SyncNotSettled(f"not in sync after {args.timeout:g} s")


class SyncNotSettled(Exception):
    """``sync status --wait`` timed out (exit status 1, after the status lines)."""


# Each long-poll waits at most this long on the node before asking again (below TIMEOUT_S).
WATCH_POLL_S = 30


def watch(client: Client, args: argparse.Namespace, out: Output) -> None:
    """Long-poll the changes feed from a cursor; every change once, in commit order."""
    path = f"{db_path(args.name)}/changes"
    since = args.since
    if since is None:
        since = client.call("GET", db_path(args.name))["last_seq"]
    seen = 0
    while args.count is None or seen < args.count:
        query = urlencode({"since": since, "feed": "longpoll", "timeout": WATCH_POLL_S})
        page = client.call("GET", f"{path}?{query}")
        for change in page["results"]:
            if args.count is not None and seen >= args.count:
                break
            seen += 1
            payload = render(api_value(change["payload"]))
            out.emit(f"{change['seq']}\t{change['cid']}\t{payload}", change)
        since = page["last_seq"]
        sys.stdout.flush()


Handler = Callable[[Client, argparse.Namespace, Output], None]

#: The commands that go through the API (by ``args.handler``): a handler here, or
#: ``"module:function"`` in ``orbitstore.cli`` (imported only for that command). A
#: command module may also define ``api_<name>`` next to its ``cmd_<name>`` (handler
#: ``module.name``), as :mod:`orbitstore.cli.members` does; the others open the
#: directory directly.
HANDLERS: dict[str, Handler | str] = {
    "typed.kv_put": kv_put,
    "typed.kv_get": kv_get,
    "typed.kv_del": kv_del,
    "typed.kv_ls": kv_ls,
    "typed.feed_add": feed_add,
    "typed.feed_ls": feed_ls,
    "typed.docs_put": docs_put,
    "typed.docs_get": docs_get,
    "typed.docs_rm": docs_rm,
    "typed.docs_patch": docs_patch,
    "typed.docs_find": "remote_admin:docs_find",
    "typed.docs_index": "remote_admin:docs_index",
    "typed.counter_inc": counter_inc,
    "typed.counter_get": counter_get,
    "typed.ydoc_text": "remote_admin:ydoc_text",
    "typed.ydoc_append": "remote_admin:ydoc_append",
    "append": append,
    "ls": ls,
    "create": create,
    "query": query,
    "info": info,
    "peers": peers,
    "connect": connect,
    "sync_status": sync_status,
    "watch": watch,
    "id": "remote_admin:node_id",
    "log": "remote_admin:log",
    "drop": "remote_admin:drop",
    "check": "remote_admin:check",
    "archive.export": "remote_admin:export",
    "archive.import": "remote_admin:import_",
    **REMOTE_ATTACHMENTS,
}

# Commands that only make sense on this process (they start a node or do not touch one).
LOCAL_ONLY = frozenset({"serve", "run.run", "demo"})


def find(handler: str) -> Handler | None:
    """The API implementation of the command ``handler``, or None if it has none."""
    import importlib

    found = HANDLERS.get(handler)
    if callable(found):
        return found
    if isinstance(found, str):
        module, _, name = found.partition(":")
        function: Handler = getattr(importlib.import_module(f"orbitstore.cli.{module}"), name)
        return function
    module, _, name = handler.rpartition(".")
    if not module or handler in LOCAL_ONLY:
        return None
    try:
        command_module = importlib.import_module(f"orbitstore.cli.{module}")
    except ImportError:
        return None
    candidate = getattr(command_module, f"api_{name}", None)
    return candidate if callable(candidate) else None


def run(api: RunningApi, args: argparse.Namespace, out: Output) -> int:
    """Run the command through ``api``; ApiUnreachable if it did not answer at all."""
    handler = find(args.handler)
    assert handler is not None
    client = Client(api)
    try:
        handler(client, args, out)
    except SyncNotSettled:
        return 1
    finally:
        client.close()
    return 0
