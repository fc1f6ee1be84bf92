"""The rest of the commands through a running node's API: ``id``, ``log``, ``docs find``
and ``docs index``, ``ydoc``, ``export`` and ``import``, ``drop``, and ``check`` (which
refuses, and says what to do). Like :mod:`orbitstore.cli.remote`, standard library only.

Listings come in pages (at most the node's page size, 1,000 by default): each page's
``next`` is the cursor of the following one, so ``log`` prints every entry however many
there are, in the order the direct command prints them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode

from orbitstore import errors
from orbitstore.cli.output import Output, parse_object, render, sort_spec
from orbitstore.cli.remote import Client, api_value, db_path
from orbitstore.core import dagjson

# The most a page can hold on any node (its ``changes_limit``); it answers fewer if lower.
PAGE = 1000


def pages(
    client: Client, path: str, key: str, query: dict[str, Any], limit: int | None
) -> Iterator[dict[str, Any]]:
    """Every item of a paged listing (``key`` in each page), at most ``limit``."""
    after: str | None = None
    left = limit
    while left is None or left > 0:
        params = dict(query)
        params["limit"] = PAGE if left is None else min(PAGE, left)
        if after is not None:
            params["after"] = after
        page = client.call("GET", f"{path}?{urlencode(params)}")
        items = page[key]
        yield from items[:left] if left is not None else items
        if left is not None:
            left -= len(items)
        after = page.get("next")
        if after is None or not items:
            return


def node_id(client: Client, args: argparse.Namespace, out: Output) -> None:
    writer = client.call("GET", "/v1/node")["writer"]
    out.emit(writer, {"id": writer})


def log(client: Client, args: argparse.Namespace, out: Output) -> None:
    query = {"reverse": "true" if args.reverse else "false"}
    for e in pages(client, f"{db_path(args.name)}/entries", "entries", query, args.limit):
        shown = {k: e.get(k) for k in ("cid", "clock", "writer", "ts", "payload")}
        out.emit(f"{e['clock']}\t{e['cid']}\t{render(api_value(e['payload']))}", shown)


def docs_find(client: Client, args: argparse.Namespace, out: Output) -> None:
    spec = parse_object(args.filter, "filter")
    body: dict[str, Any] = {
        "filter": json.loads(dagjson.to_json(spec)),
        "sort": [[f, d] for f, d in sort_spec(args.sort)],
        "skip": args.skip,
    }
    if args.limit is not None:
        body["limit"] = args.limit
    for doc in client.call("POST", f"{db_path(args.name)}/docs/find", body)["documents"]:
        out.emit(render(api_value(doc)), doc)


def docs_index(client: Client, args: argparse.Namespace, out: Output) -> None:
    path = f"{db_path(args.name)}/indexes"
    indexes = client.call("POST", path, {"field": args.field})["indexes"]
    out.emit(
        f"indexes of {args.name!r}: {', '.join(indexes)}",
        {"name": args.name, "indexes": indexes},
    )


def ydoc_text(client: Client, args: argparse.Namespace, out: Output) -> None:
    path = f"{db_path(args.name)}/ydoc/text?{urlencode({'field': args.field})}"
    answer = client.call("GET", path)
    out.emit(answer["text"], {"field": args.field, "text": answer["text"]})


def ydoc_append(client: Client, args: argparse.Namespace, out: Output) -> None:
    from orbitstore.cli.remote import creating

    body = {"text": args.string, "field": args.field}
    answer = creating(
        client,
        args,
        out,
        type_name="ydoc",
        method="POST",
        path=f"{db_path(args.name)}/ydoc/text",
        body=body,
    )
    cids = answer["entries"]
    out.emit("\n".join(cids) or "(no change)", {"field": args.field, "entries": cids})


def export(client: Client, args: argparse.Namespace, out: Output) -> None:
    path = f"{db_path(args.name)}/car"
    if args.file == "-":
        headers = client.download(path, sys.stdout.buffer.write)
        sys.stdout.buffer.flush()
    else:
        target = Path(args.file)
        partial = target.with_name(target.name + ".partial")
        with partial.open("wb") as f:
            headers = client.download(path, f.write)
        partial.replace(target)  # never leave half a file under the real name
    count = int(headers.get("x-orbitstore-entries", "0"))
    text = f"exported {args.name!r}: the manifest and {count} entries to {args.file}"
    if args.file == "-":  # standard output holds the CAR itself
        out.note(text)
    else:
        address = client.call("GET", db_path(args.name))["address"]
        out.emit(text, {"address": address, "entries": count, "file": args.file})


def import_(client: Client, args: argparse.Namespace, out: Output) -> None:
    query = f"?{urlencode({'name': args.name})}" if args.name else ""
    source: BinaryIO
    if args.file == "-":
        source = sys.stdin.buffer
        report = client.upload(f"/v1/import{query}", source)
    else:
        with Path(args.file).open("rb") as source:
            report = client.upload(f"/v1/import{query}", source)
    out.emit(
        f"imported {report['type']} database {report['address']}: {report['entries']} entries,"
        f" {report['added']} new",
        {k: report[k] for k in ("address", "type", "entries", "added", "skipped")},
    )


def refuse_drop_without_yes(args: argparse.Namespace) -> None:
    """``drop`` removes data: without ``--yes`` it only says what it would do."""
    if not args.yes:
        raise errors.UsageError(
            f"`orbitstore drop {args.name}` removes the database and all its entries from"
            " this node (peers keep their copies); run it again with --yes to do it"
        )


def drop(client: Client, args: argparse.Namespace, out: Output) -> None:
    refuse_drop_without_yes(args)
    report = client.call("DELETE", db_path(args.name))
    out.emit(
        f"dropped {args.name!r} ({report['address']}): {report['entries']} entries removed",
        report,
    )


def check(client: Client, args: argparse.Namespace, out: Output) -> None:
    """``check`` reads (and ``--repair`` rewrites) the store file itself, which the
    running node owns: it cannot run beside it."""
    raise errors.NodeLockedError(
        f"`orbitstore check` reads the store file directly, and the node serving this"
        f" directory (pid {client.api.pid}, API {client.api.url}) owns it: stop that node"
        f" (Ctrl-C, or `kill -TERM {client.api.pid}`), run `orbitstore check"
        f"{' --repair' if args.repair else ''}`, then start the node again"
    )
