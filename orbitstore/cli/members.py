"""``orbitstore members``: who may write a ``capabilities`` database, and invites.

``ls`` lists members and rights; ``grant`` and ``revoke`` change them (the admin right
is needed); ``invite`` makes a one-time link, ``uninvite`` revokes an unused one, and
``redeem`` uses one for this node's identity (opening the database, from peers when a
node runs). See docs/security-model.md.

Each action has two implementations: ``cmd_<action>`` opens the directory, and
``api_<action>`` goes through a running node's API (:mod:`orbitstore.cli.remote` finds
it by that name). Nothing heavy is imported at the top: ``api_*`` stays quick.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from orbitstore.cli.output import Output
    from orbitstore.cli.remote import Client

_NAME = "local name or /orbitstore/<cid> address"
RIGHTS = ("write", "admin", "replica")


def add_parser(sub: Any) -> None:
    """The ``members`` group, on the main parser's subparsers."""
    help = "membership of capabilities databases: ls, grant, revoke, invite, uninvite, redeem"
    group = sub.add_parser("members", help=help, description=help)
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser("ls", help="who holds which right (the owner holds them all)")
    ls.add_argument("name", help=_NAME)
    ls.set_defaults(handler="members.ls")
    for action, text in (
        ("grant", "grant a right to a writer id (needs the admin right)"),
        ("revoke", "revoke a right: the writer's concurrent entries are retracted"),
    ):
        parser = actions.add_parser(action, help=text)
        parser.add_argument("name", help=_NAME)
        parser.add_argument("did", help="the writer id (did:key:...)")
        parser.add_argument(
            "--right",
            choices=RIGHTS,
            default="write",
            help="write (default), admin, or replica (may hold and serve a private database)",
        )
        parser.add_argument(
            "--scope", metavar="PREFIX", help="only keys (document ids) starting with PREFIX"
        )
        parser.set_defaults(handler=f"members.{action}")
    invite = actions.add_parser(
        "invite", help="print a one-time invite link granting write to whoever redeems it"
    )
    invite.add_argument("name", help=_NAME)
    invite.add_argument("--scope", metavar="PREFIX", help="the write right's key prefix")
    invite.set_defaults(handler="members.invite")
    uninvite = actions.add_parser("uninvite", help="revoke an invite that was not used yet")
    uninvite.add_argument("name", help=_NAME)
    uninvite.add_argument("link", help="the invite link")
    uninvite.set_defaults(handler="members.uninvite")
    redeem = actions.add_parser(
        "redeem", help="use an invite link: this node's identity gets the write right"
    )
    redeem.add_argument("link", help="/orbitstore/<cid>#invite=<secret>")
    redeem.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for the invite to replicate from peers (default 30)",
    )
    redeem.add_argument(
        "--name",
        help="the local name to give the database (default: the name its creator gave"
        " it, unless that names another database here)",
    )
    redeem.set_defaults(handler="members.redeem")


def _show_members(out: Output, owner: str, members: list[dict[str, Any]]) -> None:
    for member in members:
        for right in member["rights"]:
            scope = right["scope"]
            text = f"{member['did']}\t{right['right']}" + (f"\t{scope}" if scope else "")
            out.emit(text, {"did": member["did"], **right, "owner": member["did"] == owner})


def _show_op(out: Output, args: argparse.Namespace, what: str, answer: dict[str, Any]) -> None:
    scope = f" (scope {args.scope!r})" if getattr(args, "scope", None) else ""
    text = f"{what} {args.right} {'to' if what == 'granted' else 'from'} {args.did}{scope}"
    out.emit(
        f"{text}: {answer['cid']}",
        {
            "did": args.did,
            "right": args.right,
            "scope": args.scope,
            "cid": answer["cid"],
            what: True,
        },
    )


# -- directly on the node directory ----------------------------------------------------------


async def cmd_ls(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.cli.typed import open_existing
    from orbitstore.node import open_node

    async with open_node(home) as node:
        db = await open_existing(node, args.name)
        members = [
            {"did": did, "rights": [{"right": r.right, "scope": r.scope} for r in rights]}
            for did, rights in sorted(db.members().items())
        ]  # as GET .../members lists them
        _show_members(out, db.access_state()["owner"], members)
    return 0


async def _change(args: argparse.Namespace, home: Path, out: Output, what: str) -> int:
    from orbitstore.cli.typed import open_existing
    from orbitstore.node import open_node

    async with open_node(home) as node:
        db = await open_existing(node, args.name)
        change = db.grant if what == "granted" else db.revoke
        entry = await change(args.did, args.right, args.scope)
        _show_op(out, args, what, {"cid": str(entry.cid)})
    return 0


async def cmd_grant(args: argparse.Namespace, home: Path, out: Output) -> int:
    return await _change(args, home, out, "granted")


async def cmd_revoke(args: argparse.Namespace, home: Path, out: Output) -> int:
    return await _change(args, home, out, "revoked")


async def cmd_invite(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.cli.typed import open_existing
    from orbitstore.node import open_node

    async with open_node(home) as node:
        db = await open_existing(node, args.name)
        link = await db.invite(args.scope)
    out.emit(link, {"link": link})
    return 0


async def cmd_uninvite(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.cli.typed import open_existing
    from orbitstore.node import open_node

    async with open_node(home) as node:
        db = await open_existing(node, args.name)
        entry = await db.revoke_invite(args.link)
    out.emit(f"revoked the invite: {entry.cid}", {"cid": str(entry.cid), "revoked": True})
    return 0


async def cmd_redeem(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node import open_node

    async with open_node(home) as node:
        db = await node.redeem(args.link, timeout=args.timeout, name=args.name)
        local = min((n for n, a in node.databases().items() if a == db.address), default=None)
        info = {"address": db.address, "type": db.type, "name": db.name, "local_name": local}
        _show_redeemed(out, node.id, info)
    return 0


def _show_redeemed(out: Output, writer: str, info: dict[str, Any]) -> None:
    """``info``: the database's ``address``, ``type``, ``name`` and ``local_name``."""
    address, local = info["address"], info["local_name"]
    if local is not None:
        named = f"named {local!r} here"
    else:
        named = f"not named here: {info['name']!r} names another database (give one with --name)"
    out.emit(
        f"redeemed: {writer} may write {address}, {named}",
        {"address": address, "type": info["type"], "writer": writer, "local_name": local},
    )


# -- through a running node's API -----------------------------------------------------------


def _db(name: str) -> str:
    return "/v1/databases/" + quote(name.removeprefix("/orbitstore/"), safe="")


def api_ls(client: Client, args: argparse.Namespace, out: Output) -> None:
    answer = client.call("GET", f"{_db(args.name)}/members")
    _show_members(out, answer["owner"], answer["members"])


def _body(args: argparse.Namespace) -> dict[str, Any]:
    return {"did": args.did, "right": args.right, "scope": args.scope}


def api_grant(client: Client, args: argparse.Namespace, out: Output) -> None:
    answer = client.call("POST", f"{_db(args.name)}/members", _body(args))
    _show_op(out, args, "granted", answer)


def api_revoke(client: Client, args: argparse.Namespace, out: Output) -> None:
    answer = client.call("POST", f"{_db(args.name)}/members/revoke", _body(args))
    _show_op(out, args, "revoked", answer)


def api_invite(client: Client, args: argparse.Namespace, out: Output) -> None:
    link = client.call("POST", f"{_db(args.name)}/invites", {"scope": args.scope})["link"]
    out.emit(link, {"link": link})


def api_uninvite(client: Client, args: argparse.Namespace, out: Output) -> None:
    answer = client.call("POST", f"{_db(args.name)}/invites/revoke", {"link": args.link})
    out.emit(f"revoked the invite: {answer['cid']}", {"cid": answer["cid"], "revoked": True})


def api_redeem(client: Client, args: argparse.Namespace, out: Output) -> None:
    body = {"link": args.link, "name": args.name}
    info = client.call("POST", f"/v1/redeem?timeout={args.timeout}", body)
    writer = client.call("GET", "/v1/node")["writer"]
    _show_redeemed(out, writer, {"local_name": None, **info})
