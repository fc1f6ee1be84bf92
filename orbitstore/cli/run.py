"""``orbitstore run``: the ``make run`` job, ``serve`` with demo databases and the console.

The node opens ``chat`` (feed), ``notes`` (ydoc) and ``todos`` (documents), writable by
anyone, so their manifests (and addresses) are the same on every node that opens them by
name: two ``run`` nodes replicate them without exchanging addresses. It serves the API
and the web console, listens for peers on a port the OS picks, and writes its dial
addresses to ``<home>/run-addresses`` while it runs, so that a second node on the same
machine can join it with ``--join HOME`` (mDNS finds peers on a LAN, but not always
between two processes of one machine).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from orbitstore.cli import serve
from orbitstore.errors import UsageError

DEMO_DATABASES: tuple[tuple[str, str, list[str] | None], ...] = (
    ("chat", "feed", ["*"]),
    ("notes", "ydoc", ["*"]),
    ("todos", "documents", ["*"]),
)
RUN_LISTEN = "/ip4/0.0.0.0/tcp/0"
RUN_API = "127.0.0.1:4402"
ADDRESSES_FILE = "run-addresses"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``run`` command to the main parser's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run a node with demo databases (chat, notes, todos) and the web console"
        " (the `make run` job)",
        description="Like `serve`, with the demo databases chat (feed), notes (ydoc) and"
        f" todos (documents) open, the API and web console on {RUN_API} and libp2p on"
        f" {RUN_LISTEN}; until Ctrl-C.",
    )
    parser.add_argument(
        "--join",
        metavar="HOME",
        type=Path,
        default=None,
        help="dial the `orbitstore run` node running in the node directory HOME",
    )
    serve.add_arguments(parser)
    parser.set_defaults(api=RUN_API)
    return parser


def join_addresses(home: Path) -> list[str]:
    """The dial addresses the ``run`` node in ``home`` wrote, or a :class:`UsageError`."""
    try:
        text = (home / ADDRESSES_FILE).read_text()
    except OSError as exc:
        raise UsageError(
            f"no `orbitstore run` node is running in {home} (start it first: make run)"
        ) from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


async def cmd_run(args: argparse.Namespace, home: Path, out: Any) -> int:
    if args.listen is None:
        args.listen = [RUN_LISTEN]
    if args.join is not None:
        if args.join.resolve() == home.resolve():
            raise UsageError("--join names this node's own directory: give the first node's")
        args.bootstrap = [*args.bootstrap, *join_addresses(args.join)]
    home.mkdir(parents=True, exist_ok=True)
    addresses = home / ADDRESSES_FILE
    try:
        return await serve.cmd_serve(
            args, home, defaults=DEMO_DATABASES, console=True, addresses_file=addresses
        )
    finally:
        addresses.unlink(missing_ok=True)
