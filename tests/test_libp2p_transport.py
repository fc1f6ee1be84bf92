"""The py-libp2p transport on 127.0.0.1: the conformance battery and libp2p specifics."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from libp2p import generate_new_ed25519_identity, new_host
from libp2p.abc import IHost
from libp2p.network.config import ConnectionConfig
from libp2p.network.swarm import Swarm
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from multiaddr import Multiaddr

from orbitstore.errors import (
    ClosedError,
    InvalidDataError,
    InvalidValueError,
    KeystoreError,
    NetworkError,
    PayloadTooLargeError,
    PeerUnavailableError,
    ProtocolError,
    StreamResetError,
    UsageError,
)
from orbitstore.net._peer_key import load_or_create_peer_key
from orbitstore.net.libp2p_config import GossipConfig, Libp2pConfig, RelayConfig
from orbitstore.net.libp2p_transport import Libp2pTransport, open_libp2p_transport
from orbitstore.net.transport import Stream
from orbitstore.testing import transport_conformance
from orbitstore.testing.transport_conformance import CHECKS, Check


@asynccontextmanager
async def loopback_transport() -> AsyncIterator[Libp2pTransport]:
    async with open_libp2p_transport(Libp2pConfig(), key_path=None) as transport:
        yield transport


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
async def test_conformance(check: Check) -> None:
    await check(loopback_transport)


# --- helpers for libp2p-specific tests ------------------------------------------------------

DEADLINE = 30.0  # generous: a fresh Python process imports libp2p in ~1 s, longer when busy
HELPER = Path(__file__).parent / "helpers" / "libp2p_peer.py"


class PeerProcess:
    """A transport in another OS process (tests/helpers/libp2p_peer.py)."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        assert process.stdout is not None
        self._stdout = process.stdout
        self._buffer = b""
        self.address = ""

    async def expect(self, prefix: str) -> str:
        """The next stdout line starting with ``prefix`` (fails after DEADLINE)."""
        with trio.fail_after(DEADLINE):
            while True:
                if b"\n" in self._buffer:
                    line, _, self._buffer = self._buffer.partition(b"\n")
                    text = line.decode()
                    if text.startswith(prefix):
                        return text[len(prefix) :].strip()
                    continue
                data = await self._stdout.receive_some()
                assert data, f"helper exited before printing {prefix!r}"
                self._buffer += data

    @property
    def peer_id(self) -> str:
        return self.address.rsplit("/p2p/", 1)[1]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)


@asynccontextmanager
async def peer_process(
    mode: str, *, key: Path | None = None, listen: str = "/ip4/127.0.0.1/tcp/0"
) -> AsyncIterator[PeerProcess]:
    command = [sys.executable, str(HELPER), "--mode", mode, "--listen", listen]
    if key is not None:
        command += ["--key", str(key)]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    peer = PeerProcess(process)
    try:
        peer.address = await peer.expect("ADDR ")
        yield peer
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
            await peer._stdout.aclose()


# --- security --------------------------------------------------------------------------------


def _plaintext_host() -> IHost:
    key_pair = generate_new_ed25519_identity()
    return new_host(
        key_pair=key_pair,
        sec_opt={PLAINTEXT_PROTOCOL_ID: InsecureTransport(key_pair)},
        connection_config=ConnectionConfig(max_connections_per_peer=1),
    )


async def _plaintext_dial(address: str) -> bool:
    """Whether a client that offers only /plaintext/2.0.0 gets a connection."""
    client = _plaintext_host()
    async with client.run(listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        try:
            with trio.fail_after(DEADLINE):
                await client.connect(info_from_p2p_addr(Multiaddr(address)))
        except Exception:  # any refusal will do: the dial must not succeed
            return False
        finally:
            with trio.CancelScope(shield=True):
                await client.close()
        return True


async def test_plaintext_client_is_refused() -> None:
    async with loopback_transport() as transport:
        assert not await _plaintext_dial(transport.listen_addresses()[0])
        assert transport.connected_peers() == set()


async def test_default_libp2p_host_would_accept_plaintext() -> None:
    """The control for the test above: the refusal is our configuration's doing."""
    server = new_host(connection_config=ConnectionConfig(max_connections_per_peer=1))
    async with server.run(listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        try:
            assert await _plaintext_dial(str(server.get_addrs()[0]))
        finally:
            with trio.CancelScope(shield=True):
                await server.close()


async def test_connections_are_noise_and_yamux() -> None:
    async with loopback_transport() as a, loopback_transport() as b:
        await a.connect(b.listen_addresses()[0])
        network = a.host.get_network()
        assert isinstance(network, Swarm)
        (conn,) = network.get_connections(b.host.get_id())
        assert conn.get_negotiated_security_protocol() == "/noise"
        assert conn.get_negotiated_muxer_protocol() == "/yamux/1.0.0"


# --- identity --------------------------------------------------------------------------------


async def test_peer_key_is_persisted_with_mode_0600(tmp_path: Path) -> None:
    key = tmp_path / "node" / "peer.key"
    async with open_libp2p_transport(key_path=key) as first:
        peer_id = first.peer_id
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    async with open_libp2p_transport(key_path=key) as second:
        assert second.peer_id == peer_id


def test_peer_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "peer.key"
    load_or_create_peer_key(key)
    key.chmod(0o644)
    with pytest.raises(KeystoreError, match="chmod 600"):
        load_or_create_peer_key(key)


@given(st.binary(max_size=200))
def test_peer_key_file_loads_or_raises_keystore_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "peer.key"
        key.write_bytes(data)
        key.chmod(0o600)
        try:
            pair = load_or_create_peer_key(key)
        except KeystoreError:
            return
        assert pair.private_key.serialize() == data


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"listen_addresses": ()},
        {"listen_addresses": ("not a multiaddr",)},
        {"listen_addresses": "/ip4/127.0.0.1/tcp/0"},
        {"bootstrap_peers": ("/ip4/127.0.0.1/tcp/4001",)},
        {"connect_timeout": 0},
        {"write_chunk_size": 4096},
        {"mdns": "yes"},
        {"reconnect_initial_delay": 5.0, "reconnect_max_delay": 1.0},
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidValueError):
        Libp2pConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_gossip_and_relay_config_is_refused() -> None:
    with pytest.raises(InvalidValueError):
        GossipConfig(max_message_size=2 << 20)
    with pytest.raises(InvalidValueError):
        GossipConfig(degree=3, degree_low=4)
    with pytest.raises(InvalidValueError, match="client=True"):
        RelayConfig(relays=("/ip4/127.0.0.1/tcp/1/p2p/" + "12D3KooW" + "A" * 44,))


async def test_bad_addresses_and_peer_ids_are_usage_errors() -> None:
    async with loopback_transport() as transport:
        with pytest.raises(InvalidValueError):
            await transport.connect("/ip4/127.0.0.1/tcp/1")  # no /p2p/<id>
        with pytest.raises(InvalidValueError):
            await transport.connect(transport.listen_addresses()[0])  # ourselves
        with pytest.raises(InvalidValueError):
            await transport.open_stream("not-a-peer-id")
        with pytest.raises(UsageError, match="DHT is off"):
            await transport.provide("/orbitstore/x")


# --- gossip ----------------------------------------------------------------------------------


async def test_gossip_burst_is_delivered_in_full_with_back_pressure() -> None:
    """300 publishes in a tight loop: the library alone delivers ~2% of such a burst."""
    topic, count = "burst", 300
    async with loopback_transport() as a, loopback_transport() as b:
        got: set[bytes] = set()
        changed = trio.Event()

        async def on_message(peer: str, data: bytes) -> None:
            nonlocal changed
            got.add(data)
            changed.set()
            changed = trio.Event()

        await b.subscribe(topic, on_message)
        await a.subscribe(topic, on_message)
        await a.connect(b.listen_addresses()[0])
        with trio.fail_after(DEADLINE):  # wait for the mesh: a first message gets through
            warmup = 0
            while not got:
                warmup += 1
                await a.publish(topic, b"warmup-%d" % warmup)
                with trio.move_on_after(0.25):
                    await changed.wait()
        got.clear()
        for i in range(count):
            await a.publish(topic, b"m-%d" % i)
        with trio.fail_after(DEADLINE):
            while len({d for d in got if d.startswith(b"m-")}) < count:
                await changed.wait()
        assert a.statistics().gossip.published >= count


async def test_gossip_is_forwarded_and_oversized_messages_stop_at_the_validator() -> None:
    """A - B - C in a line: B forwards A's messages to C, but B's validator refuses (and
    does not forward) a message over B's size limit, even though A allowed it."""
    topic = "line"
    small_limit = Libp2pConfig(gossip=GossipConfig(max_message_size=1000))
    async with (
        loopback_transport() as a,
        open_libp2p_transport(small_limit, key_path=None) as b,
        loopback_transport() as c,
    ):
        inbox_b: list[bytes] = []
        inbox_c: list[bytes] = []
        changed = trio.Event()

        def recorder(inbox: list[bytes]) -> Callable[[str, bytes], Awaitable[None]]:
            async def record(peer: str, data: bytes) -> None:
                nonlocal changed
                assert peer == a.peer_id  # the origin, not the forwarding peer
                inbox.append(data)
                changed.set()
                changed = trio.Event()

            return record

        await b.subscribe(topic, recorder(inbox_b))
        await c.subscribe(topic, recorder(inbox_c))
        await a.connect(b.listen_addresses()[0])
        await c.connect(b.listen_addresses()[0])
        assert a.peer_id not in c.connected_peers()
        with trio.fail_after(DEADLINE):
            sent = 0
            while not inbox_c:
                sent += 1
                await a.publish(topic, b"small-%d" % sent)
                with trio.move_on_after(0.25):
                    await changed.wait()
        big = b"B" * 2000
        await a.publish(topic, big)
        fence = b"fence"
        await a.publish(topic, fence)
        with trio.fail_after(DEADLINE):
            while fence not in inbox_c or fence not in inbox_b:
                await changed.wait()
        assert big not in inbox_b
        assert big not in inbox_c
        assert b.statistics().gossip.refused_oversized >= 1


async def test_oversized_gossip_is_refused_locally() -> None:
    config = Libp2pConfig(gossip=GossipConfig(max_message_size=1000))
    async with open_libp2p_transport(config, key_path=None) as transport:
        with pytest.raises(PayloadTooLargeError):
            await transport.publish("t", b"x" * 1001)
        with pytest.raises(InvalidValueError):
            await transport.publish("", b"x")


# --- crashes and restarts (a second OS process) ----------------------------------------------


@pytest.mark.slow
async def test_sigkill_while_we_read_ends_the_stream_in_time() -> None:
    """The peer floods us and is SIGKILLed: we see EOF or NetworkError, never a hang."""
    async with loopback_transport() as transport, peer_process("flood") as peer:
        await transport.connect(peer.address)
        stream = await transport.open_stream(peer.peer_id)
        await stream.send_all(b"go")
        await peer.expect("STREAM")
        with trio.fail_after(DEADLINE):
            assert await stream.receive_some()
        peer.kill()
        with trio.fail_after(DEADLINE):
            try:
                while await stream.receive_some():
                    pass
            except NetworkError:
                pass  # a reset; an EOF is the other legal outcome
            with pytest.raises(NetworkError):
                while True:
                    await stream.send_all(b"x" * 65536)


@pytest.mark.slow
async def test_sigkill_while_we_write_raises_network_error_in_time() -> None:
    async with loopback_transport() as transport, peer_process("sink") as peer:
        await transport.connect(peer.address)
        stream = await transport.open_stream(peer.peer_id)
        await stream.send_all(b"x" * 65536)
        await peer.expect("STREAM")
        peer.kill()
        with trio.fail_after(DEADLINE), pytest.raises(NetworkError):
            while True:
                await stream.send_all(b"x" * 65536)
        with trio.fail_after(DEADLINE):
            await transport.wait_disconnected(peer.peer_id)
        with pytest.raises(NetworkError):
            await transport.open_stream(peer.peer_id)


@pytest.mark.slow
async def test_reconnect_after_restart_with_same_key_and_port(tmp_path: Path) -> None:
    """A failed dial puts the peer in libp2p's 60 s negative cache; our dials lift it, and
    keep_connected() brings the restarted peer back by itself."""
    key = tmp_path / "peer.key"
    config = Libp2pConfig(reconnect_initial_delay=0.1, reconnect_max_delay=0.5)
    async with open_libp2p_transport(config, key_path=None) as transport:
        async with peer_process("echo", key=key) as peer:
            address, peer_id = peer.address, peer.peer_id
            assert await transport.connect(address) == peer_id
            peer.kill()
            with trio.fail_after(DEADLINE):
                await transport.wait_disconnected(peer_id)
        with pytest.raises(PeerUnavailableError):  # marks the negative cache
            await transport.connect(address)
        network = transport.host.get_network()
        assert isinstance(network, Swarm)
        assert network._negative_peer_cache.is_blocked(peer_id)
        transport.keep_connected(address)  # keeps failing while the peer is down
        listen = address.split("/p2p/")[0]
        async with peer_process("echo", key=key, listen=listen) as restarted:
            assert restarted.address == address
            with trio.fail_after(DEADLINE):
                await transport.wait_connected(peer_id)
                stream = await transport.open_stream(peer_id)
                await stream.send_all(b"ping")
                await stream.close()
                assert await stream.receive_some() == b"ping"


# --- discovery: DHT and relay -----------------------------------------------------------------


async def test_dht_provide_and_find_providers() -> None:
    config = Libp2pConfig(dht=True)
    async with (
        open_libp2p_transport(config, key_path=None) as a,
        open_libp2p_transport(config, key_path=None) as hub,
        open_libp2p_transport(config, key_path=None) as c,
    ):
        await a.connect(hub.listen_addresses()[0])
        await c.connect(hub.listen_addresses()[0])
        key = "/orbitstore/bafyreiexampledatabase"
        with trio.fail_after(DEADLINE):
            assert await c.provide(key)
            providers = await a.find_providers(key)
            assert await a.find_providers("/orbitstore/nobody-has-this") == []
        assert [p.peer_id for p in providers] == [c.peer_id]  # once, though several answer
        (address,) = providers[0].dial_addresses()
        assert address in c.listen_addresses()


async def test_relayed_connection_and_stream() -> None:
    """D reserves a slot at relay R; S, which knows no direct address of D, reaches D
    through R and speaks the sync protocol with it."""
    async with open_libp2p_transport(
        Libp2pConfig(relay=RelayConfig(hop=True)), key_path=None
    ) as relay:
        relay_address = relay.listen_addresses()[0]
        behind_nat = Libp2pConfig(relay=RelayConfig(client=True, relays=(relay_address,)))
        async with (
            open_libp2p_transport(behind_nat, key_path=None) as d,
            open_libp2p_transport(Libp2pConfig(relay=RelayConfig(client=True)), key_path=None) as s,
        ):

            async def echo(stream: Stream) -> None:
                while data := await stream.receive_some():
                    await stream.send_all(data)
                await stream.close()

            d.set_stream_handler(echo)
            with trio.fail_after(DEADLINE):
                await d.wait_relay_reservation(relay.peer_id)
            assert d.has_relay_reservation(relay.peer_id)
            (circuit,) = d.relay_addresses()
            assert circuit == f"{relay_address}/p2p-circuit/p2p/{d.peer_id}"
            with trio.fail_after(DEADLINE):
                assert await s.connect(circuit) == d.peer_id
                network = s.host.get_network()
                assert isinstance(network, Swarm)
                (conn,) = network.get_connections(d.host.get_id())
                assert "p2p-circuit" in str(conn.get_transport_addresses())
                stream = await s.open_stream(d.peer_id)
                await stream.send_all(b"through the relay")
                await stream.close()
                assert await stream.receive_some() == b"through the relay"


def _can_unshare_network() -> str | None:
    """None if we may create a network namespace, else why not."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs the unshare and ip commands"
    probe = subprocess.run(
        ["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.decode().strip()}"
    return None


@pytest.mark.slow
async def test_mdns_discovers_and_connects_in_a_private_network_namespace() -> None:
    """mDNS multicasts on every interface, so this runs in a namespace with only lo."""
    reason = _can_unshare_network()
    if reason is not None:
        pytest.skip(reason)
    helper = Path(__file__).parent / "helpers" / "mdns_pair.py"
    script = f'ip link set lo up && exec "{sys.executable}" "{helper}" {DEADLINE}'
    with trio.fail_after(DEADLINE + 15):
        result = await trio.run_process(
            ["unshare", "-n", "sh", "-c", script], capture_stdout=True, check=False
        )
    assert result.returncode == 0
    assert result.stdout.strip() == b"FOUND"


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


@pytest.mark.slow
async def test_peers_in_two_network_namespaces_over_veth() -> None:
    """Two processes in separate network namespaces, joined by a veth pair, replicate
    over a real (non-loopback) interface."""
    if shutil.which("ip") is None:
        pytest.skip("needs the ip command")
    tag = f"{os.getpid() % 100000}"
    ns_a, ns_b = f"osnet{tag}a", f"osnet{tag}b"
    probe = subprocess.run(["ip", "netns", "add", ns_a], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create network namespaces: {probe.stderr.decode().strip()}")
    try:
        _run("ip", "netns", "add", ns_b)
        _run("ip", "link", "add", f"vos{tag}a", "type", "veth", "peer", "name", f"vos{tag}b")
        for ns, side, ip in ((ns_a, "a", "10.231.7.1"), (ns_b, "b", "10.231.7.2")):
            _run("ip", "link", "set", f"vos{tag}{side}", "netns", ns)
            _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", f"vos{tag}{side}")
            _run("ip", "-n", ns, "link", "set", f"vos{tag}{side}", "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        server_cmd = ["ip", "netns", "exec", ns_a, sys.executable, str(HELPER)]
        server_cmd += ["--mode", "echo", "--listen", "/ip4/10.231.7.1/tcp/0"]
        server = await trio.lowlevel.open_process(server_cmd, stdout=subprocess.PIPE)
        peer = PeerProcess(server)
        try:
            address = await peer.expect("ADDR ")
            assert address.startswith("/ip4/10.231.7.1/tcp/")
            client_cmd = ["ip", "netns", "exec", ns_b, sys.executable, str(HELPER)]
            client_cmd += ["--mode", "client", "--connect", address]
            client_cmd += ["--listen", "/ip4/10.231.7.2/tcp/0"]
            with trio.fail_after(DEADLINE):
                result = await trio.run_process(client_cmd, capture_stdout=True, check=False)
            assert result.returncode == 0
            assert b"ECHO across namespaces" in result.stdout
            assert await peer.expect("STREAM") == ""
        finally:
            server.kill()
            with trio.CancelScope(shield=True):
                await server.wait()
                await peer._stdout.aclose()
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


# --- handler failures ---------------------------------------------------------------


async def test_handler_blaming_the_peer_resets_the_stream() -> None:
    """A stream handler that raises ProtocolError (the peer's fault) is logged, its stream
    is reset (the peer sees StreamResetError) and the transport carries on."""

    async def strict(stream: Stream) -> None:
        await stream.receive_some()
        raise ProtocolError("bad frame")

    async with loopback_transport() as a, loopback_transport() as b:
        b.set_stream_handler(strict)
        await a.connect(b.listen_addresses()[0])
        for _ in range(2):
            with trio.fail_after(DEADLINE):
                stream = await a.open_stream(b.peer_id)
                await stream.send_all(b"garbage")
                with pytest.raises(StreamResetError):
                    while await stream.receive_some():
                        pass


async def test_handler_bug_resets_the_stream_is_counted_and_the_node_goes_on() -> None:
    """A stream handler that raises something unexpected (a bug) is a remote boundary:
    logged with the peer, counted, that stream reset; the transport keeps serving."""

    async def buggy(stream: Stream) -> None:
        if await stream.receive_some() == b"bug":
            raise RuntimeError("a bug in the handler")
        await stream.send_all(b"fine")

    async with loopback_transport() as a, loopback_transport() as b:
        b.set_stream_handler(buggy)
        await a.connect(b.listen_addresses()[0])
        with trio.fail_after(DEADLINE):
            stream = await a.open_stream(b.peer_id)
            await stream.send_all(b"bug")
            with pytest.raises(StreamResetError):
                while await stream.receive_some():
                    pass
            stream = await a.open_stream(b.peer_id)
            await stream.send_all(b"ok")
            assert await stream.receive_some() == b"fine"
        stats = b.statistics().handlers
        assert (stats.inbound_streams, stats.stream_handler_errors) == (2, 1)


async def test_gossip_handler_bug_is_counted_and_the_subscription_goes_on() -> None:
    topic = "buggy"
    async with loopback_transport() as a, loopback_transport() as b:
        good: list[bytes] = []
        changed = trio.Event()

        async def buggy(peer: str, data: bytes) -> None:
            nonlocal changed
            changed.set()
            changed = trio.Event()
            if data.startswith(b"bug"):
                raise RuntimeError("a bug in the gossip handler")
            good.append(data)

        await b.subscribe(topic, buggy)
        await a.connect(b.listen_addresses()[0])
        with trio.fail_after(DEADLINE):
            sent = 0
            while not good or not b.statistics().gossip.handler_errors:
                sent += 1
                await a.publish(topic, b"bug-%d" % sent)
                await a.publish(topic, b"good-%d" % sent)
                with trio.move_on_after(0.25):
                    await changed.wait()


async def test_gossip_handler_blaming_the_sender_keeps_the_subscription() -> None:
    topic = "strict"
    async with loopback_transport() as a, loopback_transport() as b:
        good: list[bytes] = []
        changed = trio.Event()

        async def strict(peer: str, data: bytes) -> None:
            nonlocal changed
            changed.set()
            changed = trio.Event()
            if data.startswith(b"bad"):
                raise InvalidDataError("not an announcement")
            good.append(data)

        await b.subscribe(topic, strict)
        await a.connect(b.listen_addresses()[0])
        with trio.fail_after(DEADLINE):
            sent = 0
            while not good:
                sent += 1
                await a.publish(topic, b"bad-%d" % sent)
                await a.publish(topic, b"good-%d" % sent)
                with trio.move_on_after(0.25):
                    await changed.wait()


def test_conformance_checks_are_all_listed() -> None:
    defined = {name for name in dir(transport_conformance) if name.startswith("check_")}
    assert {check.__name__ for check in CHECKS} == defined


# --- lifecycle ----------------------------------------------------------------------


async def test_port_in_use_is_refused() -> None:
    """py-libp2p listens with SO_REUSEPORT: without our check a second node would share
    the port and the kernel would split incoming connections between the two."""
    async with loopback_transport() as first:
        listen = first.listen_addresses()[0].split("/p2p/")[0]
        config = Libp2pConfig(listen_addresses=(listen,))
        with pytest.raises(NetworkError, match="in use"):
            async with open_libp2p_transport(config, key_path=None):
                pass


async def test_address_we_do_not_have_is_refused() -> None:
    config = Libp2pConfig(listen_addresses=("/ip4/192.0.2.1/tcp/0",))  # TEST-NET-1
    with pytest.raises(NetworkError, match="cannot listen"):
        async with open_libp2p_transport(config, key_path=None):
            pass


async def test_errors_from_the_body_come_out_unwrapped() -> None:
    with pytest.raises(KeyError, match="mine"):
        async with loopback_transport():
            raise KeyError("mine")


async def test_closed_transport_refuses_use() -> None:
    async with loopback_transport() as transport:
        pass
    with pytest.raises(ClosedError):
        await transport.publish("t", b"x")
    with pytest.raises(ClosedError):
        await transport.connect("/ip4/127.0.0.1/tcp/1/p2p/" + transport.peer_id)


def test_a_spawn_into_a_closing_nursery_is_not_an_error_of_the_transport() -> None:
    """py-libp2p spawns a task per gossip message; one arriving while the host stops
    raises RuntimeError from a closing nursery, which used to fail whoever closed the
    transport (tests/test_wait_synced_bootstrap.py, about 1 run in 6)."""
    from orbitstore.net._libp2p_host import is_shutdown_race, without_shutdown_races

    race = RuntimeError("Nursery is closed to new arrivals")
    other = RuntimeError("something else")
    assert is_shutdown_race(race) and not is_shutdown_race(other)
    assert (
        without_shutdown_races(BaseExceptionGroup("x", [BaseExceptionGroup("y", [race])])) is None
    )
    rest = without_shutdown_races(BaseExceptionGroup("x", [race, other]))
    assert rest is not None and rest.exceptions == (other,)
