"""Command implementations: ``cmd_<handler>(args, home, out)``, one node per command.

The node-wide commands live here; the per-type ones (``kv``, ``feed``, ``docs``,
``counter``, ``ydoc``) in :mod:`orbitstore.cli.typed`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from orbitstore.cli.output import (
    Output,
    entry_dict,
    jsonable,
    parse_object,
    parse_value,
    render,
    shown_info,
)
from orbitstore.cli.typed import open_as, open_existing
from orbitstore.core.manifest import is_address
from orbitstore.errors import InvalidValueError, NotFoundError, UsageError
from orbitstore.node import Counter, Documents, open_node
from orbitstore.node.access import writers_of
from orbitstore.node.database import Database
from orbitstore.node.feed import Feed
from orbitstore.node.keyvalue import KeyValue
from orbitstore.node.ydoc import YDocument
from orbitstore.query.catalog import queryable
from orbitstore.query.results import QueryResult


async def cmd_demo(args: argparse.Namespace, home: Path, out: Output) -> int:
    if args.count < 1:
        raise InvalidValueError("--count must be at least 1")
    out.emit(f"node directory: {home}", {"home": str(home)})
    async with open_node(home) as node:
        out.emit(f"writer id: {node.id}", {"id": node.id})
        db = await open_as(node, "demo", Database, create=True, out=None)
        before = len(db)
        async with db.batch():
            for i in range(args.count):
                await db.append({"n": before + i, "text": f"hello #{before + i}"})
        out.emit(
            f"appended {args.count} entries to {db.name!r} ({db.address}); heads: "
            + ", ".join(str(h)[:20] + "..." for h in sorted(db.heads)),
            {"appended": args.count, "address": db.address},
        )
        address = db.address
    out.emit("closed the node; reopening from disk...", {"reopened": True})
    async with open_node(home) as node:
        db = await node.open(address)
        out.emit(f"{len(db)} entries in total order (last {args.count}):", {"count": len(db)})
        for e in reversed(list(db.entries(reverse=True, limit=args.count))):
            out.emit(
                f"  clock={e.clock:<5} {str(e.cid)[:24]}...  {render(e.payload)}",
                entry_dict(e),
            )
        # The same node, other types: a keyvalue database and SQL over it.
        kv = await open_as(node, "demo_settings", KeyValue, create=True, out=None)
        await kv.put_many({"theme": "dark", "language": "en", "runs": kv.get("runs", 0) + 1})
        out.emit(
            f"keyvalue {kv.name!r}: " + ", ".join(f"{k}={render(v)}" for k, v in kv.items()),
            {"keyvalue": kv.name, "items": {k: jsonable(v) for k, v in kv.items()}},
        )
        sql = "SELECT key, value, clock FROM demo_settings WHERE key <> ? ORDER BY key"
        out.emit(f"SQL: {sql}  -- with ? = 'language'", {"sql": sql})
        out.table(*_columns_rows(node.query(sql, ["language"])))
    return 0


async def cmd_id(args: argparse.Namespace, home: Path, out: Output) -> int:
    async with open_node(home) as node:
        out.emit(node.id, {"id": node.id})
    return 0


async def cmd_ls(args: argparse.Namespace, home: Path, out: Output) -> int:
    async with open_node(home) as node:
        for name, address in node.databases().items():
            type_name = node.manifest(name).type
            out.emit(
                f"{name}\t{type_name}\t{address}",
                {"name": name, "type": type_name, "address": address},
            )
    return 0


async def cmd_create(args: argparse.Namespace, home: Path, out: Output) -> int:
    if is_address(args.name):
        raise UsageError("a new database needs a local name, not an address")
    if args.replica and not args.private:
        raise UsageError("--replica names who may hold a --private database")
    meta = parse_object(args.meta, "--meta") if args.meta is not None else None
    async with open_node(home) as node:
        try:
            existing = node.manifest(args.name)
        except NotFoundError:
            pass
        else:
            raise UsageError(
                f"this node already has a {existing.type} database named {args.name!r}"
                f" ({existing.address})"
            )
        db = await node.open(
            args.name,
            type=args.type,
            write=args.write,
            meta=meta,
            access=args.access,
            private=args.private,
            replicas=args.replica,
        )
        writers = db.manifest.access.to_manifest().get("write", [])
        out.emit(
            db.address,
            {"name": db.name, "type": db.type, "address": db.address, "writers": writers},
        )
    return 0


async def cmd_info(args: argparse.Namespace, home: Path, out: Output) -> int:
    async with open_node(home) as node:
        db = await open_existing(node, args.name)
        out.record(shown_info(_info(db), out))
    return 0


def _info(db: Database) -> dict[str, Any]:
    access = db.manifest.access.to_manifest()
    info: dict[str, Any] = {
        "name": db.name,
        "type": db.type,
        "address": db.address,
        "entries": len(db),
        "heads": sorted(str(h) for h in db.heads),
        "access": access.get("type", "?"),
        "writers": access.get("write", []),
        "users": writers_of(db),
    }
    if db.manifest.meta:
        info["meta"] = jsonable(db.manifest.meta)
    stats = dataclasses.asdict(db.statistics())
    if isinstance(db, KeyValue):
        stats["keys"] = db.count()
    elif isinstance(db, Feed):
        stats["items"] = db.count()
    elif isinstance(db, Documents):
        stats["documents"] = db.count()
        stats["indexes"] = db.indexes()
    elif isinstance(db, Counter):
        stats["value"] = db.value
    elif isinstance(db, YDocument):
        stats.update(dataclasses.asdict(db.statistics().document))
    info["statistics"] = stats
    return info


async def cmd_drop(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.cli.remote_admin import refuse_drop_without_yes

    refuse_drop_without_yes(args)
    async with open_node(home) as node:
        report = await node.drop(args.name)
    out.emit(
        f"dropped {args.name!r} ({report.address}): {report.entries} entries removed",
        {
            "address": report.address,
            "names": list(report.names),
            "entries": report.entries,
            "dropped": True,
        },
    )
    return 0


async def cmd_append(args: argparse.Namespace, home: Path, out: Output) -> int:
    value = parse_value(args.value)
    async with open_node(home) as node:
        db = await open_as(node, args.name, Database, create=True, out=out)
        entry = await db.append(value)
        out.emit(str(entry.cid), entry_dict(entry))
    return 0


async def cmd_log(args: argparse.Namespace, home: Path, out: Output) -> int:
    async with open_node(home) as node:
        db = await open_existing(node, args.name)
        for e in db.entries(reverse=args.reverse, limit=args.limit):
            out.emit(f"{e.clock}\t{e.cid}\t{render(e.payload)}", entry_dict(e))
    return 0


async def cmd_query(args: argparse.Namespace, home: Path, out: Output) -> int:
    params = [parse_value(p, "--param") for p in args.param or []]
    async with open_node(home) as node:
        # node.query sees the open databases, each as the table of its local name.
        for name in node.databases():
            manifest = node.manifest(name)
            if queryable(manifest.type):
                await node.open(name, type=manifest.type)
        if args.explain:
            plan = node.explain(args.sql, params)
            rows = [(s.table, s.access, s.index, s.path, s.detail) for s in plan.steps]
            out.table(("table", "access", "index", "path", "detail"), rows)
            return 0
        out.table(*_columns_rows(node.query(args.sql, params)))
    return 0


def _columns_rows(result: QueryResult) -> tuple[tuple[str, ...], tuple[tuple[Any, ...], ...]]:
    return result.columns, result.rows


async def cmd_check(args: argparse.Namespace, home: Path, out: Output) -> int:
    """Exit status 0 when the store is sound (or every problem was repaired), else 1."""
    async with open_node(home) as node:
        report = node.check(repair=args.repair, progress=None if out.json else _progress)
    if not out.json and sys.stderr.isatty():
        print(file=sys.stderr)  # end the progress line
    for problem in report.problems:
        where = f" {problem.database}" if problem.database else ""
        what = f" {problem.cid}" if problem.cid else ""
        state = " (repaired)" if problem.repaired else ""
        out.emit(
            f"{problem.kind}:{where}{what}: {problem.message}{state}",
            {"problem": problem.to_dict()},
        )
    summary = report.to_dict()
    del summary["problems"]
    unrepaired = sum(not p.repaired for p in report.problems)
    if report.ok and not report.problems:
        text = f"ok: {report.databases} databases, {report.entries} entries checked"
    elif report.ok:
        text = f"repaired {len(report.problems)} problem(s)"
        if report.refetch:
            text += (
                f"; {len(report.refetch)} entries were removed and will be fetched again"
                " from peers on the next sync (run `orbitstore serve` with peers)"
            )
    else:
        text = f"{unrepaired} problem(s) found" + (
            "" if args.repair else "; run `orbitstore check --repair`"
        )
    out.emit(text, {"summary": summary})
    return 0 if report.ok else 1


def _progress(phase: str, done: int, total: int) -> None:
    if sys.stderr.isatty():
        count = f" {done}/{total}" if total else ""
        print(f"\rchecking {phase}{count}   ", end="", file=sys.stderr, flush=True)


async def cmd_serve(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.cli import serve

    return await serve.cmd_serve(args, home)


def _needs_serve(what: str) -> UsageError:
    return UsageError(
        f"{what} needs a running node: start `orbitstore serve` on this --home (its API is"
        " on by default), then run this again"
    )


async def cmd_peers(args: argparse.Namespace, home: Path, out: Output) -> int:
    raise _needs_serve("`orbitstore peers`")


async def cmd_connect(args: argparse.Namespace, home: Path, out: Output) -> int:
    raise _needs_serve("`orbitstore connect`")


async def cmd_sync_status(args: argparse.Namespace, home: Path, out: Output) -> int:
    raise _needs_serve("`orbitstore sync status`")


async def cmd_watch(args: argparse.Namespace, home: Path, out: Output) -> int:
    raise _needs_serve("`orbitstore watch`")
