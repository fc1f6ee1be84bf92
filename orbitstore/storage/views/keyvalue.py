"""Keyvalue state: one record per key (tombstones included), and a live-key count.

Schema::

    view_kv(log INTEGER, key TEXT, value BLOB, json TEXT, clock INTEGER, writer TEXT,
            cid BLOB, idx INTEGER, deleted INTEGER, arrival INTEGER, conflicts BLOB,
            conflicts_json TEXT, PRIMARY KEY(log, key)) WITHOUT ROWID
        value: DAG-CBOR, NULL when deleted; json: dagjson.to_json(value), NULL when deleted
        (clock, writer, cid, idx): the stamp of the winning operation; arrival: its
        entry's arrival number (orbitstore.views.causal)
        conflicts: the other maximal writes of the key (DAG-CBOR members), NULL if none;
        conflicts_json: their values as JSON for SQL (``_conflicts``), NULL if none
        INDEX view_kv_conflicted(log, key) WHERE conflicts_json IS NOT NULL
    view_kv_stats(log INTEGER PRIMARY KEY, live INTEGER)   number of live keys
    view_causal, view_causal_frontier                      see storage/views/causal.py

Tables written before conflicts were tracked (no ``arrival`` column) are migrated by
emptying them: every keyvalue database is rebuilt from its log once, on its next open.

Keys compare with SQLite's BINARY collation (UTF-8 bytes), which is the code point order
Python uses, so both implementations list keys in the same order.
"""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Sequence
from typing import TypeAlias

from orbitstore.storage.sqlite import SqliteStore
from orbitstore.storage.views.causal import (
    MemoryCausal,
    SqliteCausal,
    create_causal_tables,
    has_column,
    migrate,
)

# The shapes of orbitstore.views.keyvalue.Stamp and KeyValueState (storage cannot
# import views): a stamp is (clock, writer, cid bytes, index in entry).
_Stamp: TypeAlias = tuple[int, str, bytes, int]
_Record: TypeAlias = tuple[_Stamp, bytes | None]
# (stamp, value, arrival, conflicts): a record with what conflict tracking needs.
_Register: TypeAlias = tuple[_Stamp, bytes | None, int, bytes | None]
# key, stamp, value, json, arrival, conflicts, conflicts_json (KvLoad)
_Load: TypeAlias = tuple[str, _Stamp, bytes | None, str | None, int, bytes | None, str | None]


class SqliteKeyValueState(SqliteCausal):
    @staticmethod
    def create_tables(conn: sqlite3.Connection) -> None:
        old = has_column(conn, "view_kv", "arrival") is False
        conn.execute(
            "CREATE TABLE IF NOT EXISTS view_kv(log INTEGER NOT NULL, key TEXT NOT NULL,"
            " value BLOB, json TEXT, clock INTEGER NOT NULL, writer TEXT NOT NULL,"
            " cid BLOB NOT NULL, idx INTEGER NOT NULL, deleted INTEGER NOT NULL,"
            " arrival INTEGER NOT NULL DEFAULT 0, conflicts BLOB, conflicts_json TEXT,"
            " PRIMARY KEY(log, key)) WITHOUT ROWID"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS view_kv_stats("
            "log INTEGER PRIMARY KEY, live INTEGER NOT NULL)"
        )
        create_causal_tables(conn)
        if old:
            migrate(
                conn,
                view="keyvalue",
                alter=[
                    "ALTER TABLE view_kv ADD COLUMN arrival INTEGER NOT NULL DEFAULT 0",
                    "ALTER TABLE view_kv ADD COLUMN conflicts BLOB",
                    "ALTER TABLE view_kv ADD COLUMN conflicts_json TEXT",
                ],
                reset=["view_kv", "view_kv_stats"],
            )
        # Rows with conflicts only (rare): listing them, in Python or SQL, is a short scan.
        conn.execute(
            "CREATE INDEX IF NOT EXISTS view_kv_conflicted ON view_kv(log, key)"
            " WHERE conflicts_json IS NOT NULL"
        )

    def __init__(self, store: SqliteStore, log_id: int) -> None:
        self._s = store
        self._log = log_id

    def get_record(self, key: str) -> _Record | None:
        row = self._s.connection.execute(
            "SELECT clock, writer, cid, idx, value FROM view_kv WHERE log=? AND key=?",
            (self._log, key),
        ).fetchone()
        if row is None:
            return None
        clock, writer, cid, idx, value = row
        return (clock, writer, bytes(cid), idx), None if value is None else bytes(value)

    def get_register(self, key: str) -> _Register | None:
        row = self._s.connection.execute(
            "SELECT clock, writer, cid, idx, value, arrival, conflicts FROM view_kv"
            " WHERE log=? AND key=?",
            (self._log, key),
        ).fetchone()
        if row is None:
            return None
        clock, writer, cid, idx, value, arrival, conflicts = row
        return (
            (clock, writer, bytes(cid), idx),
            None if value is None else bytes(value),
            int(arrival),
            None if conflicts is None else bytes(conflicts),
        )

    def put_record(
        self,
        key: str,
        stamp: _Stamp,
        value: bytes | None,
        json: str | None,
        *,
        live_delta: int,
        arrival: int = 0,
        conflicts: bytes | None = None,
        conflicts_json: str | None = None,
    ) -> None:
        conn = self._s.connection
        clock, writer, cid, idx = stamp
        conn.execute(
            "INSERT OR REPLACE INTO view_kv(log, key, value, json, clock, writer, cid, idx,"
            " deleted, arrival, conflicts, conflicts_json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self._log,
                key,
                value,
                json,
                clock,
                writer,
                cid,
                idx,
                int(value is None),
                arrival,
                conflicts,
                conflicts_json,
            ),
        )
        if live_delta:
            conn.execute(
                "INSERT INTO view_kv_stats(log, live) VALUES (?, ?)"
                " ON CONFLICT(log) DO UPDATE SET live = live + excluded.live",
                (self._log, live_delta),
            )

    def load_records(self, rows: Sequence[_Load], *, live: int | None) -> None:
        conn = self._s.connection
        conn.executemany(
            "INSERT INTO view_kv(log, key, value, json, clock, writer, cid, idx, deleted,"
            " arrival, conflicts, conflicts_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (self._log, key, value, text, *stamp, int(value is None), arrival, blob, ctext)
                for key, stamp, value, text, arrival, blob, ctext in rows
            ],
        )
        if live is not None:
            conn.execute(
                "INSERT INTO view_kv_stats(log, live) VALUES (?, ?)"
                " ON CONFLICT(log) DO UPDATE SET live = live + excluded.live",
                (self._log, live),
            )

    def set_conflicts(self, key: str, conflicts: bytes | None, conflicts_json: str | None) -> None:
        self._s.connection.execute(
            "UPDATE view_kv SET conflicts=?, conflicts_json=? WHERE log=? AND key=?",
            (conflicts, conflicts_json, self._log, key),
        )

    def get_conflicts(self, key: str) -> bytes | None:
        row = self._s.connection.execute(
            "SELECT conflicts FROM view_kv WHERE log=? AND key=?", (self._log, key)
        ).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def conflicted(self, limit: int) -> list[str]:
        rows = self._s.connection.execute(
            "SELECT key FROM view_kv WHERE log=? AND conflicts_json IS NOT NULL"
            " ORDER BY key LIMIT ?",
            (self._log, limit),
        )
        return [str(r[0]) for r in rows]

    def get_value(self, key: str) -> bytes | None:
        row = self._s.connection.execute(
            "SELECT value FROM view_kv WHERE log=? AND key=? AND deleted=0", (self._log, key)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def scan(
        self,
        *,
        low: str | None,
        low_inclusive: bool,
        high: str | None,
        limit: int,
        reverse: bool,
    ) -> list[tuple[str, bytes]]:
        sql = "SELECT key, value FROM view_kv WHERE log=?"
        params: list[object] = [self._log]
        if low is not None:
            sql += " AND key >= ?" if low_inclusive else " AND key > ?"
            params.append(low)
        if high is not None:
            sql += " AND key < ?"
            params.append(high)
        sql += " AND deleted=0 ORDER BY key" + (" DESC" if reverse else "") + " LIMIT ?"
        params.append(limit)
        rows = self._s.connection.execute(sql, params).fetchall()
        return [(str(k), bytes(v)) for k, v in rows]

    def count(self) -> int:
        row = self._s.connection.execute(
            "SELECT live FROM view_kv_stats WHERE log=?", (self._log,)
        ).fetchone()
        return 0 if row is None else int(row[0])


class MemoryKeyValueState(MemoryCausal):
    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}
        self._extra: dict[str, tuple[int, bytes | None]] = {}  # key -> arrival, conflicts
        self._sorted: list[str] = []  # every key with a record, tombstones included
        self._live = 0
        self._init_causal()

    def get_record(self, key: str) -> _Record | None:
        return self._records.get(key)

    def get_register(self, key: str) -> _Register | None:
        record = self._records.get(key)
        if record is None:
            return None
        return (*record, *self._extra[key])

    def put_record(
        self,
        key: str,
        stamp: _Stamp,
        value: bytes | None,
        json: str | None,
        *,
        live_delta: int,
        arrival: int = 0,
        conflicts: bytes | None = None,
        conflicts_json: str | None = None,
    ) -> None:
        if key not in self._records:
            bisect.insort(self._sorted, key)
        self._records[key] = (stamp, value)
        self._extra[key] = (arrival, conflicts)
        self._live += live_delta

    def load_records(self, rows: Sequence[_Load], *, live: int | None) -> None:
        for key, stamp, value, _, arrival, blob, _ in rows:
            self._records[key] = (stamp, value)
            self._extra[key] = (arrival, blob)
        self._sorted = sorted(self._records)
        self._live += live or 0

    def set_conflicts(self, key: str, conflicts: bytes | None, conflicts_json: str | None) -> None:
        self._extra[key] = (self._extra[key][0], conflicts)

    def get_conflicts(self, key: str) -> bytes | None:
        extra = self._extra.get(key)
        return None if extra is None else extra[1]

    def conflicted(self, limit: int) -> list[str]:
        found = [k for k in self._sorted if self._extra[k][1] is not None]
        return found if limit < 0 else found[:limit]

    def get_value(self, key: str) -> bytes | None:
        record = self._records.get(key)
        return None if record is None else record[1]

    def scan(
        self,
        *,
        low: str | None,
        low_inclusive: bool,
        high: str | None,
        limit: int,
        reverse: bool,
    ) -> list[tuple[str, bytes]]:
        keys = self._sorted
        if low is None:
            lo = 0
        elif low_inclusive:
            lo = bisect.bisect_left(keys, low)
        else:
            lo = bisect.bisect_right(keys, low)
        hi = len(keys) if high is None else bisect.bisect_left(keys, high)
        span = range(hi - 1, lo - 1, -1) if reverse else range(lo, hi)
        out: list[tuple[str, bytes]] = []
        for i in span:
            if len(out) >= limit:
                break
            value = self._records[keys[i]][1]
            if value is not None:
                out.append((keys[i], value))
        return out

    def count(self) -> int:
        return self._live
