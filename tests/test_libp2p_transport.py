"""The py-libp2p transport on 127.0.0.1: the conformance battery and libp2p specifics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from orbitstore.net.libp2p_config import Libp2pConfig
from orbitstore.net.libp2p_transport import Libp2pTransport, open_libp2p_transport
from orbitstore.testing.transport_conformance import CHECKS, Check


@asynccontextmanager
async def loopback_transport() -> AsyncIterator[Libp2pTransport]:
    async with open_libp2p_transport(Libp2pConfig(), key_path=None) as transport:
        yield transport


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
async def test_conformance(check: Check) -> None:
    await check(loopback_transport)
