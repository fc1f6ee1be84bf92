"""``orbitstore devices``: one user, several devices (docs/identity.md).

``init`` makes a user whose first device is this node; ``pair`` (on the device holding
the user's root key) shows a one-time pairing link and waits; ``link`` (on the new
device) pairs with it. ``delegate`` / ``accept`` do the same by hand, without a network.
``ls`` shows this device and, for a database, its writers as users with their devices;
``unlink`` excludes a lost device's later entries from the given databases.

Only argparse is imported at the top: ``--help`` stays quick.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

_PAIR_LISTEN = "/ip4/0.0.0.0/tcp/0"


def add_parser(sub: Any) -> None:
    """Add the ``devices`` group to the main parser's subparsers."""
    group = sub.add_parser(
        "devices",
        help="link this node as a device of a user; pair, list and unlink devices",
        description="link this node as a device of a user; pair, list and unlink devices",
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    actions.add_parser(
        "init", help="make a new user whose first device is this node (root key in the keystore)"
    ).set_defaults(handler="devices.init")

    ls = actions.add_parser(
        "ls", help="this device and its user; with NAME, the database's writers and devices"
    )
    ls.add_argument("name", nargs="?", help="local name or /orbitstore/<cid> address")
    ls.set_defaults(handler="devices.ls")

    pair = actions.add_parser(
        "pair", help="show a one-time pairing link for a new device, and wait until it pairs"
    )
    pair.add_argument(
        "--listen", default=_PAIR_LISTEN, help=f"libp2p address to listen on ({_PAIR_LISTEN})"
    )
    pair.add_argument(
        "--ttl", type=float, default=300.0, help="seconds the code stays valid (default 300)"
    )
    pair.add_argument(
        "--purpose", default="any", help="'any' database (default) or one /orbitstore/<cid>"
    )
    pair.set_defaults(handler="devices.pair")

    link = actions.add_parser("link", help="pair this node with the device that showed LINK")
    link.add_argument("link", help="<address>/p2p/<peer id>#pair=<code>, as `pair` shows it")
    link.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    link.set_defaults(handler="devices.link")

    delegate = actions.add_parser(
        "delegate", help="sign a delegation to another device's id, to `accept` there"
    )
    delegate.add_argument("device", help="the new device's id (did:key; `orbitstore id` there)")
    delegate.add_argument(
        "--purpose", default="any", help="'any' database (default) or one /orbitstore/<cid>"
    )
    delegate.set_defaults(handler="devices.delegate")

    accept = actions.add_parser("accept", help="take a delegation made by `delegate`")
    accept.add_argument("delegation", help="the delegation text (starts with odl)")
    accept.set_defaults(handler="devices.accept")

    unlink = actions.add_parser(
        "unlink", help="unlink a lost device: its later entries are excluded, the user stays"
    )
    unlink.add_argument("device", help="the device id (did:key)")
    unlink.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="databases to post the unlinking to (default: every capabilities database"
        " this node knows by name)",
    )
    unlink.set_defaults(handler="devices.unlink")


def _named_devices(db: Any) -> set[str]:
    graph = db.log.capabilities.graph
    return {graph.op(i).to for i in range(len(graph)) if graph.op(i).op == "link"}


def _info(node: Any) -> dict[str, Any]:
    info: dict[str, Any] = node.device_info()
    return info


async def cmd_init(args: argparse.Namespace, home: Path, out: Any) -> int:
    from orbitstore.node import open_node

    async with open_node(home) as node:
        user = node.create_user()
        out.emit(f"user: {user}\ndevice: {node.id}", {"user": user, "device": node.id})
    return 0


async def cmd_ls(args: argparse.Namespace, home: Path, out: Any) -> int:
    from orbitstore.cli.typed import open_existing
    from orbitstore.node import open_node

    async with open_node(home) as node:
        if args.name is None:
            out.record(_info(node))
            return 0
        db = await open_existing(node, args.name)
        rows = []
        for w in db.writers():
            rights = ", ".join(
                r["right"] + ("" if r["scope"] is None else f" {r['scope']!r}") for r in w["rights"]
            )
            devices = [d["device"] for d in w["devices"] if d["linked"]]
            unlinked = [f"{d['device']} (unlinked)" for d in w["devices"] if not d["linked"]]
            shown = ", ".join(devices + unlinked) or "-"
            rows.append((w["user"], rights or "-", len(devices), shown))
        if out.json:
            for w in db.writers():
                out.emit("", w)
        else:
            out.table(("user", "rights", "devices", "device ids"), rows)
    return 0


async def cmd_pair(args: argparse.Namespace, home: Path, out: Any) -> int:
    import trio

    from orbitstore.net.libp2p_config import Libp2pConfig
    from orbitstore.node import NodeConfig, open_node

    config = NodeConfig(network=Libp2pConfig(listen_addresses=(args.listen,)))
    async with open_node(home, config=config) as node:
        offer = node.open_pairing(ttl=args.ttl, purpose=args.purpose)
        out.emit(
            f"pairing code: {offer.code} (valid {args.ttl:g} s, once)\n"
            f"on the new device run:\n  orbitstore devices link '{offer.link}'",
            {"code": offer.code, "link": offer.link, "ttl": args.ttl},
        )
        with trio.move_on_after(args.ttl):
            delegation = await node.wait_paired()
            out.emit(f"paired: {delegation.device}", {"paired": delegation.device})
            return 0
    from orbitstore.errors import UsageError

    raise UsageError("no device paired before the code expired")


async def cmd_link(args: argparse.Namespace, home: Path, out: Any) -> int:
    from orbitstore.net.libp2p_config import Libp2pConfig
    from orbitstore.node import NodeConfig, open_node

    config = NodeConfig(network=Libp2pConfig(listen_addresses=("/ip4/127.0.0.1/tcp/0",)))
    async with open_node(home, config=config) as node:
        delegation = await node.pair(args.link, timeout=args.timeout)
        out.emit(
            f"this node ({node.id}) is now a device of {delegation.user}",
            {"device": node.id, "user": delegation.user},
        )
    return 0


async def cmd_delegate(args: argparse.Namespace, home: Path, out: Any) -> int:
    from orbitstore.node import open_node

    async with open_node(home) as node:
        delegation = node.delegate_device(args.device, purpose=args.purpose)
        text = delegation.to_text()
        out.emit(
            f"on the new device run:\n  orbitstore devices accept {text}",
            {"delegation": text, "user": delegation.user, "device": delegation.device},
        )
    return 0


async def cmd_accept(args: argparse.Namespace, home: Path, out: Any) -> int:
    from orbitstore.node import open_node

    async with open_node(home) as node:
        node.accept_delegation(args.delegation)
        out.emit(f"this node is now a device of {node.user_id}", {"user": node.user_id})
    return 0


async def cmd_unlink(args: argparse.Namespace, home: Path, out: Any) -> int:
    from orbitstore.cli.typed import open_existing
    from orbitstore.node import open_node

    async with open_node(home) as node:
        chosen = []
        for name in args.names or sorted(node.databases()):
            db = await open_existing(node, name)
            if db.log.capabilities is not None:
                chosen.append(db)
        if not args.names:  # only where the device is linked
            chosen = [db for db in chosen if args.device in _named_devices(db)]
        await node.unlink_device(args.device, chosen)
        posted = [db.name for db in chosen]
        out.emit(
            f"unlinked {args.device} in: {', '.join(posted) or '(no database)'}",
            {"unlinked": args.device, "databases": posted},
        )
    return 0
