"""Asking peers for blocks over Bitswap: want-lists out, verified blocks in.

How it works
------------

:meth:`BitswapClient.fetch` sends a want-list (WANT_BLOCK, and ``sendDontHave`` on
1.2.0) to every peer it is given, on one long-lived stream per peer that we open, and
waits for the blocks. Peers answer on a stream *they* open to us (go-bitswap, Helia and
our own server do that) or on ours (py-libp2p); both arrive at
:meth:`BitswapClient.on_message`. A block is accepted only if its sha2-256 digest is
the digest of a CID we are waiting for: the hash is computed here from the bytes
received, so a block that does not match is simply not one we asked for (counted in
``unsolicited_blocks_dropped``), whatever CID its prefix claims. A block over
``max_block_size`` is dropped before it is hashed.

Per-peer rules: a peer that says DONT_HAVE for every block still missing is done; a peer
that says nothing for ``resend_interval`` is asked again for what is still missing (our
own server, like kubo's, skips wants over its budget or rate instead of queueing them);
a peer silent for ``peer_timeout`` is given up (``fetch_peer_timeouts``). ``fetch``
returns once every block arrived or every peer is done, with the blocks it got; the
caller decides what a missing block means. Wants still open at the end are cancelled.

While a fetch waits on a peer, messages from that peer may be up to
:data:`MAX_BLOCK_MESSAGE` bytes (Bitswap's 4 MiB limit); from other peers the server's
``max_message_size`` still applies.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Final

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from orbitstore.core.cid import Cid
from orbitstore.errors import InvalidDataError, NetworkError
from orbitstore.net._bitswap_wire import (
    BitswapRequest,
    FrameReader,
    decode_request,
    want_message,
)
from orbitstore.net._bitswap_wire import frame as encode_frame
from orbitstore.net._libp2p_stream import Libp2pStream
from orbitstore.net.transport import FetchOptions

logger = logging.getLogger("orbitstore.net.bitswap")

MAX_BLOCK_MESSAGE: Final = 4 * 1024 * 1024 + 64 * 1024
"""The largest message taken from a peer we are waiting for blocks from."""
_WRITE_CHUNK: Final = 64 * 1024
_OPEN_TIMEOUT: Final = 10.0
_SEND_TIMEOUT: Final = 10.0
_CANCEL_TIMEOUT: Final = 1.0


@dataclass(eq=False)
class _Request:
    missing: dict[bytes, Cid]  # digest -> CID still wanted
    got: dict[Cid, bytes] = field(default_factory=dict)
    dont_have: dict[ID | None, set[bytes]] = field(default_factory=dict)
    heard: dict[ID, trio.Event] = field(default_factory=dict)
    active: set[ID] = field(default_factory=set)
    finished: trio.Event = field(default_factory=trio.Event)

    def remaining_for(self, peer: ID) -> list[Cid]:
        refused = self.dont_have.get(peer, set())
        return [cid for digest, cid in self.missing.items() if digest not in refused]

    def wake(self, peer: ID | None) -> None:
        event = None if peer is None else self.heard.get(peer)
        if event is not None:
            event.set()

    def peer_done(self, peer: ID) -> None:
        self.active.discard(peer)
        if not self.active or not self.missing:
            self.finished.set()


class _Link:
    """Our stream to one peer, for want-lists (and replies, if the peer answers on it)."""

    def __init__(self, stream: Libp2pStream, protocol: str) -> None:
        self.stream = stream
        self.v120 = protocol.endswith("/1.2.0")
        self.lock = trio.Lock()


class BitswapClient:
    """Fetches blocks from peers; owned by the transport, its tasks in its nursery."""

    def __init__(
        self,
        host: IHost,
        nursery: trio.Nursery,
        protocols: Sequence[str],
        count: Callable[[str, int], None],
    ) -> None:
        self._host = host
        self._nursery = nursery
        self._protocols = [TProtocol(p) for p in protocols]
        self._count = count
        self._links: dict[ID, _Link] = {}
        self._requests: set[_Request] = set()
        self._max_block = FetchOptions().max_block_size

    def waiting_on(self, peer: ID) -> bool:
        """Whether a fetch waits for blocks from ``peer`` (its messages may be large)."""
        return any(peer in r.active for r in self._requests)

    async def fetch(
        self, cids: Sequence[Cid], peers: Sequence[ID], options: FetchOptions
    ) -> dict[Cid, bytes]:
        """The blocks of ``cids`` that ``peers`` gave, each verified against its CID."""
        request = _Request(missing={cid.digest: cid for cid in cids})
        if not request.missing or not peers:
            return {}
        request.active = set(peers)
        self._max_block = options.max_block_size
        self._requests.add(request)
        try:
            async with trio.open_nursery() as nursery:
                for peer in peers:
                    nursery.start_soon(self._ask, peer, request, options)
                await request.finished.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._requests.discard(request)
        if request.missing:
            self._nursery.start_soon(self._cancel, list(peers), list(request.missing.values()))
        return request.got

    async def _ask(self, peer: ID, request: _Request, options: FetchOptions) -> None:
        silent = 0.0
        try:
            wanted = request.remaining_for(peer)
            if wanted:
                await self._send(peer, wanted)
            while wanted := request.remaining_for(peer):
                event = request.heard[peer] = trio.Event()
                with trio.move_on_after(options.resend_interval) as quiet:
                    await event.wait()
                if not quiet.cancelled_caught:
                    silent = 0.0
                    continue
                silent += options.resend_interval
                if silent >= options.peer_timeout:
                    self._count("fetch_peer_timeouts", 1)
                    logger.debug("bitswap peer %s sent nothing for %.1f s", peer, silent)
                    break
                await self._send(peer, wanted)  # skipped (rate, budget) or lost: ask again
        except NetworkError as exc:
            logger.debug("bitswap fetch from %s failed: %s", peer, exc)
        finally:
            request.peer_done(peer)

    async def _send(self, peer: ID, cids: list[Cid], *, cancel: bool = False) -> None:
        for attempt in (1, 2):  # a stream the peer reset (idle) is opened again once
            link = self._links.get(peer) or await self._open(peer)
            data = encode_frame(
                want_message(cids, cancel=cancel, v120=link.v120).SerializeToString()
            )
            try:
                async with link.lock:
                    with trio.fail_after(_SEND_TIMEOUT):
                        await link.stream.send_all(data)
                if not cancel:
                    self._count("wants_sent", len(cids))
                return
            except (NetworkError, trio.TooSlowError) as exc:
                if self._links.get(peer) is link:
                    del self._links[peer]
                await link.stream.reset()
                if attempt == 2:
                    raise NetworkError(f"cannot send a want-list to {peer}: {exc}") from exc

    async def _open(self, peer: ID) -> _Link:
        try:
            with trio.fail_after(_OPEN_TIMEOUT):
                raw = await self._host.new_stream(peer, self._protocols)
        except trio.TooSlowError as exc:
            raise NetworkError(f"opening a Bitswap stream to {peer} timed out") from exc
        except Exception as exc:  # libp2p's many failure types: the peer is unusable
            raise NetworkError(f"cannot open a Bitswap stream to {peer}: {exc}") from exc
        stream = Libp2pStream(raw, write_chunk_size=_WRITE_CHUNK)
        link = _Link(stream, str(raw.get_protocol() or ""))
        existing = self._links.get(peer)
        if existing is not None:  # opened concurrently: keep one
            await stream.reset()
            return existing
        self._links[peer] = link
        self._nursery.start_soon(self._read_replies, peer, link)
        return link

    async def _read_replies(self, peer: ID, link: _Link) -> None:
        reader = FrameReader(link.stream, MAX_BLOCK_MESSAGE)
        try:
            while (message := await reader.next()) is not None:
                self.on_message(peer, decode_request(message))
        except (NetworkError, InvalidDataError) as exc:
            logger.debug("bitswap stream to %s ends: %s", peer, exc)
        finally:
            if self._links.get(peer) is link:
                del self._links[peer]
            await link.stream.reset()

    async def _cancel(self, peers: list[ID], cids: list[Cid]) -> None:
        with trio.move_on_after(_CANCEL_TIMEOUT):
            for peer in peers:
                if peer in self._links:  # best effort: a peer forgets a closed stream's wants
                    with suppress(NetworkError):
                        await self._send(peer, cids, cancel=True)

    async def aclose(self) -> None:
        for link in list(self._links.values()):
            await link.stream.reset()
        self._links.clear()

    # --- incoming ---------------------------------------------------------------------------

    def on_message(self, peer: ID | None, message: BitswapRequest) -> int:
        """Take the blocks and DONT_HAVEs of a message from ``peer``; returns how many
        of its blocks were ones a fetch waits for (the rest are unsolicited)."""
        accepted = 0
        for _prefix, data in message.blocks:
            if len(data) > self._max_block:
                self._count("oversized_blocks_dropped", 1)
                continue
            digest = hashlib.sha256(data).digest()  # the prefix is not trusted: the hash is
            taken = False
            for request in self._requests:
                cid = request.missing.pop(digest, None)
                if cid is not None:
                    request.got[cid] = data
                    taken = True
                    request.wake(peer)
                    if not request.missing:
                        request.finished.set()
            if taken:
                accepted += 1
                self._count("blocks_received", 1)
                self._count("bytes_received", len(data))
            else:
                self._count("unsolicited_blocks_dropped", 1)
        for raw in message.dont_haves:
            try:
                digest = Cid(raw).digest
            except InvalidDataError:
                continue
            self._count("dont_haves_received", 1)
            for request in self._requests:
                if digest in request.missing:
                    request.dont_have.setdefault(peer, set()).add(digest)
                    request.wake(peer)
        return accepted
