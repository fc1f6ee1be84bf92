"""The in-memory transport (orbitstore.testing.network) against the conformance battery,
so simulation tests run on a transport that behaves like the libp2p one."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from orbitstore.testing.network import MemoryNetwork, MemoryTransport
from orbitstore.testing.transport_conformance import CHECKS, Check


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("latency", [(0.0, 0.0), (0.001, 0.02)], ids=["instant", "jitter"])
async def test_conformance(
    check: Check, latency: tuple[float, float], autojump_clock: trio.abc.Clock
) -> None:
    net = MemoryNetwork(rng=random.Random(7), latency=latency)
    names = itertools.count()

    @asynccontextmanager
    async def factory() -> AsyncIterator[MemoryTransport]:
        async with net.open_transport(f"peer{next(names)}") as transport:
            yield transport

    await check(factory)
