"""Terminal chat between two nodes over real libp2p (Noise, Yamux, gossip, sync streams).

Two terminals on one machine (or two machines on one LAN)::

    .venv/bin/python examples/chat.py --home /tmp/alice --nick alice
    # prints:  room /orbitstore/bafy...   and   dial /ip4/127.0.0.1/tcp/4401/p2p/12D3...
    .venv/bin/python examples/chat.py --home /tmp/bob --nick bob \\
        --peer /ip4/127.0.0.1/tcp/4401/p2p/12D3... --room /orbitstore/bafy...

Type a line and press Enter to send it; Ctrl-D or Ctrl-C to leave. Messages are entries
of a ``feed`` database: they are signed, stored on both sides, and a node that was offline
gets what it missed when it reconnects.

``--demo`` runs both sides in one process, exchanges a few messages and exits (the
project's tests run it).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import trio

import orbitstore
from orbitstore.net.libp2p_config import Libp2pConfig


def node_config(listen: str, peers: list[str]) -> orbitstore.NodeConfig:
    network = Libp2pConfig(listen_addresses=(listen,), bootstrap_peers=tuple(peers))
    return orbitstore.NodeConfig(network=network)


def dial_address(node: orbitstore.Node) -> str:
    assert node.replication is not None
    transport = node.replication.transport
    address = transport.listen_addresses()[0]
    return address if "/p2p/" in address else f"{address}/p2p/{transport.peer_id}"


async def show(room: orbitstore.Feed, nick: str) -> None:
    """Print every message as it arrives (ours and theirs)."""
    async with room.subscribe() as changes:
        async for change in changes:
            if isinstance(change, orbitstore.Lagged):
                print(f"[{change.missed} messages arrived too fast to show]")
                continue
            message = change.value
            if isinstance(message, dict) and message.get("nick") != nick:
                print(f"<{message.get('nick')}> {message.get('text')}")


async def interactive(args: argparse.Namespace) -> None:
    config = node_config(args.listen, args.peer or [])
    async with orbitstore.open_node(args.home, config=config) as node:
        if args.room:
            room = await node.open(args.room, type="feed")
        else:
            room = await node.open("chat", type="feed", write=["*"])
        assert isinstance(room, orbitstore.Feed)
        print(f"room {room.address}\ndial {dial_address(node)}", flush=True)
        for item in reversed(list(room.items(reverse=True, limit=20))):
            print(f"<{item.value.get('nick')}> {item.value.get('text')}")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(show, room, args.nick)
            stdin = trio.wrap_file(sys.stdin)
            async for line in stdin:
                if line.strip():
                    await room.add({"nick": args.nick, "text": line.rstrip("\n")})
            nursery.cancel_scope.cancel()


async def demo() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        listen = "/ip4/127.0.0.1/tcp/0"
        async with orbitstore.open_node(Path(tmp) / "alice", config=node_config(listen, [])) as a:
            room = await a.open("chat", type="feed", write=["*"])
            assert isinstance(room, orbitstore.Feed)
            await room.add({"nick": "alice", "text": "hi, anyone here?"})
            config = node_config(listen, [dial_address(a)])
            async with orbitstore.open_node(Path(tmp) / "bob", config=config) as b:
                # Bob has never seen the room: its manifest comes from Alice, verified.
                replica = await b.open(room.address, type="feed")
                assert isinstance(replica, orbitstore.Feed)
                await replica.wait_synced(timeout=30)
                await replica.add({"nick": "bob", "text": "hello alice!"})
                with trio.fail_after(30):
                    async with room.subscribe() as changes:
                        while len(room) < 2:
                            await changes.__anext__()
                for name, feed in (("alice", room), ("bob", replica)):
                    lines = [f"<{i.value['nick']}> {i.value['text']}" for i in feed.items()]
                    print(f"{name} sees: {' | '.join(lines)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="node directory")
    parser.add_argument("--nick", default="me")
    parser.add_argument("--listen", default="/ip4/127.0.0.1/tcp/4401")
    parser.add_argument("--peer", action="append", help="a peer's dial address (repeatable)")
    parser.add_argument("--room", help="the room's /orbitstore/... address (joining)")
    parser.add_argument("--demo", action="store_true", help="run both sides and exit")
    args = parser.parse_args()
    if args.demo:
        trio.run(demo)
    elif args.home is None:
        parser.error("--home is required (or --demo)")
    else:
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(interactive, args)


if __name__ == "__main__":
    main()
