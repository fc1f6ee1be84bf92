"""Announcements: what a node gossips on a database's topic, as a frozen value.

How it works
============

A node that has new heads for a database publishes one message on the database's
gossip topic (``/orbitstore/db/<manifest cid>``)::

    {"db": <link>, "heads": [<link>...], "entries": [[<link>, <bytes>], ...]}

``heads`` are the sender's heads; ``entries`` are its newest small entries, oldest first,
so a receiver that was nearly up to date needs no stream at all. Receivers apply the
entries and sync with the sender for any head still unknown: gossip is a hint, never the
only path.

Rule 1 — decode everything before anyone acts on it. Gossip is forwarded hop by hop, and
a hop that forwards a message before decoding it spreads whatever breaks its decoder.
:func:`decode_announcement` is therefore run by the transport's topic *validator*, before
the message is delivered or forwarded, and it checks everything: the message's shape and
limits, that it names the topic's database, and every inline entry — its bytes hash to
its CID, it decodes as an entry of this database, and its signature verifies. A message
that fails any check is a :class:`~orbitstore.errors.ProtocolError` and is neither
delivered nor forwarded.

Rule 2 — verify once. The entries come out as verified :class:`Entry` objects, which the
node applies without verifying them again. Entries the receiver already holds (``held``)
are only hash-checked — bytes that hash to a CID we verified are the bytes we verified —
and left out of the result.

Whether the writer may write is not decided here: that depends on the access state in
the entry's causal past, which the log checks when it applies the entries.

Everything that affects what an announcement may contain lives in this file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orbitstore.core import codec
from orbitstore.core.cid import DAG_CBOR, Cid
from orbitstore.core.entry import Entry
from orbitstore.core.limits import DEFAULT_LIMITS, EntryLimits
from orbitstore.errors import InvalidDataError, InvalidValueError, ProtocolError
from orbitstore.sync.frames import DEFAULT_FRAME_LIMITS, FrameLimits


@dataclass(frozen=True, slots=True, kw_only=True)
class Announcement:
    """A database's heads and its newest small entries (verified), as gossiped."""

    db: Cid
    heads: tuple[Cid, ...]
    entries: tuple[Entry, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.db, Cid) or self.db.codec != DAG_CBOR:
            raise InvalidValueError("announcement.db must be a dag-cbor CID")
        heads = tuple(self.heads) if isinstance(self.heads, (list, tuple)) else None
        if heads is None or not all(isinstance(h, Cid) and h.codec == DAG_CBOR for h in heads):
            raise InvalidValueError("announcement.heads must be a sequence of dag-cbor CIDs")
        entries = tuple(self.entries) if isinstance(self.entries, (list, tuple)) else None
        if entries is None or not all(isinstance(e, Entry) for e in entries):
            raise InvalidValueError("announcement.entries must be a sequence of entries")
        for entry in entries:
            if entry.db != self.db:
                raise InvalidValueError(f"entry {entry.cid} belongs to database {entry.db}")
        object.__setattr__(self, "heads", heads)
        object.__setattr__(self, "entries", entries)


def encode_announcement(announcement: Announcement) -> bytes:
    """The gossip message: canonical DAG-CBOR."""
    return codec.encode(
        {
            "db": announcement.db,
            "heads": list(announcement.heads),
            "entries": [[e.cid, e.block] for e in announcement.entries],
        }
    )


def decode_announcement(
    data: bytes,
    *,
    db: Cid,
    frame_limits: FrameLimits = DEFAULT_FRAME_LIMITS,
    entry_limits: EntryLimits = DEFAULT_LIMITS,
    held: Callable[[Cid], bool] | None = None,
) -> Announcement:
    """Decode and fully check an announcement received on the topic of ``db`` (Rule 1);
    entries ``held`` says we hold are hash-checked and left out (Rule 2). Raises
    ProtocolError for anything else."""
    if len(data) > frame_limits.max_frame_bytes:
        raise ProtocolError(f"announcement of {len(data)} bytes is over the frame limit")
    try:
        msg = codec.decode(data)
    except InvalidDataError as exc:
        raise ProtocolError(f"announcement is not canonical DAG-CBOR: {exc.message}") from exc
    if not isinstance(msg, dict) or set(msg) != {"db", "heads", "entries"}:
        raise ProtocolError("an announcement is a map of exactly db, heads and entries")
    if msg["db"] != db:
        raise ProtocolError(f"announcement on the topic of {db} names another database")
    heads, items = msg["heads"], msg["entries"]
    if not isinstance(heads, list) or len(heads) > frame_limits.max_cids_per_message:
        raise ProtocolError(
            f"announcement heads must be a list of at most {frame_limits.max_cids_per_message}"
        )
    if not isinstance(items, list) or len(items) > frame_limits.max_blocks_per_frame:
        raise ProtocolError(
            f"announcement entries must be a list of at most {frame_limits.max_blocks_per_frame}"
        )
    entries = [_entry(item, db, entry_limits, held) for item in items]
    try:
        return Announcement(db=db, heads=tuple(heads), entries=tuple(e for e in entries if e))
    except InvalidValueError as exc:
        raise ProtocolError(f"invalid announcement: {exc.message}") from exc


def _entry(
    item: object, db: Cid, limits: EntryLimits, held: Callable[[Cid], bool] | None
) -> Entry | None:
    if (
        not isinstance(item, list)
        or len(item) != 2
        or not isinstance(item[0], Cid)
        or not isinstance(item[1], bytes)
    ):
        raise ProtocolError("announcement entries are [cid, bytes] pairs")
    cid, block = item
    if held is not None and held(cid):
        if Cid.for_block(block) != cid:
            raise ProtocolError(f"announced block does not hash to {cid}")
        return None
    try:
        entry = Entry.from_block(cid, block, limits=limits)
    except InvalidDataError as exc:
        raise ProtocolError(f"announcement carries an invalid entry {cid}: {exc.message}") from exc
    if entry.db != db:
        raise ProtocolError(f"announced entry {cid} belongs to database {entry.db}")
    return entry


__all__ = ["Announcement", "decode_announcement", "encode_announcement"]
