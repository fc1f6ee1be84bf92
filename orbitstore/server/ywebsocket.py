"""A y-websocket endpoint per ydoc database: stock Yjs editors connect unchanged.

How it works
============

A Yjs client (``new WebsocketProvider("ws://host:port/ydoc", "<database>", ydoc)``)
opens ``/ydoc/<database>`` (a local name or the database's CID) and speaks the
y-protocols messages, which pycrdt encodes and decodes for us
(:func:`pycrdt.create_sync_message`, :func:`pycrdt.handle_sync_message`,
:func:`pycrdt.read_message`, :class:`pycrdt.Awareness`):

1. On connect the server subscribes to the database's changes *first*, then sends sync
   step 1 (the live document's state vector) and the awareness states of the other
   clients. Nothing committed after that moment can be missed: it is pushed below.
2. The client's step 1 is answered with step 2 (what the client lacks), computed from
   the live document by ``handle_sync_message``.
3. The client's step 2 and its later updates are *not* applied to the document by hand:
   each is appended to the database as one signed entry
   (:meth:`~orbitstore.node.ydoc.YDocument.append_update`), durable when the append
   returns. The view applies it to the document, publishes the change, and the change
   reaches every client of this node (the sender too: Yjs ignores what it has) and,
   through replication, every other node.
4. Every change of the database, local or replicated, is pushed to each connected
   client as a sync update. A client whose subscription lagged gets the whole document
   as one update instead (Yjs merges it; nothing is lost).
5. Awareness (cursors, user names) is ephemeral, never written to the log: an awareness
   message is applied to the room's :class:`pycrdt.Awareness` (so a client that joins
   later learns the current states), relayed to every client of the room on this node
   and, when the node replicates the database, gossiped to the rooms of the other nodes
   (:mod:`orbitstore.node.awareness`, checked by :mod:`orbitstore.sync.awareness` before
   it is delivered or forwarded). A room that opens asks the other nodes for their
   clients' states. When a client goes away, the states it announced are removed and
   the removal is relayed (and gossiped); when a node disconnects, the states of its
   clients are removed from the rooms of the nodes it was connected to.

A node that may not write the database (its access list does not name this node)
serves the document read-only: client updates are refused with the y-protocols
"permission denied" auth message and the connection stays open. Messages that do not
decode close that connection (code 4422), never the node. A client that cannot keep up
(``ApiConfig.send_queue`` messages queued) is disconnected (1013) and re-syncs when its
provider reconnects.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pycrdt
import trio
from pycrdt import YMessageType, YSyncMessageType
from starlette.websockets import WebSocket, WebSocketDisconnect

from orbitstore.core.cid import Cid
from orbitstore.errors import InvalidValueError, OrbitstoreError, ProtocolError
from orbitstore.net.transport import PeerId
from orbitstore.node.awareness import AwarenessRelay
from orbitstore.node.ydoc import YDocument
from orbitstore.server.wsutil import close_code
from orbitstore.views.base import Lagged

if TYPE_CHECKING:
    from orbitstore.server.context import ApiContext

log = logging.getLogger("orbitstore.server.ywebsocket")

#: y-protocols message types pycrdt does not name.
MESSAGE_AUTH = 2
MESSAGE_QUERY_AWARENESS = 3
_PERMISSION_DENIED = 0
_EMPTY_UPDATE = b"\x00\x00"
# Other nodes' rooms ask for our clients' states when they open; a room answers at most
# one such query per this many seconds (the answer is gossiped to every node anyway).
QUERY_ANSWER_INTERVAL = 1.0
# What pycrdt's decoders raise on bytes that are not a y-protocols message (its
# read_message asserts that a message is there: an AssertionError on an empty one).
_DECODE_ERRORS = (ValueError, RuntimeError, IndexError, UnicodeDecodeError, AssertionError)


class _Client:
    def __init__(self, websocket: WebSocket, queue: int) -> None:
        self.websocket = websocket
        self.send, self.outbox = trio.open_memory_channel[bytes](queue)
        self.awareness_ids: set[int] = set()
        self.denied = False
        self.cancel = trio.CancelScope()
        self.overflowed = False

    def queue(self, message: bytes) -> bool:
        """Queue ``message``; False when it is dropped (the client is too slow: it is
        disconnected, or gone)."""
        try:
            self.send.send_nowait(message)
        except trio.WouldBlock:
            self.overflowed = True
            self.cancel.cancel()
            return False
        except trio.ClosedResourceError:
            return False
        return True


@dataclass(slots=True)
class AwarenessStatistics:
    """What the awareness relay of one ydoc database did on this node since it started
    (``GET /v1/sync`` shows it with the number of connected clients)."""

    relayed_in: int = 0
    """Awareness updates received from this node's y-websocket clients."""
    relayed_out: int = 0
    """Awareness messages queued to this node's clients (one per client reached)."""
    gossip_in: int = 0
    """Awareness messages from other nodes' rooms (updates and state queries)."""
    gossip_out: int = 0
    """Awareness messages handed to gossip (updates and state queries)."""
    dropped: int = 0
    """Not relayed: not gossiped (over the limits, the gossip queue full) or not queued
    to a client too slow to take it (that client is then disconnected)."""


class _Remote:
    """The origin of awareness states that came over gossip from node ``peer``."""

    __slots__ = ("peer",)

    def __init__(self, peer: PeerId) -> None:
        self.peer = peer


class Room:
    """The clients of one ydoc database on this node, and their awareness states (theirs
    and, through ``relay``, the other nodes' clients')."""

    def __init__(
        self,
        db: YDocument,
        relay: AwarenessRelay | None = None,
        statistics: AwarenessStatistics | None = None,
    ) -> None:
        self.db = db
        self.statistics = statistics if statistics is not None else AwarenessStatistics()
        self.clients: set[_Client] = set()
        self.awareness = pycrdt.Awareness(pycrdt.Doc())
        self.awareness.set_local_state(None)  # the server itself shows no presence
        self.awareness.observe(self._on_awareness)
        self.errors = 0
        self.relay = relay if relay is not None and relay.relays(db.cid) else None
        self.remote_ids: dict[PeerId, set[int]] = {}
        self._listening = contextlib.ExitStack()
        self._answered = -math.inf
        if self.relay is not None:
            self._listening.enter_context(self.relay.listen(db.cid, self))
            self._gossip(self.relay.query(db.cid))

    def close(self) -> None:
        self._listening.close()

    def _on_awareness(self, topic: str, event: tuple[dict[str, Any], Any]) -> None:
        changes, origin = event
        if topic != "update":
            return
        if isinstance(origin, _Client):
            ids = origin.awareness_ids
        elif isinstance(origin, _Remote):
            ids = self.remote_ids.setdefault(origin.peer, set())
        else:
            return
        ids.update(changes["added"], changes["updated"])
        ids.difference_update(changes["removed"])

    def broadcast(self, message: bytes) -> None:
        """Queue an awareness message to every client of the room."""
        for client in list(self.clients):
            self.send(client, message)

    def send(self, client: _Client, message: bytes) -> None:
        """Queue an awareness message to one client, counted."""
        if client.queue(message):
            self.statistics.relayed_out += 1
        else:
            self.statistics.dropped += 1

    def _gossip(self, published: bool) -> None:
        if published:
            self.statistics.gossip_out += 1
        else:
            self.statistics.dropped += 1

    def local_update(self, client: _Client, update: bytes) -> None:
        """An awareness update from one of this node's clients."""
        self.statistics.relayed_in += 1
        self.awareness.apply_awareness_update(update, client)
        self.broadcast(pycrdt.create_awareness_message(update))
        if self.relay is not None:
            self._gossip(self.relay.publish(self.db.cid, update))

    def awareness_message(self, ids: list[int]) -> bytes:
        return pycrdt.create_awareness_message(self.awareness.encode_awareness_update(ids))

    def states_message(self) -> bytes | None:
        ids = [i for i in self.awareness.states if i != self.awareness.client_id]
        return self.awareness_message(ids) if ids else None

    def leave(self, client: _Client) -> None:
        self.clients.discard(client)
        ids = sorted(i for i in client.awareness_ids if i in self.awareness.states)
        if ids:
            self.awareness.remove_awareness_states(ids, "disconnect")
            update = self.awareness.encode_awareness_update(ids)
            self.broadcast(pycrdt.create_awareness_message(update))
            if self.relay is not None:
                self._gossip(self.relay.publish(self.db.cid, update))

    # -- AwarenessListener: what the other nodes' rooms say --------------------------------

    def remote_update(self, peer: PeerId, update: bytes) -> None:
        self.statistics.gossip_in += 1
        self.awareness.apply_awareness_update(update, _Remote(peer))
        self.broadcast(pycrdt.create_awareness_message(update))

    def remote_query(self, peer: PeerId) -> None:
        self.statistics.gossip_in += 1
        now = trio.current_time()
        if now - self._answered < QUERY_ANSWER_INTERVAL:
            return  # answered one a moment ago: that answer reached every node
        self._answered = now
        ids = sorted(i for c in self.clients for i in c.awareness_ids if i in self.awareness.states)
        if ids and self.relay is not None:
            update = self.awareness.encode_awareness_update(ids)
            self._gossip(self.relay.publish(self.db.cid, update))

    def peer_gone(self, peer: PeerId) -> None:
        ids = sorted(i for i in self.remote_ids.pop(peer, ()) if i in self.awareness.states)
        if ids:
            self.awareness.remove_awareness_states(ids, "peer gone")
            self.broadcast(self.awareness_message(ids))


class Rooms:
    """The rooms with at least one client, by database."""

    def __init__(self, api: ApiContext) -> None:
        self._api = api
        self._rooms: dict[Cid, Room] = {}
        self._statistics: dict[Cid, AwarenessStatistics] = {}

    def room(self, db: YDocument) -> Room:
        room = self._rooms.get(db.cid)
        if room is None or room.db is not db:
            if room is not None:
                room.close()
            replication = self._api.node.replication
            relay = replication.awareness if replication is not None else None
            statistics = self._statistics.setdefault(db.cid, AwarenessStatistics())
            room = self._rooms[db.cid] = Room(db, relay, statistics)
        return room

    def discard_if_empty(self, room: Room) -> None:
        if not room.clients and self._rooms.get(room.db.cid) is room:
            del self._rooms[room.db.cid]
            room.close()

    def awareness(self, db: Cid) -> dict[str, int]:
        """The awareness relay's counters of database ``db`` since the node started, and
        its connected clients (all zero before the first client connected)."""
        room = self._rooms.get(db)
        counters = asdict(self._statistics.get(db, AwarenessStatistics()))
        return {"clients": len(room.clients) if room is not None else 0, **counters}

    def statistics(self) -> dict[str, int]:
        return {
            "rooms": len(self._rooms),
            "clients": sum(len(r.clients) for r in self._rooms.values()),
        }


async def ydoc_ws(websocket: WebSocket) -> None:
    from orbitstore.server.context import context

    api = context(websocket)
    await websocket.accept()
    try:
        db = await api.handles.typed(websocket.path_params["db"], YDocument)
    except OrbitstoreError as exc:
        await websocket.close(code=close_code(exc), reason=str(exc)[:120])
        return
    room = api.rooms.room(db)
    client = _Client(websocket, api.config.send_queue)
    writable = db.log.access.can_write(api.node.id)
    try:
        with client.cancel:
            await _serve(room, client, writable)
    except WebSocketDisconnect:
        pass
    except OrbitstoreError as exc:
        # Our own refusal (a bad message, an update over the entry size limit): this
        # client's connection ends, the node and the other clients carry on.
        room.errors += 1
        log.info("y-websocket client of %s closed: %s", db.name, exc)
        await _close(websocket, close_code(exc), exc.code)
    finally:
        room.leave(client)
        api.rooms.discard_if_empty(room)
    if client.overflowed:
        await _close(websocket, 1013, "too slow: reconnect to re-sync")


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # closed by the client
        await websocket.close(code=code, reason=reason)


async def _serve(room: Room, client: _Client, writable: bool) -> None:
    db = room.db
    error: OrbitstoreError | None = None
    async with db.subscribe() as changes, trio.open_nursery() as nursery:
        room.clients.add(client)
        client.queue(pycrdt.create_sync_message(db.doc))
        states = room.states_message()
        if states is not None:
            room.send(client, states)
        nursery.start_soon(_send_loop, client)
        nursery.start_soon(_push_changes, room, client, changes)
        try:
            await _receive_loop(room, client, writable)
        except OrbitstoreError as exc:
            error = exc
        except WebSocketDisconnect:
            pass
        nursery.cancel_scope.cancel()
    if error is not None:
        raise error


async def _receive_loop(room: Room, client: _Client, writable: bool) -> None:
    while True:
        message = await client.websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        if data is None:
            raise ProtocolError("y-websocket messages are binary frames")
        await _handle(room, client, data, writable)


async def _send_loop(client: _Client) -> None:
    try:
        async with client.outbox:
            async for message in client.outbox:
                await client.websocket.send_bytes(message)
    except WebSocketDisconnect:  # the client went away while we sent
        client.cancel.cancel()


async def _push_changes(room: Room, client: _Client, changes: Any) -> None:
    async for change in changes:
        if isinstance(change, Lagged):
            client.queue(pycrdt.create_update_message(room.db.snapshot()))
        elif change.kind == "update" and isinstance(change.value, bytes):
            client.queue(pycrdt.create_update_message(change.value))


async def _handle(room: Room, client: _Client, data: bytes, writable: bool) -> None:
    if not data:
        raise ProtocolError("an empty y-websocket message")
    kind = data[0]
    try:
        if kind == YMessageType.SYNC:
            await _handle_sync(room, client, data[1:], writable)
        elif kind == YMessageType.AWARENESS:
            room.local_update(client, pycrdt.read_message(data[1:]))
        elif kind == MESSAGE_QUERY_AWARENESS:
            states = room.states_message()
            if states is not None:
                room.send(client, states)
        elif kind != MESSAGE_AUTH:
            raise ProtocolError(f"unknown y-websocket message type {kind}")
    except _DECODE_ERRORS as exc:
        raise ProtocolError(f"a y-websocket message that does not decode: {exc}") from exc


async def _handle_sync(room: Room, client: _Client, data: bytes, writable: bool) -> None:
    if not data:
        raise ProtocolError("a sync message without its type")
    step = data[0]
    if step == YSyncMessageType.SYNC_STEP1:
        reply = pycrdt.handle_sync_message(data, room.db.doc)  # only reads the document
        if reply is not None:
            client.queue(reply)
        return
    if step not in (YSyncMessageType.SYNC_STEP2, YSyncMessageType.SYNC_UPDATE):
        raise ProtocolError(f"unknown sync message type {step}")
    update = pycrdt.read_message(data[1:])
    if update == _EMPTY_UPDATE:
        return
    if not writable:
        if not client.denied:
            client.denied = True
            client.queue(_permission_denied(room.db))
        return
    try:
        await room.db.append_update(update)
    except InvalidValueError as exc:  # not a Yjs update
        raise ProtocolError(f"a sync update that is not a Yjs v1 update: {exc}") from exc


def _permission_denied(db: YDocument) -> bytes:
    encoder = pycrdt.Encoder()
    encoder.write_var_uint(MESSAGE_AUTH)
    encoder.write_var_uint(_PERMISSION_DENIED)
    encoder.write_var_string(f"this node may not write to {db.name!r}: updates are dropped")
    return encoder.to_bytes()
