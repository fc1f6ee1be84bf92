"""The ``orbitstore`` command line: a thin layer over the public API.

Every command prints human-readable text, or JSON with ``--json``. A user mistake prints
``error: <message> [<code>]`` and exits with status 2; nothing shows a traceback unless
``ORBITSTORE_DEBUG=1`` is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from orbitstore.errors import OrbitstoreError

DEFAULT_HOME_ENV = "ORBITSTORE_HOME"


def default_home() -> Path:
    env = os.environ.get(DEFAULT_HOME_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "orbitstore"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orbitstore",
        description="orbitstore: a decentralized database of signed, replicated logs.",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help=f"node directory (default: ${DEFAULT_HOME_ENV} or ~/.local/share/orbitstore)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines for scripts")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo", help="create a log, write, close, reopen and read back (the `make run` job)"
    )
    demo.add_argument("--count", type=int, default=5, help="entries to append (default 5)")

    sub.add_parser("id", help="print this node's writer id (did:key)")
    sub.add_parser("ls", help="list the databases this node knows by name")

    append = sub.add_parser("append", help="append a JSON value to a log database")
    append.add_argument("name", help="local name or /orbitstore/<cid> address")
    append.add_argument("value", help='a JSON value, e.g. \'{"text": "hi"}\'')

    show = sub.add_parser("log", help="print the entries of a log database in total order")
    show.add_argument("name", help="local name or /orbitstore/<cid> address")
    show.add_argument("--limit", type=int, default=None, help="at most this many entries")
    show.add_argument("--reverse", action="store_true", help="newest first")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return trio.run(_run, args)
    except OrbitstoreError as exc:
        if os.environ.get("ORBITSTORE_DEBUG"):
            raise
        if args.json:
            print(json.dumps({"error": exc.to_dict()}), file=sys.stderr)
        else:
            print(f"error: {exc} [{exc.code}]", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _run(args: argparse.Namespace) -> int:
    from orbitstore.cli import commands

    handler = getattr(commands, "cmd_" + args.command)
    result: int = await handler(args, args.home or default_home())
    return result
