"""Two peers that can only meet through a relay, each in its own network namespace.

Three namespaces joined by two veth pairs on two subnets::

    A 10.77.1.2 ---- 10.77.1.1  R  10.77.2.1 ---- 10.77.2.2 B

A and B route each other's subnet through R, but R does not forward IP packets, so
every packet from A to B dies in R: the only path between them is a circuit through
the orbitstore node in R (``RelayConfig(hop=True)``). A and B are
``tests/helpers/sync_node.py`` processes started with ``ip netns exec``, R as their
bootstrap peer and relay (``RelayConfig(client=True, relays=(R,))``). B opens A's
database by address while connected only to R (which does not hold it) and to A
through the circuit; the manifest, the entries and the announcements all cross R.

It needs root (or CAP_NET_ADMIN) and the ``ip`` command, and is skipped otherwise. The
namespaces get unique names and are deleted in ``finally``, also on failure.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

HELPER = Path(__file__).parent / "helpers" / "sync_node.py"
START_DEADLINE = 30.0  # a fresh process imports libp2p in ~1 s; far more on a loaded VM
DEADLINE = 30.0
DIRECT_DIAL_LIMIT = 2.0  # a LAN dial takes ~10 ms; a dropped SYN never answers

A_IP, R_A_IP = "10.77.1.2", "10.77.1.1"
B_IP, R_B_IP = "10.77.2.2", "10.77.2.1"

pytestmark = pytest.mark.slow


def _ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.decode().strip()}")
    return result.stdout.decode()


@pytest.fixture
def three_namespaces() -> Iterator[tuple[str, str, str]]:
    """Namespaces A, R, B wired as in the module docstring; skips when they cannot be
    made. Deleted afterwards, whatever happened. (A synchronous fixture: a skip raised
    inside the trio test would lose its reason.)"""
    if shutil.which("ip") is None:
        pytest.skip("needs the ip command (iproute2) to create network namespaces")
    tag = secrets.token_hex(3)
    ns_a, ns_r, ns_b = (f"osrelay-{tag}-{side}" for side in "arb")
    probe = subprocess.run(["ip", "netns", "add", ns_a], capture_output=True, check=False)
    if probe.returncode != 0:
        reason = probe.stderr.decode().strip() or f"exit status {probe.returncode}"
        pytest.skip(f"cannot create network namespaces (needs root/CAP_NET_ADMIN): {reason}")
    try:
        _ip("netns", "add", ns_r)
        _ip("netns", "add", ns_b)
        # Both ends are created inside the namespaces: no name is ever used in ours.
        _ip(
            "-n", ns_a, "link", "add", "to-r", "type", "veth", "peer", "name", "to-a", "netns", ns_r
        )
        _ip(
            "-n", ns_b, "link", "add", "to-r", "type", "veth", "peer", "name", "to-b", "netns", ns_r
        )
        for ns, dev, cidr in (
            (ns_a, "to-r", f"{A_IP}/24"),
            (ns_r, "to-a", f"{R_A_IP}/24"),
            (ns_r, "to-b", f"{R_B_IP}/24"),
            (ns_b, "to-r", f"{B_IP}/24"),
        ):
            _ip("-n", ns, "addr", "add", cidr, "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        for ns in (ns_a, ns_r, ns_b):
            _ip("-n", ns, "link", "set", "lo", "up")
        # A and B send the other's packets to R; R drops them (no forwarding).
        _ip("-n", ns_a, "route", "add", "default", "via", R_A_IP)
        _ip("-n", ns_b, "route", "add", "default", "via", R_B_IP)
        _ip("netns", "exec", ns_r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
        forward = _ip("netns", "exec", ns_r, "sysctl", "-n", "net.ipv4.ip_forward")
        assert forward.strip() == "0"
        yield ns_a, ns_r, ns_b
    finally:
        for ns in (ns_a, ns_r, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, check=False)
        assert tag not in left.stdout.decode(), "a test namespace was not deleted"


class Peer:
    """One helper node in a namespace; ``request`` sends a line and returns its answer."""

    def __init__(self, process: trio.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self._stdin = process.stdin
        self._stdout = process.stdout
        self._buffer = b""
        self.ready: dict[str, Any] = {}

    @property
    def peer_id(self) -> str:
        peer: str = self.ready["peer_id"]
        return peer

    def address(self, ip: str) -> str:
        """Our listen address on ``ip`` (with /p2p/<id>)."""
        (found,) = (a for a in self.ready["addresses"] if a.startswith(f"/ip4/{ip}/tcp/"))
        address: str = found
        return address

    async def line(self, deadline: float) -> dict[str, Any]:
        with trio.fail_after(deadline):
            while b"\n" not in self._buffer:
                data = await self._stdout.receive_some()
                assert data, "the node process exited"
                self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        result: dict[str, Any] = json.loads(line)
        return result

    async def ask(self, op: str, deadline: float = DEADLINE, **fields: Any) -> dict[str, Any]:
        """The answer, ``ok`` or not."""
        await self._stdin.send_all(json.dumps({"op": op, **fields}).encode() + b"\n")
        return await self.line(deadline)

    async def request(self, op: str, deadline: float = DEADLINE, **fields: Any) -> dict[str, Any]:
        reply = await self.ask(op, deadline, **fields)
        assert reply["ok"], reply["error"]
        return reply


@asynccontextmanager
async def peer_in(ns: str, home: Path, *args: str) -> AsyncIterator[Peer]:
    command = ["ip", "netns", "exec", ns, sys.executable, str(HELPER), "--home", str(home)]
    process = await trio.lowlevel.open_process(
        [*command, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    peer = Peer(process)
    try:
        peer.ready = await peer.line(START_DEADLINE)
        assert peer.ready["event"] == "ready"
        yield peer
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
            await peer._stdin.aclose()
            await peer._stdout.aclose()


async def both(
    first: tuple[Peer, str, dict[str, Any]], second: tuple[Peer, str, dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two requests to two peers at once."""
    answers: list[dict[str, Any]] = [{}, {}]

    async def one(i: int, peer: Peer, op: str, fields: dict[str, Any]) -> None:
        answers[i] = await peer.request(op, **fields)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, 0, *first)
        nursery.start_soon(one, 1, *second)
    return answers[0], answers[1]


async def test_peers_that_meet_only_through_a_relay_replicate_both_ways(
    tmp_path: Path, three_namespaces: tuple[str, str, str]
) -> None:
    ns_a, ns_r, ns_b = three_namespaces
    async with AsyncExitStack() as stack:
        listen_r = ("--listen", f"/ip4/{R_A_IP}/tcp/0", "--listen", f"/ip4/{R_B_IP}/tcp/0")
        r = await stack.enter_async_context(peer_in(ns_r, tmp_path / "r", *listen_r, "--relay-hop"))
        r_for_a, r_for_b = r.address(R_A_IP), r.address(R_B_IP)
        a = await stack.enter_async_context(
            peer_in(
                ns_a,
                tmp_path / "a",
                *("--listen", f"/ip4/{A_IP}/tcp/0"),
                *("--bootstrap", r_for_a, "--relay", r_for_a),
            )
        )
        b = await stack.enter_async_context(
            peer_in(
                ns_b,
                tmp_path / "b",
                *("--listen", f"/ip4/{B_IP}/tcp/0"),
                *("--bootstrap", r_for_b, "--relay", r_for_b),
            )
        )
        reserved_a, reserved_b = await both(
            (a, "reserve", {"relay": r.peer_id}), (b, "reserve", {"relay": r.peer_id})
        )
        assert reserved_a["circuit"] == [f"{r_for_a}/p2p-circuit/p2p/{a.peer_id}"]
        assert reserved_b["circuit"] == [f"{r_for_b}/p2p-circuit/p2p/{b.peer_id}"]

        # No direct path: a dial from A to B's own address (and back) goes nowhere. R drops
        # the SYNs, so the dials end at their deadline (both at once). Not connected yet
        # (a dial to a connected peer would reuse the connection and succeed).
        assert b.peer_id not in (await a.request("stats"))["connected"]
        directs: list[dict[str, Any]] = [{}, {}]

        async def dial_directly(i: int, dialler: Peer, target: str) -> None:
            directs[i] = await dialler.ask("connect", address=target, within=DIRECT_DIAL_LIMIT)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(dial_directly, 0, a, b.address(B_IP))
            nursery.start_soon(dial_directly, 1, b, a.address(A_IP))
        for direct in directs:
            assert not direct["ok"], f"reachable without the relay: {direct}"
            assert "ConnectionError" in direct["error"]

        feed = await a.request("create", name="relayed", type="feed")
        address = feed["address"]
        await a.request("write", address=address, count=10, tag="a")

        # B knows only R, which does not hold the database; it reaches A through R.
        circuit = f"{r_for_b}/p2p-circuit/p2p/{a.peer_id}"
        dialled = await b.request("connect", address=circuit)
        assert dialled["peer_id"] == a.peer_id
        assert dialled["relayed"], dialled["remote"]
        # No manifest handed over: B fetches it from A, over the circuit.
        opened = await b.request("open", address=address, type="feed")
        assert opened["address"] == address
        caught_up = await b.request("wait", address=address, entries=10, synced=True)
        written_by_a = await a.request("state", address=address)
        assert caught_up == written_by_a
        assert caught_up["view"] == [f"a-{i}" for i in range(10)]

        # And back: what B writes reaches A, again only through R.
        await b.request("write", address=address, count=5, tag="b")
        at_a, at_b = await both(
            (a, "wait", {"address": address, "entries": 15, "synced": True}),
            (b, "wait", {"address": address, "entries": 15, "synced": True}),
        )
        assert at_a == at_b
        assert at_a["entries"] == 15
        assert sorted(at_a["view"]) == sorted(
            [f"a-{i}" for i in range(10)] + [f"b-{i}" for i in range(5)]
        )
        assert len(at_a["heads"]) == 1  # B wrote after it had A's entries

        # A and B are connected only through R: a relayed connection, no direct one.
        stats_a = await a.request("stats")
        assert b.peer_id in stats_a["connected"]
        # (Already connected: this dials nothing and describes the connection.)
        b_circuit = f"{r_for_a}/p2p-circuit/p2p/{b.peer_id}"
        relayed_back = await a.request("connect", address=b_circuit)
        assert relayed_back["relayed"], relayed_back["remote"]
        assert all("p2p-circuit" in remote for remote in relayed_back["remote"])
