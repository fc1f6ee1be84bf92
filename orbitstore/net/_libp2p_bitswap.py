"""Serving our blocks to IPFS peers over Bitswap: read-only, stateless, bounded.

How it works
------------

Entries and manifests are DAG-CBOR blocks addressed by CIDv1 (sha2-256), exactly the
blocks IPFS moves around, so any IPFS peer (kubo, Helia, py-libp2p) can fetch one by CID
if we speak Bitswap. We do not run py-libp2p's ``BitswapClient`` for this: it writes
every block a peer pushes into its block store (asked for or not), keeps every peer's
want-list without a bound, and looks up every want of a 4 MiB message. This server is a
few small rules instead:

* **Read-only.** It answers want-lists and nothing else. Blocks in an incoming message
  (``blocks``/``payload``) go to the :class:`~orbitstore.net._bitswap_client.BitswapClient`,
  which keeps only the ones a fetch of ours waits for (by hash) and counts the rest as
  dropped: there is no block store behind this server to write to, no cache, nothing.
  The only thing it holds is a :class:`~orbitstore.net.transport.BlockSource`
  (``get(cid) -> bytes | None``), or none on a node that fetches but does not serve.
* **Stateless.** A want is answered when it arrives, from what we hold then: the block
  (WANT_BLOCK), HAVE (WANT_HAVE, Bitswap 1.2), or DONT_HAVE when the peer asked for one.
  No want-list is remembered, so a block written later is served when the peer asks again
  (py-libp2p re-asks every ~1 s, kubo rebroadcasts). Cancels need no work.
* **Replies go on a stream we open** to the peer, with the protocol version it used, the
  way go-bitswap (kubo) does: kubo never reads the streams it opens. py-libp2p reads both.
* **Only what verifies.** A want for a CID our :class:`~orbitstore.core.cid.Cid` cannot be
  (CIDv0, other codecs or hashes) is a block we do not have. A block is re-hashed before
  it is sent; one that no longer matches its CID is counted and not sent.
* **Bounded** (:class:`~orbitstore.net.libp2p_config.BitswapConfig`): incoming messages up
  to ``max_message_size`` (else the stream is reset); at most ``max_wants_per_message``
  wants per message (the rest ignored); a token bucket of ``max_wants_per_second`` per
  peer (wants over it ignored; the peer re-asks); at most
  ``max_bytes_in_flight_per_peer`` block bytes queued per peer (a want over it is
  skipped); ``max_streams`` inbound streams in all and ``max_streams_per_peer`` per peer
  (more are reset at once); an idle stream is reset after ``stream_idle_timeout``; a reply
  that cannot be written in ``send_timeout`` ends the stream. Per-peer state lives while
  the peer has a stream open, plus a small LRU of rate buckets so reconnecting does not
  refill one.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

import trio
from libp2p.abc import IHost, INetStream
from libp2p.bitswap.cid import CIDObject, parse_cid
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.network.stream.exceptions import StreamError
from libp2p.peer.id import ID
from libp2p.stream_muxer.exceptions import MuxedConnError

from orbitstore.core.cid import Cid
from orbitstore.core.codec import describe
from orbitstore.errors import (
    InvalidCidError,
    InvalidDataError,
    NetworkError,
    ProtocolError,
    StorageError,
)
from orbitstore.net._bitswap_client import MAX_BLOCK_MESSAGE, BitswapClient
from orbitstore.net._bitswap_wire import FrameReader, decode_request, reply_messages
from orbitstore.net._bitswap_wire import frame as encode_frame
from orbitstore.net._libp2p_stream import Libp2pStream
from orbitstore.net.libp2p_config import BitswapConfig
from orbitstore.net.transport import BlockSource

logger = logging.getLogger("orbitstore.net.bitswap")

BITSWAP_V100: Final = "/ipfs/bitswap/1.0.0"
BITSWAP_V110: Final = "/ipfs/bitswap/1.1.0"
BITSWAP_V120: Final = "/ipfs/bitswap/1.2.0"
BITSWAP_PROTOCOLS: Final = (BITSWAP_V120, BITSWAP_V110, BITSWAP_V100)
"""The versions we serve, newest first. 1.3.0 (payments) is not offered."""

# Block bytes per reply message: well under the 4 MiB Bitswap message limit, and small
# enough that a reply to a slow peer does not sit in memory for long.
_REPLY_BATCH_BYTES: Final = 256 * 1024
# Rate buckets remembered for peers with no open stream.
_BUCKETS_KEPT: Final = 1024
# Writes are split into chunks this big (a Yamux frame and a Noise message each).
_WRITE_CHUNK: Final = 64 * 1024
_STREAM_OPEN_TIMEOUT: Final = 10.0
_CLOSE_TIMEOUT: Final = 1.0
# Failures opening a reply stream can end in, besides our own timeout.
_OPEN_ERRORS: Final = (
    BaseLibp2pError,
    OSError,
    MuxedConnError,
    StreamError,
    trio.BrokenResourceError,
)


def to_libp2p_cid(cid: Cid) -> CIDObject:
    """py-libp2p's CID object for ours (the binary form is the same CIDv1)."""
    return parse_cid(bytes(cid))


def from_libp2p_cid(cid: CIDObject | bytes) -> Cid:
    """Our :class:`Cid` for a py-libp2p CID (or its bytes); InvalidCidError if it is not
    a CIDv1 dag-cbor/raw sha2-256 CID."""
    raw = cid if isinstance(cid, bytes) else getattr(cid, "buffer", None)
    if not isinstance(raw, bytes):
        raise InvalidCidError(f"not a CID: {describe(cid)}")
    ours = Cid(raw)
    if not ours.is_block_cid:
        raise InvalidCidError(f"unsupported CID for a block we hold ({ours.kind})")
    return ours


@dataclass(frozen=True, kw_only=True)
class BitswapStatistics:
    """Counters since the transport started (see the module docstring for the rules)."""

    streams_served: int = 0
    streams_refused: int = 0
    streams_reset: int = 0
    wants_received: int = 0
    wants_truncated: int = 0
    wants_rate_limited: int = 0
    blocks_sent: int = 0
    bytes_sent: int = 0
    haves_sent: int = 0
    dont_haves_sent: int = 0
    wants_over_budget: int = 0
    corrupt_blocks: int = 0
    unsolicited_blocks_dropped: int = 0
    # Fetching (orbitstore.net._bitswap_client): wants we sent, blocks that verified
    # against a CID we were waiting for, DONT_HAVEs, peers given up for silence, and
    # blocks over the size limit dropped unhashed.
    wants_sent: int = 0
    blocks_received: int = 0
    bytes_received: int = 0
    dont_haves_received: int = 0
    fetch_peer_timeouts: int = 0
    oversized_blocks_dropped: int = 0
    # Streams ended by an unexpected exception (a bug, ours or the library's): logged
    # with the peer, the stream is reset, the server keeps serving everyone else.
    internal_errors: int = 0


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up. Times are passed in."""

    def __init__(self, *, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at = now

    def take(self, wanted: int, now: float) -> int:
        """Take up to ``wanted`` whole tokens; returns how many were granted."""
        if now > self._at:
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
            self._at = now
        granted = max(0, min(wanted, int(self._tokens)))
        self._tokens -= granted
        return granted


@dataclass
class _Peer:
    bucket: TokenBucket
    peer_id: ID | None = None  # None only in tests that drive _answer directly
    streams: int = 0
    in_flight: int = 0


@dataclass
class _Reply:
    blocks: list[tuple[Cid, bytes]]
    presences: list[tuple[bytes, bool]]
    reserved: int = 0  # bytes counted in the peer's in_flight until the reply is written


class BitswapServer:
    """Answers Bitswap want-lists from a :class:`BlockSource`. Owned by the transport:
    its tasks run in the transport's nursery."""

    def __init__(
        self,
        host: IHost,
        config: BitswapConfig,
        nursery: trio.Nursery,
        source: BlockSource | None,
    ) -> None:
        self._host = host
        self._config = config
        self._nursery = nursery
        self._source = source  # None: we fetch but serve nothing (BitswapConfig.enabled off)
        self._peers: dict[ID, _Peer] = {}
        self._idle_buckets: OrderedDict[ID, TokenBucket] = OrderedDict()
        self._streams = 0
        self._stats: dict[str, int] = dict.fromkeys(BitswapStatistics.__dataclass_fields__, 0)
        self._started = False
        #: Asks peers for blocks; their answers arrive on the streams this server reads.
        self.client = BitswapClient(host, nursery, BITSWAP_PROTOCOLS, self._count)

    @property
    def source(self) -> BlockSource | None:
        return self._source

    @source.setter
    def source(self, source: BlockSource | None) -> None:
        self._source = source

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for protocol in BITSWAP_PROTOCOLS:
            self._host.set_stream_handler(TProtocol(protocol), self._on_stream)

    def statistics(self) -> BitswapStatistics:
        return BitswapStatistics(**self._stats)

    def _count(self, name: str, n: int = 1) -> None:
        self._stats[name] += n

    # --- streams ------------------------------------------------------------------------

    async def _on_stream(self, raw: INetStream) -> None:
        peer_id = raw.muxed_conn.peer_id
        peer = self._peers.get(peer_id)
        busy = peer is not None and peer.streams >= self._config.max_streams_per_peer
        if busy or self._streams >= self._config.max_streams:
            self._count("streams_refused")
            await Libp2pStream(raw, write_chunk_size=_WRITE_CHUNK).reset()
            return
        if peer is None:
            bucket = self._idle_buckets.pop(peer_id, None) or TokenBucket(
                rate=self._config.max_wants_per_second,
                burst=self._config.max_wants_per_message,
                now=trio.current_time(),
            )
            peer = self._peers[peer_id] = _Peer(bucket=bucket, peer_id=peer_id)
        peer.streams += 1
        self._streams += 1
        try:
            # Run in our nursery, not the library's: the stream's lifetime is the transport's.
            self._nursery.start_soon(self._serve, raw, peer_id, peer)
        except RuntimeError:  # the transport is closing: its nursery takes no new tasks
            self._release(peer_id, peer)
            await Libp2pStream(raw, write_chunk_size=_WRITE_CHUNK).reset()
            return
        self._count("streams_served")

    async def _serve(self, raw: INetStream, peer_id: ID, peer: _Peer) -> None:
        protocol = str(raw.get_protocol() or BITSWAP_V100)
        inbound = Libp2pStream(raw, write_chunk_size=_WRITE_CHUNK)
        reader = FrameReader(inbound, lambda: self._message_limit(peer_id))
        outbound: Libp2pStream | None = None
        try:
            while True:
                with trio.move_on_after(self._config.stream_idle_timeout) as idle:
                    frame = await reader.next()
                if idle.cancelled_caught:
                    raise ProtocolError("idle Bitswap stream")
                if frame is None:
                    break
                reply = self._answer(frame, peer, protocol)
                if not reply.blocks and not reply.presences:
                    continue
                try:
                    if outbound is None:
                        outbound = await self._open_reply_stream(peer_id, protocol)
                    await self._send(outbound, reply, protocol)
                finally:
                    peer.in_flight -= reply.reserved
        except (NetworkError, InvalidDataError, StorageError) as exc:
            # The peer's or the network's fault; or our block store failed, which the
            # node sees on its own paths too: this stream ends, the transport carries on.
            level = logging.WARNING if isinstance(exc, StorageError) else logging.DEBUG
            logger.log(level, "bitswap stream from %s ends: %s", peer_id, exc)
            self._count("streams_reset")
            await inbound.reset()
            if outbound is not None:
                await outbound.reset()
        except Exception:  # remote boundary: nothing a peer sends may stop the server
            logger.exception("bitswap stream from %s failed unexpectedly; reset", peer_id)
            self._count("internal_errors")
            self._count("streams_reset")
            await inbound.reset()
            if outbound is not None:
                await outbound.reset()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT):
                await inbound.close()
                if outbound is not None:
                    await outbound.close()
            self._release(peer_id, peer)

    def _message_limit(self, peer_id: ID) -> int:
        if self.client.waiting_on(peer_id):  # its answers carry blocks
            return max(MAX_BLOCK_MESSAGE, self._config.max_message_size)
        return self._config.max_message_size

    def _release(self, peer_id: ID, peer: _Peer) -> None:
        self._streams -= 1
        peer.streams -= 1
        if peer.streams == 0:
            del self._peers[peer_id]
            self._idle_buckets[peer_id] = peer.bucket
            while len(self._idle_buckets) > _BUCKETS_KEPT:
                self._idle_buckets.popitem(last=False)

    async def _open_reply_stream(self, peer_id: ID, protocol: str) -> Libp2pStream:
        try:
            with trio.fail_after(_STREAM_OPEN_TIMEOUT):
                raw = await self._host.new_stream(peer_id, [TProtocol(protocol)])
        except trio.TooSlowError as exc:
            raise NetworkError(f"opening a Bitswap reply stream to {peer_id} timed out") from exc
        except _OPEN_ERRORS as exc:
            raise NetworkError(f"cannot open a Bitswap reply stream to {peer_id}: {exc}") from exc
        return Libp2pStream(raw, write_chunk_size=_WRITE_CHUNK)

    # --- answering ------------------------------------------------------------------------

    def _answer(self, frame: bytes, peer: _Peer, protocol: str) -> _Reply:
        request = decode_request(frame)
        if request.blocks or request.dont_haves:  # answers to our wants, or pushed
            self.client.on_message(peer.peer_id, request)
        reply = _Reply(blocks=[], presences=[])
        wants = list(request.wants)
        if not wants:
            return reply
        self._count("wants_received", len(wants))
        limit = self._config.max_wants_per_message
        if len(wants) > limit:
            self._count("wants_truncated", len(wants) - limit)
            wants = wants[:limit]
        granted = peer.bucket.take(len(wants), trio.current_time())
        if granted < len(wants):
            self._count("wants_rate_limited", len(wants) - granted)
            wants = wants[:granted]
        presence = protocol == BITSWAP_V120  # HAVE/DONT_HAVE exist since 1.2.0
        budget = self._config.max_bytes_in_flight_per_peer
        for want in wants:
            data = self._lookup(want.cid)
            if data is None:
                if presence and want.send_dont_have:
                    reply.presences.append((want.cid, False))
                continue
            cid, block = data
            if presence and want.want_have:
                reply.presences.append((want.cid, True))
            elif peer.in_flight + len(block) > budget:
                self._count("wants_over_budget")
            else:
                peer.in_flight += len(block)
                reply.reserved += len(block)
                reply.blocks.append((cid, block))
        return reply

    def _lookup(self, raw_cid: bytes) -> tuple[Cid, bytes] | None:
        try:
            cid = Cid(raw_cid)
        except InvalidCidError:
            return None  # not a CID we could hold
        block = None if self._source is None else self._source.get(cid)
        if block is None:
            return None
        if hashlib.sha256(block).digest() != cid.digest:
            self._count("corrupt_blocks")
            logger.warning("block %s no longer matches its CID; not served", cid)
            return None
        return cid, block

    async def _send(self, stream: Libp2pStream, reply: _Reply, protocol: str) -> None:
        with trio.move_on_after(self._config.send_timeout) as timeout:
            messages = reply_messages(
                reply.blocks,
                reply.presences,
                v100=protocol == BITSWAP_V100,
                batch_bytes=_REPLY_BATCH_BYTES,
            )
            for message in messages:
                await stream.send_all(encode_frame(message.SerializeToString()))
        if timeout.cancelled_caught:
            raise NetworkError(f"peer {stream.remote_peer} did not read a Bitswap reply")
        self._count("blocks_sent", len(reply.blocks))
        self._count("bytes_sent", sum(len(block) for _cid, block in reply.blocks))
        haves = sum(1 for _cid, have in reply.presences if have)
        self._count("haves_sent", haves)
        self._count("dont_haves_sent", len(reply.presences) - haves)
