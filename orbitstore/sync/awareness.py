"""Awareness over gossip: what a node relays of its y-websocket clients' presence.

How it works
============

Awareness (cursors, selections, user names) is the ephemeral side of a Yjs document:
each client announces a JSON state under its Yjs client id with a clock that grows with
every change, and a ``null`` state when it leaves. It is never written to the log. A
node relays the awareness messages of its y-websocket clients to its other clients and,
on the gossip topic ``/orbitstore/awareness/<manifest cid>``, to the clients of every
other node that replicates the document. A message on that topic is one of::

    {"db": <link>, "update": <bytes>}     an awareness update (y-protocols encoding)
    {"db": <link>, "query": true}         "send me your clients' states" (a room opened)

The ``update`` bytes are exactly what Yjs sends (``encodeAwarenessUpdate``)::

    varuint n, then n times: varuint client id, varuint clock, varstring JSON state

Rule 1 — decode everything before anyone acts on it, as for announcements
(:mod:`orbitstore.sync.announce`): the transport's topic validator runs
:func:`decode_awareness`, so a message that is too large, names another database, or
carries an update that does not parse (bad varints, a state that is not a JSON object
or ``null``, too many clients, an oversized state) is a
:class:`~orbitstore.errors.ProtocolError` and is neither delivered nor forwarded.

Rule 2 — bounded. A message is at most ``max_message_bytes``, an update names at most
``max_clients`` clients, a state is at most ``max_state_bytes`` of JSON. A local
client's update over these limits is still relayed to the node's own clients, just not
gossiped (:func:`encode_awareness` raises :class:`~orbitstore.errors.PayloadTooLargeError`).

Awareness carries no signature of its own: gossip is signed by the sending node
(``strict_signing``), which is as much as the y-websocket protocol offers a server.
Everything that decides what an awareness message may contain lives in this file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from orbitstore.core import codec
from orbitstore.core.cid import DAG_CBOR, Cid
from orbitstore.errors import (
    InvalidDataError,
    InvalidValueError,
    PayloadTooLargeError,
    ProtocolError,
)

# lib0 encodes integers of up to 53 bits (JavaScript's safe integers).
_MAX_VARUINT_BYTES = 8
_MAX_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class AwarenessLimits:
    """What an awareness message may hold. A cursor and a user name take ~200 bytes."""

    max_message_bytes: int = 16 * 1024
    max_clients: int = 64
    max_state_bytes: int = 4 * 1024

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_clients", "max_state_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidValueError(f"awareness {name} must be a positive integer")


DEFAULT_AWARENESS_LIMITS = AwarenessLimits()


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientState:
    """One client's entry in an awareness update; ``removed`` when its state is null."""

    client_id: int
    clock: int
    removed: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AwarenessMessage:
    """A gossiped awareness update (``update`` set) or query (``update`` is None)."""

    db: Cid
    update: bytes | None = None
    clients: tuple[ClientState, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.db, Cid) or self.db.codec != DAG_CBOR:
            raise InvalidValueError("awareness.db must be a dag-cbor CID")
        if self.update is not None and not isinstance(self.update, bytes):
            raise InvalidValueError("awareness.update is bytes (or None for a query)")

    @property
    def is_query(self) -> bool:
        return self.update is None


def parse_update(
    update: bytes, *, limits: AwarenessLimits = DEFAULT_AWARENESS_LIMITS
) -> tuple[ClientState, ...]:
    """The clients an awareness update names; ProtocolError if it does not parse or is
    over the limits."""
    reader = _Reader(update)
    count = reader.varuint()
    if count > limits.max_clients:
        raise _OverLimitError(
            f"awareness update names {count} clients (at most {limits.max_clients})"
        )
    clients = []
    for _ in range(count):
        client_id = reader.varuint()
        clock = reader.varuint()
        raw = reader.varbytes()
        if len(raw) > limits.max_state_bytes:
            raise _OverLimitError(
                f"awareness state of {len(raw)} bytes (at most {limits.max_state_bytes})"
            )
        try:
            state = json.loads(raw.decode("utf-8")) if raw else None  # pycrdt: "" is null
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ProtocolError(f"awareness state is not JSON: {exc}") from exc
        if state is not None and not isinstance(state, dict):
            raise ProtocolError("an awareness state is a JSON object or null")
        clients.append(ClientState(client_id=client_id, clock=clock, removed=state is None))
    if not reader.done:
        raise ProtocolError("trailing bytes after an awareness update")
    return tuple(clients)


def encode_awareness(
    message: AwarenessMessage, *, limits: AwarenessLimits = DEFAULT_AWARENESS_LIMITS
) -> bytes:
    """The gossip message (canonical DAG-CBOR). PayloadTooLargeError when over the limits
    (relay it locally only), ProtocolError when the update does not parse."""
    if message.update is None:
        data = codec.encode({"db": message.db, "query": True})
    else:
        if len(message.update) > limits.max_message_bytes:
            raise PayloadTooLargeError(
                f"awareness update of {len(message.update)} bytes is over"
                f" {limits.max_message_bytes}"
            )
        try:
            parse_update(message.update, limits=limits)
        except _OverLimitError as exc:
            raise PayloadTooLargeError(f"awareness update not gossiped: {exc.message}") from exc
        data = codec.encode({"db": message.db, "update": message.update})
    if len(data) > limits.max_message_bytes:
        raise PayloadTooLargeError(
            f"awareness message of {len(data)} bytes is over {limits.max_message_bytes}"
        )
    return data


def decode_awareness(
    data: bytes, *, db: Cid, limits: AwarenessLimits = DEFAULT_AWARENESS_LIMITS
) -> AwarenessMessage:
    """Decode and fully check a message received on the awareness topic of ``db`` (Rule
    1). Raises ProtocolError for anything else."""
    if len(data) > limits.max_message_bytes:
        raise ProtocolError(f"awareness message of {len(data)} bytes is over the limit")
    try:
        msg = codec.decode(data)
    except InvalidDataError as exc:
        raise ProtocolError(f"awareness message is not canonical DAG-CBOR: {exc.message}") from exc
    if not isinstance(msg, dict) or set(msg) not in ({"db", "update"}, {"db", "query"}):
        raise ProtocolError("an awareness message is a map of db and update, or db and query")
    if msg["db"] != db:
        raise ProtocolError(f"awareness message on the topic of {db} names another database")
    if "query" in msg:
        if msg["query"] is not True:
            raise ProtocolError("an awareness query is {db, query: true}")
        return AwarenessMessage(db=db)
    update = msg["update"]
    if not isinstance(update, bytes):
        raise ProtocolError("awareness update must be bytes")
    return AwarenessMessage(db=db, update=update, clients=parse_update(update, limits=limits))


class _OverLimitError(ProtocolError):
    """Well-formed but over a limit: a local client's update is then not gossiped."""


class _Reader:
    """lib0's varuint / varstring decoding over bytes, every read bounded."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def done(self) -> bool:
        return self._pos == len(self._data)

    def varuint(self) -> int:
        value = 0
        for i in range(_MAX_VARUINT_BYTES):
            if self._pos >= len(self._data):
                raise ProtocolError("awareness update ends inside a number")
            byte = self._data[self._pos]
            self._pos += 1
            value |= (byte & 0x7F) << (7 * i)
            if byte < 0x80:
                if value > _MAX_SAFE_INTEGER:
                    raise ProtocolError("awareness update has a number over 2**53")
                return value
        raise ProtocolError("awareness update has a number over 2**53")

    def varbytes(self) -> bytes:
        length = self.varuint()
        end = self._pos + length
        if end > len(self._data):
            raise ProtocolError("awareness update ends inside a state")
        raw = self._data[self._pos : end]
        self._pos = end
        return raw


__all__ = [
    "DEFAULT_AWARENESS_LIMITS",
    "AwarenessLimits",
    "AwarenessMessage",
    "ClientState",
    "decode_awareness",
    "encode_awareness",
    "parse_update",
]
