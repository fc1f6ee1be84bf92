"""The node as a device of a user: linking, pairing and unlinking (thin I/O over
:mod:`orbitstore.node.devices` and :mod:`orbitstore.core.pairing`).

Pairing runs on the ``pair`` stream protocol of the node's transport: the new device
sends one length-prefixed request, the device holding the root key one answer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import trio

from orbitstore.core import pairing
from orbitstore.core.devices import ANY_DATABASE, Delegation, Unlink
from orbitstore.errors import (
    InvalidDataError,
    NetworkError,
    PeerUnavailableError,
    ProtocolError,
    UsageError,
)
from orbitstore.net.transport import PAIR_PROTOCOL, Stream
from orbitstore.node.devices import now_ms

if TYPE_CHECKING:
    from orbitstore.node.database import Database
    from orbitstore.node.node import Node

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


class UserMethods:
    """User and device methods, mixed into :class:`~orbitstore.node.node.Node`."""

    def _node(self) -> Node:
        return cast("Node", self)

    @property
    def user_id(self) -> str:
        """The user this node writes for (its own ``id`` if it is no linked device)."""
        return self._node().device.user_id

    def create_user(self) -> str:
        """Make a new user whose first device is this node (root key in the keystore)."""
        node = self._node()
        user = node.device.create_user()
        self._spread_delegation()
        return user

    def delegate_device(
        self, device: str, *, expires: int | None = None, purpose: str = ANY_DATABASE
    ) -> Delegation:
        """Sign a delegation of this node's user to ``device`` (needs the root key):
        hand it to that device (``accept_delegation``) by any means."""
        return self._node().device.delegate(device, expires=expires, purpose=purpose)

    def accept_delegation(self, delegation: Delegation | str) -> None:
        """Become the device ``delegation`` names (its text form is accepted too)."""
        if isinstance(delegation, str):
            delegation = Delegation.from_text(delegation)
        self._node().device.accept(delegation)
        self._spread_delegation()

    def _spread_delegation(self) -> None:
        node = self._node()
        for db in node._open.values():
            db._delegation = node.device.delegation

    async def unlink_device(
        self, device: str, databases: Iterable[Database] | None = None
    ) -> Unlink:
        """Unlink ``device`` (needs the root key). The unlinking is posted to
        ``databases`` (capabilities ones), by default to every open capabilities database
        where a link op names the device; post it elsewhere later with
        ``db.unlink_device(statement)`` (an unlinking posted before the link still
        kills it: it compares the root's issue times)."""
        node = self._node()
        statement = node.device.unlink_statement(device)
        chosen = list(node._open.values()) if databases is None else list(databases)
        for db in chosen:
            caps = db.log.capabilities
            if db.closed or caps is None:
                continue
            if databases is not None or device in caps.graph.devices_of(statement.user):
                await db.unlink_device(statement)
        return statement

    def device_info(self) -> dict[str, Any]:
        """This node as a device: its id, its user, whether it holds the root key."""
        return self._node().device.describe()

    # -- pairing --------------------------------------------------------------------------

    def _desk(self) -> pairing.PairingDesk:
        node = self._node()
        if node._pairing is None:
            replication = node.replication
            if replication is None:
                raise UsageError("pairing needs a network: open the node with a transport")
            transport = replication.transport
            node._pairing = pairing.PairingDesk(peer=transport.peer_id)
            transport.set_protocol_handler(PAIR_PROTOCOL, self._on_pair_stream)
        return node._pairing

    def open_pairing(
        self,
        *,
        ttl: float = pairing.DEFAULT_TTL,
        purpose: str = ANY_DATABASE,
        expires: int | None = None,
    ) -> PairingOffer:
        """Open a one-time pairing code (needs the root key and a transport)."""
        node = self._node()
        node.device.require_root()
        desk = self._desk()
        code = desk.open(
            os.urandom(5), trio.current_time(), ttl=ttl, purpose=purpose, expires=expires
        )
        transport = node.replication.transport  # type: ignore[union-attr]
        addresses = [a for a in transport.listen_addresses() if "/p2p/" in a]
        if not addresses:
            addresses = [f"{a}/p2p/{transport.peer_id}" for a in transport.listen_addresses()]
        if not addresses:
            raise UsageError("this node listens on no address: pairing needs one")
        return PairingOffer(code, pairing.pairing_link(addresses[0], code), ttl)

    async def _on_pair_stream(self, stream: Stream) -> None:
        node = self._node()
        desk = node._pairing
        root = node.device.root
        if desk is None or root is None:
            await _send(stream, pairing.refused("this node is not pairing"))
            return
        with trio.fail_after(30):
            data = await _receive(stream)
            answer = desk.answer(data, now=trio.current_time(), root=root, issued=now_ms())
            paired = len(desk.paired) > node._paired_seen
            if paired:
                node._paired_seen = len(desk.paired)
                node.device.issued[desk.paired[-1].device] = desk.paired[-1]
                node.device._save()
            await _send(stream, answer)
            if paired:
                node._paired_event.set()

    async def wait_paired(self) -> Delegation:
        """Wait until a device pairs with a code this node opened; its delegation."""
        node = self._node()
        desk = self._desk()
        seen = len(desk.paired)
        while len(desk.paired) <= seen:
            await node._paired_event.wait()
            node._paired_event = trio.Event()
        return desk.paired[-1]

    async def pair(self, link: str, *, timeout: float = 30.0) -> Delegation:
        """Pair this node with the device that showed ``link``: it signs a delegation to
        this node's key, which this node accepts. Needs a transport."""
        node = self._node()
        if node.replication is None:
            raise UsageError("pairing needs a network: open the node with a transport")
        address, code = pairing.parse_pairing_link(link)
        transport = node.replication.transport
        try:
            with trio.fail_after(timeout):
                peer = await transport.connect(address)
                stream = await transport.open_protocol_stream(peer, PAIR_PROTOCOL)
                try:
                    await _send(stream, pairing.request(node.identity, code, peer))
                    answer = await _receive(stream)
                finally:
                    await stream.close()
        except trio.TooSlowError as exc:
            raise PeerUnavailableError(f"pairing with {address} timed out") from exc
        except NetworkError:
            raise
        delegation = pairing.parse_answer(answer, node.id)
        try:
            self.accept_delegation(delegation)
        except InvalidDataError as exc:  # pragma: no cover - parse_answer checked it
            raise ProtocolError(str(exc)) from exc
        return delegation
