"""Feed state: one row per item, clustered by position, and an item count.

Schema::

    view_feed(log INTEGER, clock INTEGER, writer TEXT, cid BLOB, idx INTEGER, ts INTEGER,
              value BLOB, json TEXT, PRIMARY KEY(log, clock, writer, cid, idx)) WITHOUT ROWID
        value: DAG-CBOR; json: dagjson.to_json(value); ts: the entry's ts (may be NULL)
    view_feed_stats(log INTEGER PRIMARY KEY, items INTEGER)   number of items

The primary key is the feed order, so a range (``gt``/``lt``, ``reverse``, ``limit``) is
one B-tree seek and a sequential read, whatever the size of the feed.

An item by id (its entry's CID and its index) needs no index of its own: the log's
tables already find an entry by CID (``blocks.cid``, then ``entries_block``), and the
entry's clock and writer complete the primary key. Earlier versions had one,
``view_feed_cid(log, cid, idx)``; it is dropped on open. Its keys are random, so every
commit rewrote most of its pages: a replica catching up on 100,000 entries wrote 855 MB
to the WAL with it and 381 MB without, and spent 28 instead of 40 µs per entry applying
them (docs/benchmarks.md, round 7).
"""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Sequence
from typing import TypeAlias

from orbitstore.storage.sqlite import SqliteStore

# The shapes of orbitstore.views.feed.Position and FeedRow (storage cannot import views).
Position: TypeAlias = tuple[int, str, bytes, int]
FeedRow: TypeAlias = tuple[int, str, bytes, int, int | None, bytes]

_COLUMNS = "clock, writer, cid, idx, ts, value"
_ORDER = "(clock, writer, cid, idx)"


def _row(row: tuple[object, ...]) -> FeedRow:
    clock, writer, cid, idx, ts, value = row
    assert isinstance(clock, int) and isinstance(writer, str) and isinstance(idx, int)
    assert ts is None or isinstance(ts, int)
    assert isinstance(cid, bytes) and isinstance(value, bytes)
    return (clock, writer, cid, idx, ts, value)


class SqliteFeedState:
    @staticmethod
    def create_tables(conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS view_feed(log INTEGER NOT NULL, clock INTEGER NOT NULL,"
            " writer TEXT NOT NULL, cid BLOB NOT NULL, idx INTEGER NOT NULL, ts INTEGER,"
            " value BLOB NOT NULL, json TEXT NOT NULL,"
            " PRIMARY KEY(log, clock, writer, cid, idx)) WITHOUT ROWID"
        )
        conn.execute("DROP INDEX IF EXISTS view_feed_cid")  # an earlier version's (see above)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS view_feed_stats("
            "log INTEGER PRIMARY KEY, items INTEGER NOT NULL)"
        )

    def __init__(self, store: SqliteStore, log_id: int) -> None:
        self._s = store
        self._log = log_id

    def add(self, rows: Sequence[tuple[FeedRow, str]]) -> None:
        conn = self._s.connection
        log = self._log
        cur = conn.executemany(
            f"INSERT OR IGNORE INTO view_feed(log, {_COLUMNS}, json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(log, *row, text) for row, text in rows],
        )
        if cur.rowcount:
            conn.execute(
                "INSERT INTO view_feed_stats(log, items) VALUES (?, ?)"
                " ON CONFLICT(log) DO UPDATE SET items = items + excluded.items",
                (log, cur.rowcount),
            )

    def get(self, cid: bytes, index: int) -> FeedRow | None:
        # The entry by CID through the log's indexes, then the item by its primary key.
        # CROSS JOIN fixes that order (without statistics SQLite might start from
        # view_feed's primary key prefix, the log, and scan the whole feed).
        row = self._s.connection.execute(
            "SELECT f.clock, f.writer, f.cid, f.idx, f.ts, f.value"
            " FROM blocks AS b CROSS JOIN entries AS e CROSS JOIN view_feed AS f"
            " WHERE b.cid=? AND e.block=b.id AND e.log=?"
            " AND f.log=e.log AND f.clock=e.clock AND f.writer=e.writer AND f.cid=b.cid"
            " AND f.idx=?",
            (cid, self._log, index),
        ).fetchone()
        return None if row is None else _row(row)

    def scan(
        self,
        *,
        low: Position | None,
        low_inclusive: bool,
        high: Position | None,
        high_inclusive: bool,
        limit: int,
        reverse: bool,
    ) -> list[FeedRow]:
        # Row-value comparisons on the primary key columns: SQLite turns them into one
        # range seek on the primary key (checked in tests with EXPLAIN QUERY PLAN).
        sql = f"SELECT {_COLUMNS} FROM view_feed WHERE log=?"
        params: list[object] = [self._log]
        if low is not None:
            sql += f" AND {_ORDER} {'>=' if low_inclusive else '>'} (?, ?, ?, ?)"
            params.extend(low)
        if high is not None:
            sql += f" AND {_ORDER} {'<=' if high_inclusive else '<'} (?, ?, ?, ?)"
            params.extend(high)
        direction = " DESC" if reverse else ""
        sql += (
            f" ORDER BY clock{direction}, writer{direction}, cid{direction}, idx{direction} LIMIT ?"
        )
        params.append(limit)
        return [_row(r) for r in self._s.connection.execute(sql, params).fetchall()]

    def count(self) -> int:
        row = self._s.connection.execute(
            "SELECT items FROM view_feed_stats WHERE log=?", (self._log,)
        ).fetchone()
        return 0 if row is None else int(row[0])


class MemoryFeedState:
    def __init__(self) -> None:
        self._order: list[Position] = []
        self._rows: dict[tuple[bytes, int], FeedRow] = {}

    def add(self, rows: Sequence[tuple[FeedRow, str]]) -> None:
        for row, _ in rows:
            key = (row[2], row[3])
            if key in self._rows:
                continue
            self._rows[key] = row
            bisect.insort(self._order, (row[0], row[1], row[2], row[3]))

    def get(self, cid: bytes, index: int) -> FeedRow | None:
        return self._rows.get((cid, index))

    def scan(
        self,
        *,
        low: Position | None,
        low_inclusive: bool,
        high: Position | None,
        high_inclusive: bool,
        limit: int,
        reverse: bool,
    ) -> list[FeedRow]:
        order = self._order
        if low is None:
            lo = 0
        else:
            lo = (bisect.bisect_left if low_inclusive else bisect.bisect_right)(order, low)
        if high is None:
            hi = len(order)
        else:
            hi = (bisect.bisect_right if high_inclusive else bisect.bisect_left)(order, high)
        picked = (
            order[max(hi - limit, lo) : hi][::-1] if reverse else order[lo : min(hi, lo + limit)]
        )
        return [self._rows[(p[2], p[3])] for p in picked]

    def count(self) -> int:
        return len(self._rows)
