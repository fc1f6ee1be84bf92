"""Pages of a log in total order, with a cursor: ``GET .../entries?after=<cid>``.

A listing of any size comes through in pages of at most ``limit`` entries; each page
names its last entry, and the next page starts right after it in total order
``(clock, writer, cid)`` (or right before it, newest first). Entries committed between
two pages are seen if they sort after the cursor, never twice.

The store reads entries in total order from the top of a clock range down
(``iter_entries(reverse=True, max_clock=...)``, an index range). A page going forward
reads windows of clocks ``[lo, hi]`` from ``hi`` down to ``lo``, each a bounded
index read, and widens the window while it finds nothing (clocks may jump) and narrows
it when one holds far more than a page: the whole listing costs one pass over the log,
not one pass per page.
"""

from __future__ import annotations

from collections.abc import Iterator

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.errors import InvalidCidError, InvalidValueError, NotFoundError, OrbitstoreError
from orbitstore.node.database import Database
from orbitstore.storage.base import NodeStore

OrderKey = tuple[int, str, bytes]


def _key(entry: Entry) -> OrderKey:
    return (entry.clock, entry.writer, bytes(entry.cid))


def cursor_entry(db: Database, after: str) -> Entry:
    """The entry a cursor names (400 if it is not a CID, 404 if the log lacks it)."""
    try:
        cid = Cid.parse(after)
    except InvalidCidError as exc:
        raise InvalidValueError(f"'after' is not a CID: {after!r:.80}") from exc
    entry = db.get_entry(cid)
    if entry is None:
        raise NotFoundError(f"{db.name!r} holds no entry {after:.80} (the cursor)")
    return entry


def entries_page(
    db: Database, store: NodeStore, *, after: Entry | None, reverse: bool, limit: int
) -> list[Entry]:
    """At most ``limit`` entries after ``after`` in total order (before it, newest
    first, with ``reverse``); from the start (or the end) without a cursor."""
    if limit <= 0:
        return []
    if after is None:
        return list(db.entries(reverse=reverse, limit=limit))
    log = store.log_store(db.cid)
    if reverse:
        mark = _key(after)
        out: list[Entry] = []
        for cid, block in log.iter_entries(reverse=True, max_clock=after.clock):
            entry = Entry.from_trusted_block(cid, block)
            if _key(entry) >= mark:
                continue
            out.append(entry)
            if len(out) >= limit:
                break
        return _opened(db, out)
    return _opened(db, list(_forward(db, store, after, limit)))


def _forward(db: Database, store: NodeStore, after: Entry, limit: int) -> Iterator[Entry]:
    log = store.log_store(db.cid)
    top = max(db.log.head_clocks.values(), default=0)
    mark: OrderKey | None = _key(after)
    lo, step, found = after.clock, max(limit, 16), 0
    while found < limit and lo <= top:
        hi = lo + step - 1
        window: list[Entry] = []
        for cid, block in log.iter_entries(reverse=True, max_clock=hi):
            entry = Entry.from_trusted_block(cid, block)
            if entry.clock < lo or (mark is not None and _key(entry) <= mark):
                break
            window.append(entry)
        window.reverse()
        for entry in window[: limit - found]:
            found += 1
            yield entry
        if found >= limit:
            return
        mark = None  # later windows start above the cursor's clock
        lo = hi + 1
        if not window:
            step *= 2
        elif len(window) > 4 * limit:
            step = max(1, step // 4)


def _opened(db: Database, entries: list[Entry]) -> list[Entry]:
    """Entries of an encrypted database with the payloads this node can open (as
    ``db.entries()`` gives them); the others as stored."""
    if not db.encrypted:
        return entries
    out = []
    for entry in entries:
        try:
            out.append(entry.with_payload(db.open_entry(entry)))
        except OrbitstoreError:  # a key entry, or one sealed under a key we lack
            out.append(entry)
    return out
