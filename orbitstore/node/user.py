"""The node as a device of a user: linking, pairing and unlinking (thin I/O over
:mod:`orbitstore.node.devices` and :mod:`orbitstore.core.pairing`).

:class:`UserDevices` is the node's service for these; the node builds it with its device
state, identity and replication, and its methods (``node.pair``, ``node.create_user``,
...) delegate to it.

Pairing runs on the ``pair`` stream protocol of the node's transport: the new device
sends one length-prefixed request, the device holding the root key one answer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from orbitstore.core import pairing
from orbitstore.core.devices import ANY_DATABASE, Delegation, Unlink
from orbitstore.core.identity import Identity
from orbitstore.errors import (
    InvalidDataError,
    NetworkError,
    PeerUnavailableError,
    ProtocolError,
    UsageError,
)
from orbitstore.net.transport import PAIR_PROTOCOL, Stream
from orbitstore.node.devices import DeviceState, now_ms

if TYPE_CHECKING:
    from orbitstore.node.database import Database
    from orbitstore.node.replication import Replication

_LENGTH = 2


@dataclass(frozen=True, slots=True)
class PairingOffer:
    """An open pairing: show ``link`` (or ``code``) to the new device."""

    code: str
    link: str
    expires_in: float


async def _send(stream: Stream, data: bytes) -> None:
    await stream.send_all(len(data).to_bytes(_LENGTH, "big") + data)


async def _receive(stream: Stream) -> bytes:
    buf = b""
    need: int | None = None
    while need is None or len(buf) < need + _LENGTH:
        chunk = await stream.receive_some(pairing.MAX_MESSAGE)
        if not chunk:
            raise ProtocolError("the pairing stream ended early")
        buf += chunk
        if need is None and len(buf) >= _LENGTH:
            need = int.from_bytes(buf[:_LENGTH], "big")
            if need > pairing.MAX_MESSAGE:
                raise ProtocolError("a pairing message is at most 4 KiB")
    return buf[_LENGTH : _LENGTH + need]


class UserDevices:
    """This node as a device of a user (docs/identity.md): the user and device methods
    of :class:`~orbitstore.node.node.Node`, and the pairing desk they open.

    ``databases`` returns the node's database handles (closed ones too): an unlinking
    is posted to those where the device is linked.
    """

    def __init__(
        self,
        *,
        device: DeviceState,
        identity: Identity,
        replication: Replication | None,
        databases: Callable[[], Iterable[Database]],
    ) -> None:
        self.device = device
        self._identity = identity
        self._replication = replication
        self._databases = databases
        self._pairing: pairing.PairingDesk | None = None
        self._paired_event = trio.Event()
        self._paired_seen = 0

    def create_user(self) -> str:
        return self.device.create_user()

    def delegate_device(
        self, device: str, *, expires: int | None = None, purpose: str = ANY_DATABASE
    ) -> Delegation:
        return self.device.delegate(device, expires=expires, purpose=purpose)

    def accept_delegation(self, delegation: Delegation | str) -> None:
        if isinstance(delegation, str):
            delegation = Delegation.from_text(delegation)
        self.device.accept(delegation)

    async def unlink_device(
        self, device: str, databases: Iterable[Database] | None = None
    ) -> Unlink:
        statement = self.device.unlink_statement(device)
        chosen = list(self._databases()) if databases is None else list(databases)
        for db in chosen:
            caps = db.log.capabilities
            if db.closed or caps is None:
                continue
            if databases is not None or device in caps.graph.devices_of(statement.user):
                await db.unlink_device(statement)
        return statement

    # -- pairing --------------------------------------------------------------------------

    def _desk(self) -> pairing.PairingDesk:
        if self._pairing is None:
            replication = self._replication
            if replication is None:
                raise UsageError("pairing needs a network: open the node with a transport")
            transport = replication.transport
            self._pairing = pairing.PairingDesk(peer=transport.peer_id)
            transport.set_protocol_handler(PAIR_PROTOCOL, self._on_pair_stream)
        return self._pairing

    def open_pairing(
        self,
        *,
        ttl: float = pairing.DEFAULT_TTL,
        purpose: str = ANY_DATABASE,
        expires: int | None = None,
    ) -> PairingOffer:
        self.device.require_root()
        desk = self._desk()
        code = desk.open(
            os.urandom(5), trio.current_time(), ttl=ttl, purpose=purpose, expires=expires
        )
        transport = self._replication.transport  # type: ignore[union-attr]
        addresses = [a for a in transport.listen_addresses() if "/p2p/" in a]
        if not addresses:
            addresses = [f"{a}/p2p/{transport.peer_id}" for a in transport.listen_addresses()]
        if not addresses:
            raise UsageError("this node listens on no address: pairing needs one")
        return PairingOffer(code, pairing.pairing_link(addresses[0], code), ttl)

    async def _on_pair_stream(self, stream: Stream) -> None:
        desk = self._pairing
        root = self.device.root
        if desk is None or root is None:
            await _send(stream, pairing.refused("this node is not pairing"))
            return
        with trio.fail_after(30):
            data = await _receive(stream)
            answer = desk.answer(data, now=trio.current_time(), root=root, issued=now_ms())
            paired = len(desk.paired) > self._paired_seen
            if paired:
                self._paired_seen = len(desk.paired)
                self.device.issued[desk.paired[-1].device] = desk.paired[-1]
                self.device._save()
            await _send(stream, answer)
            if paired:
                self._paired_event.set()

    async def wait_paired(self) -> Delegation:
        desk = self._desk()
        seen = len(desk.paired)
        while len(desk.paired) <= seen:
            await self._paired_event.wait()
            self._paired_event = trio.Event()
        return desk.paired[-1]

    async def pair(self, link: str, *, timeout: float = 30.0) -> Delegation:
        if self._replication is None:
            raise UsageError("pairing needs a network: open the node with a transport")
        address, code = pairing.parse_pairing_link(link)
        transport = self._replication.transport
        try:
            with trio.fail_after(timeout):
                peer = await transport.connect(address)
                stream = await transport.open_protocol_stream(peer, PAIR_PROTOCOL)
                try:
                    await _send(stream, pairing.request(self._identity, code, peer))
                    answer = await _receive(stream)
                finally:
                    await stream.close()
        except trio.TooSlowError as exc:
            raise PeerUnavailableError(f"pairing with {address} timed out") from exc
        except NetworkError:
            raise
        delegation = pairing.parse_answer(answer, self._identity.id)
        try:
            self.accept_delegation(delegation)
        except InvalidDataError as exc:  # pragma: no cover - parse_answer checked it
            raise ProtocolError(str(exc)) from exc
        return delegation
