"""A networked orbitstore node in its own OS process, driven by JSON lines on stdin.

    python sync_node.py --home DIR [--listen MULTIADDR]... [--bootstrap MULTIADDR]... [--dht]
        [--relay-hop] [--relay MULTIADDR]...

The node is opened the production way: ``open_node(home, config=NodeConfig(network=
Libp2pConfig(...)))``. Once it listens it prints ``{"event": "ready", "peer_id": ...,
"addresses": [...]}``. Then every line on stdin is one request ``{"op": ..., ...}``,
answered by exactly one line ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``,
in order:

- ``create {name, type}``: a new database anyone may write; answers its ``address``
  and ``manifest`` (the manifest block, hex).
- ``open {address, type, manifest?}``: open by address; ``manifest`` (hex) is copied
  into the store first (until manifests are fetched from peers).
- ``write {address, count, tag, keys?}``: ``count`` writes, one commit each: feed items
  ``"<tag>-<i>"``, or keyvalue puts of ``k<i % keys>`` = ``"<tag>-<i>"``.
- ``bulk {address, count}``: ``count`` feed items, one entry each, 1,000 per commit.
- ``wait {address, entries}``: answers once the log holds at least ``entries`` entries
  (``wait_synced`` too when ``synced`` is true), with the state below.
- ``state {address}``: ``entries``, sorted ``heads``, and ``view``: the feed's values in
  order or the keyvalue's items.
- ``stats``: the replication statistics, summarized (with the announcement counters).
- ``publish_raw {address, data}``: publish ``data`` (hex) as is on the database's gossip
  topic, whether or not this node has the database open (a hostile peer).
- ``wait_stat {key, at_least, within}``: answers once ``stats[key] >= at_least``, or
  after ``within`` seconds; ``reached`` says which.
- ``connect {address, within?}``: dial a peer (a direct or a ``/p2p-circuit`` address);
  answers its ``peer_id``, the ``remote`` addresses of its connections and whether one
  is ``relayed``; or an error (with the time taken) when the dial fails or takes longer
  than ``within`` seconds. A peer already connected is not dialled again.
- ``reserve {relay}``: waits until the relay (a peer id from ``--relay``) holds a
  reservation for us; answers our ``circuit`` addresses through the relays.

The process runs until stdin closes or it is killed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

import trio
from libp2p.peer.id import ID

from orbitstore.core.cid import Cid
from orbitstore.net.libp2p_config import Libp2pConfig, RelayConfig
from orbitstore.net.libp2p_transport import Libp2pTransport
from orbitstore.node import NodeConfig, open_node
from orbitstore.node.config import ReplicationConfig
from orbitstore.node.database import Database
from orbitstore.node.feed import Feed
from orbitstore.node.keyvalue import KeyValue
from orbitstore.node.node import Node
from orbitstore.node.replication import topic_for
from orbitstore.views.feed import add_op

WAIT_LIMIT = 50.0  # below the test's deadline, so that the test sees what the node knew


def say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def state_of(db: Database) -> dict[str, Any]:
    view: Any = None
    if isinstance(db, Feed):
        view = [item.value for item in db.items()]
    elif isinstance(db, KeyValue):
        view = [[k, v] for k, v in db.items()]
    return {"entries": len(db), "heads": sorted(str(h) for h in db.heads), "view": view}


async def wait_entries(node: Node, db: Database, count: int) -> None:
    # Progress events, not view changes: an entry that loses a last-writer-wins race
    # grows the log without changing the view.
    assert node.replication is not None
    async with node.replication.subscribe_progress() as events:
        while len(db) < count:
            await events.receive()


async def handle(node: Node, request: dict[str, Any]) -> dict[str, Any]:
    op = request["op"]
    if op == "create":
        db = await node.open(request["name"], type=request["type"], write=["*"])
        block = node.store.blocks.get(db.cid)
        assert block is not None
        return {"address": db.address, "manifest": block.hex()}
    if op == "open":
        if "manifest" in request:
            cid = Cid.parse(request["address"].rsplit("/", 1)[1])
            node.store.blocks.put(cid, bytes.fromhex(request["manifest"]))
        db = await node.open(request["address"], type=request["type"])
        return {"address": db.address, "entries": len(db)}
    if op == "connect":
        return await connect(node, request["address"], request.get("within", WAIT_LIMIT))
    if op == "reserve":
        transport = libp2p_of(node)
        with trio.fail_after(request.get("within", WAIT_LIMIT)):
            await transport.wait_relay_reservation(request["relay"])
        return {"circuit": transport.relay_addresses()}
    if op == "stats":
        return stats_of(node)
    if op == "publish_raw":
        assert node.replication is not None
        cid = Cid.parse(request["address"].rsplit("/", 1)[1])
        await node.replication.transport.publish(topic_for(cid), bytes.fromhex(request["data"]))
        return {}
    if op == "wait_stat":
        return await wait_stat(node, request["key"], request["at_least"], request["within"])
    db = await node.open(request["address"], type=request.get("type", _type_of(node, request)))
    if op == "write":
        keys = request.get("keys", 10)
        for i in range(request["count"]):
            value = f"{request['tag']}-{i}"
            if isinstance(db, Feed):
                await db.add(value)
            elif isinstance(db, KeyValue):
                await db.put(f"k{i % keys}", value)
        return state_of(db)
    if op == "bulk":
        total = request["count"]
        for start in range(0, total, 1000):
            await db.append_many(add_op(i) for i in range(start, min(total, start + 1000)))
        return {"entries": len(db)}
    if op == "wait":
        phase = "entries"
        try:
            with trio.fail_after(request.get("within", WAIT_LIMIT)):
                await wait_entries(node, db, request["entries"])
                phase = "synced"
                if request.get("synced"):
                    await db.wait_synced(timeout=WAIT_LIMIT)
        except trio.TooSlowError:
            now = trio.current_time()
            raise TimeoutError(f"{phase}: {len(db)} entries at {now}; {describe(node)}") from None
        return state_of(db)
    if op == "state":
        return state_of(db)
    raise ValueError(f"unknown op {op!r}")


def stats_of(node: Node) -> dict[str, Any]:
    assert node.replication is not None
    stats = node.replication.statistics()
    return {
        "connected": list(stats.connected),
        "databases": {
            str(d.db): {"synced": d.synced, "needed": d.needed, "peers": len(d.peers)}
            for d in stats.databases
        },
        "received": stats.announcements_received,
        "rejected": stats.announcements_rejected,
        "unexpected": stats.unexpected_errors,
        "gossip_refused": libp2p_of(node).statistics().gossip.refused_invalid,
    }


async def wait_stat(node: Node, key: str, at_least: int, within: float) -> dict[str, Any]:
    # The statistics have no change event: look again every 50 ms, up to the deadline.
    with trio.move_on_after(within):
        while stats_of(node)[key] < at_least:
            await trio.sleep(0.05)
    value = stats_of(node)[key]
    return {"reached": value >= at_least, "value": value}


def libp2p_of(node: Node) -> Libp2pTransport:
    assert node.replication is not None
    transport = node.replication.transport
    assert isinstance(transport, Libp2pTransport)
    return transport


async def connect(node: Node, address: str, within: float) -> dict[str, Any]:
    assert node.replication is not None
    started = trio.current_time()
    try:
        with trio.fail_after(within):
            peer = await node.replication.connect(address)
    except Exception as exc:  # the test reads the answer
        elapsed = trio.current_time() - started
        raise ConnectionError(f"{type(exc).__name__} after {elapsed:.2f} s: {exc}") from exc
    network = libp2p_of(node).host.get_network()
    remote = [
        str(addr)
        for conn in network.get_connections_map().get(ID.from_base58(peer), [])
        for addr in conn.get_transport_addresses()
    ]
    relayed = any("p2p-circuit" in addr for addr in remote)
    return {"peer_id": peer, "relayed": relayed, "remote": remote}


def describe(node: Node) -> str:
    """What the node knows of its peers, for a failure message."""
    assert node.replication is not None
    text = repr(node.replication.statistics())
    if node.discovery is not None:
        text += " " + repr(node.discovery.statistics())
    return text


def _type_of(node: Node, request: dict[str, Any]) -> str:
    cid = Cid.parse(request["address"].rsplit("/", 1)[1])
    for db in node._open.values():
        if db.cid == cid:
            return db.type
    raise ValueError("open the database first")


async def main(args: argparse.Namespace) -> None:
    relay = RelayConfig(hop=args.relay_hop, client=bool(args.relay), relays=tuple(args.relay))
    network = Libp2pConfig(
        relay=relay,
        listen_addresses=tuple(args.listen or ["/ip4/127.0.0.1/tcp/0"]),
        bootstrap_peers=tuple(args.bootstrap),
        dht=args.dht,
        # Reconnect fast to a bootstrap peer that was killed and restarted.
        reconnect_max_delay=2.0,
    )
    # Gossip sent before a peer joined the topic's mesh (the first heartbeat after it
    # subscribed) is lost, and anti-entropy repairs it: every 3 s here instead of 30 s,
    # so that a test on a loaded machine needs no minute-long deadlines.
    replication = ReplicationConfig(anti_entropy_interval=3.0)
    config = NodeConfig(network=network, replication=replication)
    async with open_node(args.home, config=config) as node:
        assert node.replication is not None
        transport = node.replication.transport
        say(
            {
                "event": "ready",
                "peer_id": transport.peer_id,
                "addresses": transport.listen_addresses(),
                "writer": node.id,
            }
        )
        stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
        buffer = b""
        while True:
            while b"\n" not in buffer:
                data = await stdin.receive_some()
                if not data:
                    return
                buffer += data
            line, _, buffer = buffer.partition(b"\n")
            request = json.loads(line)
            try:
                reply = {"ok": True, **(await handle(node, request))}
            except Exception as exc:  # reported to the test, which fails with it
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            say(reply)


if __name__ == "__main__":
    if os.environ.get("ORBITSTORE_HELPER_LOG"):
        logging.basicConfig(level=logging.INFO, format="%(relativeCreated)d %(name)s %(message)s")
        logging.getLogger("orbitstore.net.libp2p").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--listen", action="append", default=[])
    parser.add_argument("--bootstrap", action="append", default=[])
    parser.add_argument("--dht", action="store_true")
    parser.add_argument("--relay-hop", action="store_true")
    parser.add_argument("--relay", action="append", default=[])
    trio.run(main, parser.parse_args())
