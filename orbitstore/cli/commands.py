"""Command implementations (each ``cmd_<name>(args, home)``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from orbitstore.core.codec import Value
from orbitstore.core.entry import Entry
from orbitstore.errors import InvalidValueError
from orbitstore.node import open_node


def _out(args: argparse.Namespace, text: str, obj: dict[str, Any]) -> None:
    print(json.dumps(obj, default=str) if args.json else text)


def _entry_dict(e: Entry) -> dict[str, Any]:
    return {
        "cid": str(e.cid),
        "clock": e.clock,
        "writer": e.writer,
        "ts": e.ts,
        "payload": _jsonable(e.payload),
    }


def _jsonable(v: Value) -> Any:
    if isinstance(v, bytes):
        return {"$bytes": v.hex()}
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if hasattr(v, "codec"):
        return {"$link": str(v)}
    return v


async def cmd_demo(args: argparse.Namespace, home: Path) -> int:
    if args.count < 1:
        raise InvalidValueError("--count must be at least 1")
    _out(args, f"node directory: {home}", {"home": str(home)})
    async with open_node(home) as node:
        _out(args, f"writer id: {node.id}", {"id": node.id})
        db = await node.open("demo")
        before = len(db)
        async with db.batch():
            for i in range(args.count):
                await db.append({"n": before + i, "text": f"hello #{before + i}"})
        _out(
            args,
            f"appended {args.count} entries to {db.name!r} ({db.address}); heads: "
            + ", ".join(str(h)[:20] + "..." for h in sorted(db.heads)),
            {"appended": args.count, "address": db.address},
        )
        address = db.address
    _out(args, "closed the node; reopening from disk...", {"reopened": True})
    async with open_node(home) as node:
        db = await node.open(address)
        _out(args, f"{len(db)} entries in total order (last {args.count}):", {"count": len(db)})
        for e in reversed(list(db.entries(reverse=True, limit=args.count))):
            _out(
                args,
                f"  clock={e.clock:<5} {str(e.cid)[:24]}...  {json.dumps(_jsonable(e.payload))}",
                _entry_dict(e),
            )
    return 0


async def cmd_id(args: argparse.Namespace, home: Path) -> int:
    async with open_node(home) as node:
        _out(args, node.id, {"id": node.id})
    return 0


async def cmd_ls(args: argparse.Namespace, home: Path) -> int:
    async with open_node(home) as node:
        for name, address in node.databases().items():
            _out(args, f"{name}\t{address}", {"name": name, "address": address})
    return 0


async def cmd_append(args: argparse.Namespace, home: Path) -> int:
    try:
        value = json.loads(args.value)
    except json.JSONDecodeError as exc:
        raise InvalidValueError(f"not valid JSON: {exc}") from exc
    async with open_node(home) as node:
        db = await node.open(args.name)
        entry = await db.append(value)
        _out(args, str(entry.cid), _entry_dict(entry))
    return 0


async def cmd_log(args: argparse.Namespace, home: Path) -> int:
    async with open_node(home) as node:
        db = await node.open(args.name)
        for e in db.entries(reverse=args.reverse, limit=args.limit):
            _out(args, f"{e.clock}\t{e.cid}\t{json.dumps(_jsonable(e.payload))}", _entry_dict(e))
    return 0
