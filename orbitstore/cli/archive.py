"""``orbitstore export`` and ``orbitstore import``: a database's blocks as a CAR file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from orbitstore.cli.output import Output
from orbitstore.cli.typed import open_existing
from orbitstore.node import open_node
from orbitstore.node.car import export_car, import_car

_CHUNK = 256 * 1024


async def cmd_export(args: argparse.Namespace, home: Path, out: Output) -> int:
    async with open_node(home) as node:
        db = await open_existing(node, args.name)
        if args.file == "-":
            count = export_car(db, sys.stdout.buffer.write)
            sys.stdout.buffer.flush()
        else:
            target = Path(args.file)
            partial = target.with_name(target.name + ".partial")
            with partial.open("wb") as f:
                count = export_car(db, f.write)
            partial.replace(target)  # never leave half a file under the real name
        text = f"exported {db.name!r}: the manifest and {count} entries to {args.file}"
        if args.file == "-":  # standard output holds the CAR itself
            out.note(text)
        else:
            out.emit(text, {"address": db.address, "entries": count, "file": args.file})
    return 0


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(_CHUNK):
        yield chunk


async def cmd_import(args: argparse.Namespace, home: Path, out: Output) -> int:
    async with open_node(home) as node:
        if args.file == "-":
            report = await import_car(node, _chunks(sys.stdin.buffer), name=args.name)
        else:
            with Path(args.file).open("rb") as f:
                report = await import_car(node, _chunks(f), name=args.name)
        out.emit(
            f"imported {report.type} database {report.address}: {report.received} entries,"
            f" {report.added} new",
            {
                "address": report.address,
                "type": report.type,
                "entries": report.received,
                "added": report.added,
                "skipped": report.skipped,
            },
        )
    return 0
