"""Transport.subscribe(validator=): a message the validator refuses (or raises on) is
neither delivered nor forwarded — over real libp2p and on the in-memory network."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import trio

from orbitstore.net.libp2p_config import Libp2pConfig
from orbitstore.net.libp2p_transport import open_libp2p_transport
from orbitstore.net.transport import GossipValidator
from orbitstore.testing.network import MemoryNetwork

DEADLINE = 30.0


def picky(origin_of: list[str]) -> GossipValidator:
    def validate(origin: str, data: bytes) -> bool:
        origin_of.append(origin)
        if data.startswith(b"raise"):
            raise RecursionError("a decoder bug")
        return not data.startswith(b"bad")

    return validate


async def test_libp2p_refused_messages_are_not_forwarded() -> None:
    """A - B - C in a line: B's validator refuses what A publishes, so C (which accepts
    everything) never sees it."""
    topic = "validated"
    async with (
        open_libp2p_transport(Libp2pConfig(), key_path=None) as a,
        open_libp2p_transport(Libp2pConfig(), key_path=None) as b,
        open_libp2p_transport(Libp2pConfig(), key_path=None) as c,
    ):
        inbox_b: list[bytes] = []
        inbox_c: list[bytes] = []
        origins: list[str] = []
        changed = trio.Event()

        def recorder(inbox: list[bytes]) -> Callable[[str, bytes], Awaitable[None]]:
            async def record(peer: str, data: bytes) -> None:
                nonlocal changed
                inbox.append(data)
                changed.set()
                changed = trio.Event()

            return record

        await b.subscribe(topic, recorder(inbox_b), validator=picky(origins))
        await c.subscribe(topic, recorder(inbox_c))
        await a.connect(b.listen_addresses()[0])
        await c.connect(b.listen_addresses()[0])
        with trio.fail_after(DEADLINE):
            sent = 0
            while not inbox_c:  # until the mesh formed
                sent += 1
                await a.publish(topic, b"good-%d" % sent)
                with trio.move_on_after(0.25):
                    await changed.wait()
        for data in (b"bad", b"raise"):
            await a.publish(topic, data)
        await a.publish(topic, b"fence")
        with trio.fail_after(DEADLINE):
            while b"fence" not in inbox_c or b"fence" not in inbox_b:
                await changed.wait()
        for data in (b"bad", b"raise"):
            assert data not in inbox_b and data not in inbox_c
        assert b.statistics().gossip.refused_invalid == 2
        assert c.statistics().gossip.refused_invalid == 0
        assert set(origins) == {a.peer_id}  # the origin, not the forwarder


async def test_memory_network_refuses_before_delivery(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(rng=random.Random(1))
    async with net.open_transport("a") as a, net.open_transport("b") as b:
        inbox: list[bytes] = []
        origins: list[str] = []

        async def record(peer: str, data: bytes) -> None:
            inbox.append(data)

        await b.subscribe("t", record, validator=picky(origins))
        await a.connect("mem/b")
        for data in (b"good", b"bad", b"raise", b"fine"):
            await a.publish("t", data)
        await trio.sleep(1)
        assert inbox == [b"good", b"fine"]
        assert b.gossip_rejected == 2 and origins == ["a"] * 4
        await b.subscribe("t", record)  # subscribing again without one drops it
        await a.publish("t", b"bad")
        await trio.sleep(1)
        assert inbox[-1] == b"bad"
