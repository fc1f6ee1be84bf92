"""``orbitstore serve``: run a node in the foreground, reachable by others, and replicate.

The node listens on ``--listen`` (default: every interface, port 4401), dials the
``--bootstrap`` peers and keeps them connected, finds peers on the LAN by mDNS (on unless
``--no-mdns``), announces and looks up its databases in the DHT with ``--dht``, and
replicates every ``--open`` database. It prints its peer id and addresses, then one
status line per database (and per peer of it) whenever its sync state changes, and stops
cleanly on Ctrl-C or SIGTERM (exit status 0).

It also serves the HTTP + WebSocket API (docs/http-api.md): by default on 127.0.0.1
at a port the OS chooses, with a random token, both written to ``<home>/api.json``
(mode 0600) so the command line talks to this node instead of opening its directory;
``--api HOST:PORT`` picks the address (a host other than loopback needs ``--api-token``
or ``ORBITSTORE_API_TOKEN``), ``--no-api`` turns it off.

With ``--json`` every line is a JSON object with an ``event`` field: ``ready``, ``api``,
``open``, ``status``, ``stopped``. See docs/serve.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbitstore.errors import InvalidValueError, NotFoundError, UsageError

if TYPE_CHECKING:  # the node layer is imported when the command runs: `--help` stays quick
    import trio

    from orbitstore.node.database import Database
    from orbitstore.node.node import Node

DEFAULT_LISTEN = "/ip4/0.0.0.0/tcp/4401"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` command to the main parser's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run a node in the foreground: listen, discover peers, replicate databases",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        action="append",
        metavar="MULTIADDR",
        help=f"address to listen on (repeatable; default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--announce",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="address to advertise instead of the listen addresses (NAT, container)",
    )
    parser.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="peer to dial and keep connected, with /p2p/<peer id> (repeatable)",
    )
    parser.add_argument(
        "--mdns",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="find peers on the LAN by multicast DNS (default: on)",
    )
    parser.add_argument(
        "--dht",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Kademlia DHT: announce open databases, find their other providers",
    )
    parser.add_argument(
        "--relay-hop", action="store_true", help="relay connections for peers behind a NAT"
    )
    parser.add_argument(
        "--relay",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="relay to reserve a slot at, so peers can reach us through it (repeatable)",
    )
    parser.add_argument(
        "--open",
        action="append",
        default=[],
        metavar="NAME_OR_ADDRESS",
        help="database to replicate: a local name or /orbitstore/<cid> (repeatable)",
    )
    parser.add_argument(
        "--type",
        default=None,
        help="type of a database --open creates by a new name (without it, a new name"
        " is refused: a typo never creates a database)",
    )
    parser.add_argument(
        "--write",
        action="append",
        default=None,
        metavar="WRITER",
        help="writer allowed in a database --open creates (did:key or '*'; default: us)",
    )
    parser.add_argument(
        "--api",
        metavar="HOST:PORT",
        default=None,
        help="serve the HTTP + WebSocket API there (PORT alone binds 127.0.0.1;"
        " default: 127.0.0.1, a port the OS chooses)",
    )
    parser.add_argument(
        "--no-api",
        action="store_true",
        help="do not serve the API (the command line cannot reach this node then)",
    )
    parser.add_argument(
        "--api-token",
        metavar="TOKEN",
        default=None,
        help="bearer token the API requires (default: $ORBITSTORE_API_TOKEN; needed off loopback)",
    )
    parser.add_argument(
        "--bitswap",
        action="store_true",
        help="serve this node's blocks (entries, attachments) to IPFS and orbitstore peers"
        " over Bitswap: anyone who can connect can read them",
    )
    parser.add_argument(
        "--status-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often to check the sync state for changes to print (default 1)",
    )


def network_config(args: argparse.Namespace) -> Any:
    """The ``Libp2pConfig`` the arguments describe (imports py-libp2p: ~1 s)."""
    from orbitstore.net.libp2p_config import BitswapConfig, Libp2pConfig, RelayConfig

    relay = RelayConfig(hop=args.relay_hop, client=bool(args.relay), relays=tuple(args.relay))
    return Libp2pConfig(
        listen_addresses=tuple(args.listen or [DEFAULT_LISTEN]),
        announce_addresses=tuple(args.announce),
        bootstrap_peers=tuple(args.bootstrap),
        mdns=args.mdns,
        dht=args.dht,
        relay=relay,
        bitswap=BitswapConfig(enabled=bool(getattr(args, "bitswap", False))),
    )


class _Printer:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def __call__(self, event: str, text: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields}) if self.as_json else text
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def dial_addresses(addresses: list[str]) -> list[str]:
    """Addresses another node on this machine can dial: a wildcard listen address
    (``/ip4/0.0.0.0/...``) is reachable as loopback."""
    out = []
    for a in addresses:
        out.append(a.replace("/ip4/0.0.0.0/", "/ip4/127.0.0.1/", 1))
    return list(dict.fromkeys(out))


def _type_of(node: Node, name_or_address: str, given: str | None) -> str:
    """The type in the manifest we hold for it, else ``--type`` (``log`` for an
    address); a new local name without ``--type`` is refused."""
    from orbitstore.core.manifest import is_address

    try:
        return node.manifest(name_or_address).type
    except NotFoundError:
        if given is not None:
            return given
        if is_address(name_or_address):
            return "log"
        raise NotFoundError(
            f"this node has no database named {name_or_address!r:.200}: create it with"
            f" `orbitstore create {name_or_address} --type TYPE`, or give `--type TYPE`"
            " to --open it as new",
            name=name_or_address,
        ) from None


def _status_text(status: dict[str, Any]) -> str:
    lines = [
        f"status {status['name']}: entries={status['entries']} heads={status['heads']}"
        f" missing={status['missing']} needed={status['needed']}"
        f" peers={len(status['peers'])} synced={'yes' if status['synced'] else 'no'}"
    ]
    for p in status["peers"]:
        flags = " syncing" if p["syncing"] else ""
        flags += "" if p["has_database"] else " (does not have it)"
        flags += f" error: {p['last_error']}" if p["last_error"] else ""
        lines.append(
            f"  peer {p['peer']}: sent={p['sent']} received={p['received']}"
            f" missing={p['missing']} sessions={p['sessions']} failures={p['failures']}{flags}"
        )
    return "\n".join(lines)


async def cmd_serve(
    args: argparse.Namespace,
    home: Path,
    *,
    defaults: tuple[tuple[str, str, list[str] | None], ...] = (),
    console: bool = False,
    addresses_file: Path | None = None,
) -> int:
    """Run the node until SIGINT/SIGTERM. ``defaults`` are ``(name, type, write)``
    databases to open before the ``--open`` ones (``orbitstore run``'s demo set);
    ``console`` prints the web console's URL once the API is up and the ``dial:``
    addresses, which it also writes to ``addresses_file``."""
    import signal

    import trio

    from orbitstore.cli.apifile import remove_api_file
    from orbitstore.node import NodeConfig, open_node

    if not args.status_interval > 0:
        raise InvalidValueError("--status-interval must be a positive number of seconds")
    say = _Printer(bool(getattr(args, "json", False)))
    api = _api_config(args)  # a bad --api fails before the node starts
    config = NodeConfig(network=network_config(args))
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_node(home, config=config) as node:
            assert node.replication is not None
            transport = node.replication.transport
            addresses = transport.listen_addresses()
            say(
                "ready",
                f"peer id: {transport.peer_id}\nwriter id: {node.id}\n"
                + "\n".join(f"listening: {a}" for a in addresses)
                + "".join(f"\ndial: {a}" for a in dial_addresses(addresses) if console),
                peer_id=transport.peer_id,
                writer=node.id,
                addresses=addresses,
            )
            if addresses_file is not None:
                addresses_file.write_text("".join(a + "\n" for a in dial_addresses(addresses)))
            databases = []
            wanted = [*defaults, *((n, args.type, args.write) for n in args.open)]
            for name, default_type, write in wanted:
                kind = _type_of(node, name, default_type)
                db = await node.open(name, type=kind, write=write)
                databases.append(db)
                say(
                    "open",
                    f"open: {db.name} ({db.type}) {db.address}",
                    name=db.name,
                    type=db.type,
                    address=db.address,
                )
            try:
                async with trio.open_nursery() as nursery:
                    if api is not None:
                        await _start_api(nursery, node, api, say, home, console=console)
                    nursery.start_soon(_report, node, databases, say, args.status_interval)
                    async for signum in signals:
                        say("stopping", f"stopping ({signal.Signals(signum).name})")
                        nursery.cancel_scope.cancel()
                        break
            finally:
                remove_api_file(home)
    say("stopped", "stopped")
    return 0


def _api_config(args: argparse.Namespace) -> Any:
    """The ``ApiConfig`` of ``--api``/``--api-token``, or None with ``--no-api``."""
    if args.no_api:
        if args.api is not None:
            raise UsageError("--api and --no-api contradict each other")
        return None
    import secrets

    from orbitstore.server.config import ApiConfig

    token = args.api_token or os.environ.get("ORBITSTORE_API_TOKEN") or None
    if args.api is None:
        # The default API is for this machine's command line: a random token keeps
        # other local users (who cannot read api.json) out.
        return ApiConfig(port=0, token=token or secrets.token_urlsafe(24))
    return ApiConfig.parse_bind(args.api, token=token)


async def _start_api(
    nursery: trio.Nursery,
    node: Node,
    config: Any,
    say: _Printer,
    home: Path,
    *,
    console: bool = False,
) -> None:
    from orbitstore.cli.apifile import write_api_file
    from orbitstore.server import serve_api

    urls = await nursery.start(serve_api, node, config)
    write_api_file(home, url=urls[0], token=config.token)
    say("api", "\n".join(f"api: {u}" for u in urls), urls=urls)
    if console:
        pages = [f"{u}/" for u in urls]
        say("console", "\n".join(f"console: {u}" for u in pages), urls=pages)


async def _report(node: Node, databases: list[Database], say: _Printer, interval: float) -> None:
    import trio

    from orbitstore.server.status import database_status  # starlette: only when serving

    last: dict[str, dict[str, Any]] = {}
    while True:
        for db in databases:
            status = database_status(node, db)
            if last.get(db.address) != status:
                last[db.address] = status
                say("status", _status_text(status), **status)
        await trio.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    """``python -m orbitstore.cli.serve --home DIR [--json] [serve options]``."""
    parser = argparse.ArgumentParser(prog="orbitstore serve", description=__doc__)
    parser.add_argument("--home", type=Path, required=True, help="node directory")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    add_arguments(parser)
    args = parser.parse_args(argv)
    import trio

    from orbitstore.errors import OrbitstoreError

    try:
        result: int = trio.run(cmd_serve, args, args.home)
    except OrbitstoreError as exc:  # as `orbitstore serve` reports it
        print(f"error: {exc} [{exc.code}]", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
