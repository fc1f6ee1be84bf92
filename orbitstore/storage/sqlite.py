"""The embedded default storage: one SQLite file per node, in WAL mode.

Schema (version 4)::

    meta(key TEXT PRIMARY KEY, value)                      schema version, node facts
    blocks(id INTEGER PRIMARY KEY, cid BLOB UNIQUE, data)  every block; id = arrival order
    logs(id INTEGER PRIMARY KEY, db BLOB UNIQUE, count)    one row per database log
    entries(seq INTEGER PRIMARY KEY, log, block, clock, writer, cid, has_child)
        UNIQUE (block, log); INDEX (log, clock, writer, cid) = the total order;
        INDEX (log, seq) for catching views up;
        INDEX entries_childless (log, clock, cid) WHERE has_child=0 = the true heads
        block is blocks.id; seq is the local arrival order (views checkpoint on it);
        has_child is 1 once a stored entry of the log names this one in its ``next``
    heads(log, cid, clock) PRIMARY KEY (log, cid)
    names(name TEXT PRIMARY KEY, db BLOB)                  local names of databases
    view_checkpoints(log, view, seq)                       the seq each view reflects
    acl_frontiers(log, cid, frontier, acl) PRIMARY KEY (log, cid)
        capabilities logs only: each entry's ACL frontier (a DAG-CBOR list of CIDs) and
        whether it is an ACL op; INDEX (log) WHERE acl=1 loads the access graph on open
    view_*                                                 view tables (storage/views/)

Why blocks have an integer key: CIDs are random, so a table keyed by CID takes every
insert at a random page, and a commit of 1,000 entries into a large log rewrote about
as many pages of block data (appends at 100,000 entries ran at half the speed of appends
at 10,000). Keyed by arrival order, block data is appended at the end of the table; only
the small ``cid`` index (44 bytes a row) takes random inserts, and ``entries`` refers to
blocks by id, so it has no random-keyed index at all (version 1 had two, both wide).

Heads never lose an entry: the true heads of a log are its stored entries that no
stored entry names as a parent (``has_child = 0``), kept by ``add_entries`` itself in
the same transaction as the entries, whatever the caller believes the heads are. On
open, the stored heads of every log are compared with them (one scan of the small
partial index, O(heads), not O(entries)) and repaired if they differ, with a warning in
the log: stale heads written by a second process, or by hand, cannot hide entries from
peers. Version 2 files are migrated once (every entry's ``next`` is decoded to set
``has_child``).

Every sqlite3 error is translated in :mod:`orbitstore.storage.sqlite_errors`: all
connections here are its :class:`~orbitstore.storage.sqlite_errors.Connection`.

Durability: every write runs inside a transaction that is committed before the call
returns. With ``synchronous="normal"`` (the default) a committed transaction survives
the process being killed at any moment (SIGKILL included) — the WAL is in the OS page
cache — and the database never corrupts; a power cut may lose the last transactions.
``synchronous="full"`` also survives power loss, at one fsync per commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.errors import (
    ClosedError,
    DecodeError,
    InvalidCidError,
    StorageCorruptedError,
    StorageError,
)
from orbitstore.storage.memory import check_block
from orbitstore.storage.sqlite_errors import Connection, connect

SCHEMA_VERSION = 4
_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks(
    id INTEGER PRIMARY KEY, cid BLOB NOT NULL UNIQUE, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS logs(
    id INTEGER PRIMARY KEY, db BLOB NOT NULL UNIQUE, count INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS entries(
    seq INTEGER PRIMARY KEY, log INTEGER NOT NULL, block INTEGER NOT NULL,
    clock INTEGER NOT NULL, writer TEXT NOT NULL, cid BLOB NOT NULL,
    has_child INTEGER NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX IF NOT EXISTS entries_block ON entries(block, log);
CREATE INDEX IF NOT EXISTS entries_order ON entries(log, clock, writer, cid);
CREATE INDEX IF NOT EXISTS entries_seq ON entries(log, seq);
CREATE TABLE IF NOT EXISTS heads(
    log INTEGER NOT NULL, cid BLOB NOT NULL, clock INTEGER NOT NULL,
    PRIMARY KEY(log, cid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS names(name TEXT PRIMARY KEY, db BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS view_checkpoints(
    log INTEGER NOT NULL, view TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY(log, view)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS acl_frontiers(
    log INTEGER NOT NULL, cid BLOB NOT NULL, frontier BLOB NOT NULL, acl INTEGER NOT NULL,
    PRIMARY KEY(log, cid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS acl_ops ON acl_frontiers(log) WHERE acl=1;
"""
# After the migration to version 3 (the column must exist first).
_CHILDLESS_INDEX = (
    "CREATE INDEX IF NOT EXISTS entries_childless ON entries(log, clock, cid) WHERE has_child=0"
)
_MARK_PARENT = (
    "UPDATE entries SET has_child=1"
    " WHERE block=(SELECT id FROM blocks WHERE cid=?) AND log=? AND has_child=0"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SqliteConfig:
    # "normal": survives a killed process, not a power cut; ~40x cheaper commits.
    synchronous: Literal["normal", "full"] = "normal"
    # 64 MiB page cache: keeps the order index and hot blocks of a 1M-entry log in memory.
    cache_kib: int = 64 * 1024
    # Wait this long for a lock held by another process before failing.
    busy_timeout_ms: int = 5000
    # Checkpoint the WAL into the main file every 10,000 pages (~40 MiB) instead of
    # SQLite's 1,000: index pages rewritten by many commits are copied back once, not
    # each time. Measured: batched appends to a 100,000-entry log 15,226 -> 17,327/s.
    wal_autocheckpoint_pages: int = 10_000


class SqliteBlockStore:
    def __init__(self, store: SqliteStore) -> None:
        self._s = store

    def get(self, cid: Cid) -> bytes | None:
        row = (
            self._s._conn_()
            .execute("SELECT data FROM blocks WHERE cid=?", (bytes(cid),))
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def has(self, cid: Cid) -> bool:
        return (
            self._s._conn_().execute("SELECT 1 FROM blocks WHERE cid=?", (bytes(cid),)).fetchone()
            is not None
        )

    def put(self, cid: Cid, data: bytes) -> None:
        self.put_many([(cid, data)])

    def put_many(self, blocks: Iterable[tuple[Cid, bytes]]) -> None:
        rows = []
        for cid, data in blocks:
            check_block(cid, data)
            rows.append((bytes(cid), bytes(data)))
        with self._s.atomic():
            self._s._conn_().executemany(
                "INSERT OR IGNORE INTO blocks(cid, data) VALUES (?, ?)", rows
            )

    def delete(self, cid: Cid) -> None:
        with self._s.transaction():
            self._s._conn_().execute("DELETE FROM blocks WHERE cid=?", (bytes(cid),))

    def __len__(self) -> int:
        return int(self._s._conn_().execute("SELECT count(*) FROM blocks").fetchone()[0])

    def __iter__(self) -> Iterator[Cid]:
        rows = self._s._conn_().execute("SELECT cid FROM blocks").fetchall()
        return (_stored_cid(r[0]) for r in rows)


class SqliteLogStore:
    """One database's log inside the node's SQLite file."""

    def __init__(self, store: SqliteStore, log_id: int) -> None:
        self._s = store
        self._id = log_id

    @property
    def log_id(self) -> int:
        return self._id

    def get_clock(self, cid: Cid) -> int | None:
        row = (
            self._s._conn_()
            .execute(
                "SELECT e.clock FROM blocks b JOIN entries e ON e.block = b.id"
                " WHERE b.cid=? AND e.log=?",
                (bytes(cid), self._id),
            )
            .fetchone()
        )
        return None if row is None else int(row[0])

    def get_clocks(self, cids: Iterable[Cid]) -> dict[Cid, int]:
        """Clocks of the given CIDs that are stored entries of this log (one query per
        500 CIDs instead of one per CID).

        CROSS JOIN fixes the join order (SQLite's documented way): look each CID up in
        the ``blocks`` index, then its entry. Left to itself, the planner prefers to scan
        every entry of the log (``log=?``) and probe the IN list: 50 ms per call at
        100,000 entries instead of 2 ms, which made a bulk receive quadratic."""
        wanted = list(cids)
        found: dict[Cid, int] = {}
        conn = self._s._conn_()
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            rows = conn.execute(
                "SELECT b.cid, e.clock FROM blocks b CROSS JOIN entries e ON e.block = b.id"
                f" WHERE e.log=? AND b.cid IN ({','.join('?' * len(part))})",
                (self._id, *(bytes(c) for c in part)),
            ).fetchall()
            by_raw = {bytes(c): c for c in part}
            for raw, clock in rows:
                found[by_raw[bytes(raw)]] = int(clock)
        return found

    def get_block(self, cid: Cid) -> bytes | None:
        row = (
            self._s._conn_()
            .execute(
                "SELECT b.data FROM blocks b JOIN entries e ON e.block = b.id"
                " WHERE b.cid=? AND e.log=?",
                (bytes(cid), self._id),
            )
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def get_heads(self) -> dict[Cid, int]:
        rows = (
            self._s._conn_()
            .execute("SELECT cid, clock FROM heads WHERE log=?", (self._id,))
            .fetchall()
        )
        return {_stored_cid(c): int(k) for c, k in rows}

    def add_entries(self, entries: Sequence[Entry]) -> None:
        """Store ``entries`` (parents before children) and keep ``has_child`` exact.

        An entry named as a parent by another entry of the same call is inserted with
        ``has_child=1`` at once; only parents stored by earlier calls are updated (for a
        chain of appends: one row, not one per entry). If some entry was already stored
        (its insert was ignored, so its flag was not set), every parent is updated."""
        if not entries:
            return
        store = self._s
        if store._depth:  # join the open transaction (see SqliteStore.atomic)
            self._add_entries(entries)
            return
        with store.transaction():
            self._add_entries(entries)

    def _add_entries(self, entries: Sequence[Entry]) -> None:
        log = self._id
        with self._s._conn_().guarded() as cur:
            if len(entries) == 1:  # a single append: 4 statements, no id lookup
                entry = entries[0]
                raw = bytes(entry.cid)
                cur.execute(
                    "INSERT OR IGNORE INTO blocks(cid, data) VALUES (?, ?)", (raw, entry.block)
                )
                if cur.rowcount == 1:
                    block_id = cur.lastrowid
                    cur.execute(
                        "INSERT OR IGNORE INTO entries(log, block, clock, writer, cid, has_child)"
                        " VALUES (?, ?, ?, ?, ?, 0)",
                        (log, block_id, entry.clock, entry.writer, raw),
                    )
                else:
                    cur.execute(
                        "INSERT OR IGNORE INTO entries(log, block, clock, writer, cid, has_child)"
                        " SELECT ?, id, ?, ?, cid, 0 FROM blocks WHERE cid=?",
                        (log, entry.clock, entry.writer, raw),
                    )
                if cur.rowcount:
                    cur.execute("UPDATE logs SET count = count + 1 WHERE id=?", (log,))
                parents = entry.next
                if len(parents) == 1:
                    cur.execute(_MARK_PARENT, (bytes(parents[0]), log))
                elif parents:
                    cur.executemany(_MARK_PARENT, [(bytes(p), log) for p in parents])
                return
            raws = [e.cid._bytes for e in entries]  # Cid's bytes, without a call each
            named = {p._bytes for e in entries for p in e.next}
            # Blocks get ids chosen here (after the largest): when all of them are new,
            # the entry rows name them directly instead of looking each CID up again.
            cur.execute("SELECT coalesce(max(id), 0) FROM blocks")
            (top,) = cur.fetchone()
            ids = range(int(top) + 1, int(top) + 1 + len(entries))
            cur.executemany(
                "INSERT OR IGNORE INTO blocks(id, cid, data) VALUES (?, ?, ?)",
                [(i, raw, e.block) for i, raw, e in zip(ids, raws, entries, strict=True)],
            )
            fresh = cur.rowcount == len(entries)
            if fresh:
                cur.executemany(
                    "INSERT OR IGNORE INTO entries(log, block, clock, writer, cid, has_child)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (log, i, e.clock, e.writer, raw, raw in named)
                        for i, raw, e in zip(ids, raws, entries, strict=True)
                    ],
                )
            else:  # some blocks were stored already, under their own ids
                cur.executemany(
                    "INSERT OR IGNORE INTO entries(log, block, clock, writer, cid, has_child)"
                    " SELECT ?, id, ?, ?, cid, ? FROM blocks WHERE cid=?",
                    [
                        (log, e.clock, e.writer, raw in named, raw)
                        for raw, e in zip(raws, entries, strict=True)
                    ],
                )
            added = cur.rowcount
            cur.execute("UPDATE logs SET count = count + ? WHERE id=?", (added, log))
            # All new: only parents from earlier calls. Else some were stored already (or
            # are twice in this call) and kept their flag: update every parent.
            marks = named.difference(raws) if added == len(entries) else named
            cur.executemany(_MARK_PARENT, [(raw, log) for raw in marks])

    def set_heads(self, heads: Mapping[Cid, int]) -> None:
        store = self._s
        if store._depth:
            self._set_heads(heads)
            return
        with store.transaction():
            self._set_heads(heads)

    def _set_heads(self, heads: Mapping[Cid, int]) -> None:
        log = self._id
        with self._s._conn_().guarded() as cur:
            cur.execute("DELETE FROM heads WHERE log=?", (log,))
            if len(heads) == 1:  # a chain of appends, a caught-up replica
                ((cid, clock),) = heads.items()
                cur.execute(
                    "INSERT INTO heads(log, cid, clock) VALUES (?, ?, ?)", (log, bytes(cid), clock)
                )
                return
            cur.executemany(
                "INSERT INTO heads(log, cid, clock) VALUES (?, ?, ?)",
                [(log, bytes(c), k) for c, k in heads.items()],
            )

    def count(self) -> int:
        row = self._s._conn_().execute("SELECT count FROM logs WHERE id=?", (self._id,)).fetchone()
        return int(row[0])

    def last_seq(self) -> int:
        """The local arrival number of the newest entry (0 when empty)."""
        row = (
            self._s._conn_()
            .execute("SELECT max(seq) FROM entries WHERE log=?", (self._id,))
            .fetchone()
        )
        return int(row[0] or 0)

    def iter_since(self, seq: int) -> Iterator[tuple[int, Cid, bytes]]:
        """Entries that arrived after local arrival number ``seq``, in arrival order
        (which is a causal order: an entry is stored only after its parents)."""
        cur = self._s._conn_().execute(
            "SELECT e.seq, e.cid, b.data FROM entries e JOIN blocks b ON b.id = e.block"
            " WHERE e.log=? AND e.seq>? ORDER BY e.seq",
            (self._id, seq),
        )
        while True:
            rows = cur.fetchmany(512)
            if not rows:
                return
            for n, cid, data in rows:
                yield int(n), _stored_cid(cid), bytes(data)

    # -- check and repair (orbitstore check) --------------------------------------------

    def missing_blocks(self) -> list[Cid]:
        """Entries of this log whose block is gone (iteration skips them)."""
        rows = (
            self._s._conn_()
            .execute(
                "SELECT e.cid FROM entries e LEFT JOIN blocks b ON b.id = e.block"
                " WHERE e.log=? AND b.id IS NULL ORDER BY e.seq",
                (self._id,),
            )
            .fetchall()
        )
        return [_stored_cid(r[0]) for r in rows]

    def get_frontiers(self, cids: Iterable[Cid]) -> dict[Cid, tuple[Cid, ...]]:
        raw = [bytes(c) for c in cids]
        conn = self._s._conn_()
        out: dict[Cid, tuple[Cid, ...]] = {}
        for i in range(0, len(raw), 500):
            part = raw[i : i + 500]
            marks = ",".join("?" * len(part))
            rows = conn.execute(
                f"SELECT cid, frontier FROM acl_frontiers WHERE log=? AND cid IN ({marks})",
                (self._id, *part),
            ).fetchall()
            for cid, frontier in rows:
                out[_stored_cid(cid)] = _decode_frontier(bytes(frontier))
        return out

    def put_frontiers(self, rows: Iterable[tuple[Cid, tuple[Cid, ...], bool]]) -> None:
        self._s._conn_().executemany(
            "INSERT OR IGNORE INTO acl_frontiers(log, cid, frontier, acl) VALUES (?, ?, ?, ?)",
            [(self._id, bytes(c), codec.encode(list(f)), int(a)) for c, f, a in rows],
        )

    def acl_entries(self) -> list[Cid]:
        rows = (
            self._s._conn_()
            .execute(
                "SELECT cid FROM acl_frontiers INDEXED BY acl_ops WHERE log=? AND acl=1",
                (self._id,),
            )
            .fetchall()
        )
        return [_stored_cid(r[0]) for r in rows]

    def remove_entries(self, cids: Iterable[Cid]) -> int:
        """Forget entries (damaged ones and their descendants, so that sync fetches them
        again): their rows, their blocks, and ``has_child`` recomputed. The caller sets
        the heads and rebuilds the views. Returns how many entries were removed."""
        raw = [bytes(c) for c in cids]
        conn = self._s._conn_()
        with self._s.transaction():
            removed = 0
            for i in range(0, len(raw), 500):
                part = raw[i : i + 500]
                marks = ",".join("?" * len(part))
                cur = conn.execute(
                    f"DELETE FROM entries WHERE log=? AND cid IN ({marks})", (self._id, *part)
                )
                removed += cur.rowcount
                conn.execute(
                    f"DELETE FROM acl_frontiers WHERE log=? AND cid IN ({marks})",
                    (self._id, *part),
                )
                conn.execute(
                    f"DELETE FROM blocks WHERE cid IN ({marks})"
                    " AND id NOT IN (SELECT block FROM entries)",
                    part,
                )
            conn.execute(
                "UPDATE logs SET count=(SELECT count(*) FROM entries WHERE log=?) WHERE id=?",
                (self._id, self._id),
            )
            mark_parents(conn, self._id)
        return removed

    def iter_entries(
        self, *, reverse: bool = False, limit: int | None = None, max_clock: int | None = None
    ) -> Iterator[tuple[Cid, bytes]]:
        order = "DESC" if reverse else "ASC"
        params: list[int] = [self._id]
        where = "e.log=?"
        if max_clock is not None:
            where += " AND e.clock<=?"  # a range of the order index, not a filter
            params.append(max_clock)
        sql = (
            "SELECT e.cid, b.data FROM entries e JOIN blocks b ON b.id = e.block"
            f" WHERE {where} ORDER BY e.clock {order}, e.writer {order}, e.cid {order}"
        )
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        cur = self._s._conn_().execute(sql, params)
        while True:
            rows = cur.fetchmany(512)
            if not rows:
                return
            for cid, data in rows:
                yield _stored_cid(cid), bytes(data)

    def iter_entry_rows(self, *, max_clock: int | None = None) -> list[tuple[bytes, bytes]]:
        """:class:`~orbitstore.storage.base.EntryRows`: ``(cid bytes, block)`` of every
        stored entry in total order (clock at most ``max_clock``), as SQLite returns
        them: no :class:`Cid` built, nothing checked (a bulk reader of a whole history
        decodes what it needs and names a damaged row itself)."""
        params: list[int] = [self._id]
        where = "e.log=?"
        if max_clock is not None:
            where += " AND e.clock<=?"  # a range of the order index, not a filter
            params.append(max_clock)
        sql = (
            "SELECT e.cid, b.data FROM entries e JOIN blocks b ON b.id = e.block"
            f" WHERE {where} ORDER BY e.clock, e.writer, e.cid"
        )
        rows: list[tuple[bytes, bytes]] = self._s._conn_().execute(sql, params).fetchall()
        return rows


class SqliteStore:
    """A :class:`~orbitstore.storage.base.NodeStore` in one SQLite file.

    ``SqliteStore.in_memory()`` is the same store in a private in-memory database (no
    file, no WAL): scratch space, e.g. to fold a view as of past heads, whose image
    :meth:`serialize` hands over to another connection.
    """

    MEMORY: ClassVar[str] = ":memory:"

    def __init__(self, path: str | Path, config: SqliteConfig | None = None) -> None:
        self.path = Path(path)
        self.config = config or SqliteConfig()
        self._depth = 0
        self._log_cache: dict[Cid, SqliteLogStore] = {}
        self._memory = str(path) == self.MEMORY
        try:
            if not self._memory:
                self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot open {self.path}: {exc}") from exc
        label = "a scratch in-memory store" if self._memory else str(self.path)
        conn = connect(
            self.path, label=label, isolation_level=None, check_same_thread=False, timeout=0
        )
        try:
            self._setup(conn)
        except StorageError as exc:
            with suppress(StorageError):  # already failing: the first error is the news
                conn.close()
            raise type(exc)(f"cannot open {self.path}: {exc}", **exc.details) from exc
        except BaseException:
            with suppress(StorageError):
                conn.close()
            raise
        self._conn: Connection | None = conn
        self._blocks = SqliteBlockStore(self)
        #: What the open-time heads check repaired: {log id: (missing, extra)}.
        self.repaired_heads: dict[int, tuple[int, int]] = {}
        try:
            self.repaired_heads = self._repair_heads()
        except StorageError as exc:  # damaged: open anyway, so `orbitstore check` can run
            _log.error("%s: the heads check failed; run `orbitstore check`: %s", self.path, exc)

    def _setup(self, conn: Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout={int(self.config.busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal" and not self._memory:
            raise StorageError(f"could not put {self.path} in WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous={self.config.synchronous.upper()}")
        conn.execute(f"PRAGMA cache_size=-{int(self.config.cache_kib)}")
        conn.execute(f"PRAGMA wal_autocheckpoint={int(self.config.wal_autocheckpoint_pages)}")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta(key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
        elif row[0] == 2:
            _migrate_2_to_3(conn)
        elif row[0] == 3:  # version 4 only adds acl_frontiers, created above
            conn.execute("UPDATE meta SET value=? WHERE key='schema'", (SCHEMA_VERSION,))
        elif row[0] != SCHEMA_VERSION:
            raise StorageError(
                f"{self.path} has schema version {row[0]!r}; this orbitstore reads"
                f" version {SCHEMA_VERSION}"
            )
        conn.execute(_CHILDLESS_INDEX)

    def true_heads(self, log_id: int | None = None) -> dict[int, dict[Cid, int]]:
        """Per log, its stored entries that no stored entry names as a parent (O(heads))."""
        sql = "SELECT log, cid, clock FROM entries INDEXED BY entries_childless WHERE has_child=0"
        params: tuple[int, ...] = ()
        if log_id is not None:
            sql += " AND log=?"
            params = (log_id,)
        found: dict[int, dict[Cid, int]] = {}
        for log, cid, clock in self._conn_().execute(sql, params).fetchall():
            found.setdefault(int(log), {})[_stored_cid(cid)] = int(clock)
        return found

    def _repair_heads(self) -> dict[int, tuple[int, int]]:
        """Make every log's stored heads its true heads; say what changed, per log."""
        conn = self._conn_()
        true = self.true_heads()
        stored: dict[int, dict[Cid, int]] = {}
        for log, cid, clock in conn.execute("SELECT log, cid, clock FROM heads").fetchall():
            stored.setdefault(int(log), {})[_stored_cid(cid)] = int(clock)
        repaired: dict[int, tuple[int, int]] = {}
        for log in sorted(set(true) | set(stored)):
            want, have = true.get(log, {}), stored.get(log, {})
            if want == have:
                continue
            missing, extra = len(want.keys() - have.keys()), len(have.keys() - want.keys())
            with self.transaction():
                conn.execute("DELETE FROM heads WHERE log=?", (log,))
                conn.executemany(
                    "INSERT INTO heads(log, cid, clock) VALUES (?, ?, ?)",
                    [(log, bytes(c), k) for c, k in want.items()],
                )
            repaired[log] = (missing, extra)
            _log.warning(
                "%s: the stored heads of log %d hid entries or named wrong ones"
                " (%d true heads missing, %d wrong heads); repaired to its %d true heads",
                self.path,
                log,
                missing,
                extra,
                len(want),
            )
        return repaired

    @classmethod
    def in_memory(cls, config: SqliteConfig | None = None) -> SqliteStore:
        """A store in a private in-memory database, gone when it is closed."""
        return cls(cls.MEMORY, config)

    def serialize(self) -> bytes:
        """The whole database as bytes (SQLite's serialization: the file image)."""
        return self._conn_().serialize()

    # -- plumbing -----------------------------------------------------------------------

    def _conn_(self) -> Connection:
        conn = self._conn
        if conn is None:
            raise ClosedError(f"the store {self.path} is closed")
        return conn

    def transaction(self) -> AbstractContextManager[None]:
        """All writes inside commit together or not at all. A nested transaction is a
        savepoint: if it raises, only what it wrote is rolled back (the outer one goes
        on, and commits or rolls back as a whole)."""
        if self._depth:
            return self._savepoint(self._conn_())
        return _Transaction(self)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """For the store's own multi-statement writes (add_entries, set_heads, put_many):
        a transaction of their own when none is open, else they simply join the open one
        — no savepoint per call (that cost four statements per append). A failure inside
        then fails the enclosing transaction, which its owner rolls back as a whole."""
        if self._depth:
            yield
            return
        with self.transaction():
            yield

    @contextmanager
    def _savepoint(self, conn: Connection) -> Iterator[None]:
        name = f"orbitstore_{self._depth}"  # unique among the open ones: one per depth
        try:
            conn.execute(f"SAVEPOINT {name}")
        except StorageError as exc:
            raise type(exc)(f"cannot start a savepoint on {self.path}: {exc}") from exc
        depth = self._depth
        self._depth = depth + 1
        try:
            yield
        except BaseException:
            self._depth = depth
            if conn.in_transaction:  # else SQLite rolled the whole transaction back
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
            raise
        self._depth = depth
        try:
            conn.execute(f"RELEASE {name}")
        except StorageError as exc:
            raise type(exc)(f"cannot release a savepoint on {self.path}: {exc}") from exc

    def check(self) -> None:
        """Run SQLite's quick_check over the whole file (O(size): not done on open)."""
        quick = self._conn_().execute("PRAGMA quick_check").fetchone()[0]
        if quick != "ok":
            raise StorageCorruptedError(f"{self.path} fails SQLite's quick_check: {quick}")

    def integrity_check(self, max_errors: int = 100) -> list[str]:
        """SQLite's full ``integrity_check``: [] if the file is sound, else what is wrong
        (at most ``max_errors`` lines). O(size)."""
        rows = self._conn_().execute(f"PRAGMA integrity_check({int(max_errors)})").fetchall()
        found = [str(r[0]) for r in rows]
        return [] if found == ["ok"] else found

    def reindex(self) -> None:
        """Rebuild every index from its table (repairs index-only damage)."""
        self._conn_().execute("REINDEX")

    @property
    def connection(self) -> Connection:
        """The raw connection, for the view tables that live in the same file."""
        return self._conn_()

    # -- NodeStore ----------------------------------------------------------------------

    @property
    def blocks(self) -> SqliteBlockStore:
        return self._blocks

    def log_store(self, db: Cid) -> SqliteLogStore:
        cached = self._log_cache.get(db)
        if cached is not None:
            return cached
        conn = self._conn_()
        with self.transaction():
            conn.execute("INSERT OR IGNORE INTO logs(db) VALUES (?)", (bytes(db),))
            row = conn.execute("SELECT id FROM logs WHERE db=?", (bytes(db),)).fetchone()
        log = self._log_cache[db] = SqliteLogStore(self, int(row[0]))
        return log

    def set_name(self, name: str, db: Cid) -> None:
        with self.transaction():
            self._conn_().execute(
                "INSERT OR REPLACE INTO names(name, db) VALUES (?, ?)", (name, bytes(db))
            )

    def get_name(self, name: str) -> Cid | None:
        row = self._conn_().execute("SELECT db FROM names WHERE name=?", (name,)).fetchone()
        return None if row is None else _stored_cid(row[0])

    def names(self) -> dict[str, Cid]:
        rows = self._conn_().execute("SELECT name, db FROM names ORDER BY name").fetchall()
        return {n: _stored_cid(d) for n, d in rows}

    def get_checkpoint(self, db: Cid, view: str) -> int:
        log = self.log_store(db).log_id
        row = (
            self._conn_()
            .execute("SELECT seq FROM view_checkpoints WHERE log=? AND view=?", (log, view))
            .fetchone()
        )
        return 0 if row is None else int(row[0])

    def set_checkpoint(self, db: Cid, view: str, seq: int) -> None:
        log = self.log_store(db).log_id
        with self.transaction():
            self._conn_().execute(
                "INSERT OR REPLACE INTO view_checkpoints(log, view, seq) VALUES (?, ?, ?)",
                (log, view, seq),
            )

    def databases(self) -> list[Cid]:
        rows = self._conn_().execute("SELECT db FROM logs ORDER BY id").fetchall()
        return [_stored_cid(r[0]) for r in rows]

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                if self._depth:
                    conn.execute("ROLLBACK")
                conn.execute("PRAGMA optimize")
            finally:
                conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Transaction:
    """The outermost transaction of a store (:meth:`SqliteStore.transaction`): a class,
    not a generator, since every single write opens one."""

    __slots__ = ("_conn", "_store")

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._conn = store._conn_()

    def __enter__(self) -> None:
        store, conn = self._store, self._conn
        try:
            with conn.guarded() as cur:
                cur.execute("BEGIN IMMEDIATE")
        except StorageError as exc:
            raise StorageError(f"cannot start a transaction on {store.path}: {exc}") from exc
        store._depth = 1

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        store, conn = self._store, self._conn
        store._depth = 0
        if exc is not None:
            if conn.in_transaction:  # SQLite may already have rolled back on its own
                conn.execute("ROLLBACK")
            return
        try:
            with conn.guarded() as cur:
                cur.execute("COMMIT")
        except StorageError as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise type(error)(f"commit failed on {store.path}: {error}") from error


def _stored_cid(raw: object) -> Cid:
    """A CID read back from our own tables (StorageCorruptedError if it was damaged)."""
    try:
        cid = Cid(bytes(raw))  # type: ignore[call-overload]
    except (InvalidCidError, TypeError) as exc:
        raise StorageCorruptedError(f"a stored CID is damaged: {exc}") from exc
    if not cid.is_block_cid:  # we store only these; a damaged one may still be well-formed
        raise StorageCorruptedError(f"a stored CID is damaged: {cid.kind} is not ours")
    return cid


def _decode_frontier(raw: bytes) -> tuple[Cid, ...]:
    try:
        value = codec.decode(raw)
    except DecodeError as exc:
        raise StorageCorruptedError(f"a stored ACL frontier is damaged: {exc}") from exc
    if not isinstance(value, list) or not all(isinstance(c, Cid) for c in value):
        raise StorageCorruptedError("a stored ACL frontier is not a list of CIDs")
    return tuple(value)


def _migrate_2_to_3(conn: Connection) -> None:
    """Add ``entries.has_child``: decode every entry's ``next`` once and mark its parents.
    A block that no longer decodes marks nothing (``orbitstore check`` reports it)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("ALTER TABLE entries ADD COLUMN has_child INTEGER NOT NULL DEFAULT 0")
        mark_parents(conn, None)
        conn.execute("UPDATE meta SET value=? WHERE key='schema'", (SCHEMA_VERSION,))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def mark_parents(conn: Connection, log_id: int | None) -> None:
    """Set ``has_child`` from the ``next`` field of every stored entry (of one log, or of
    all of them) — a full decode; for migrations and repairs, never on a normal open."""
    where, params = ("WHERE e.log=?", (log_id,)) if log_id is not None else ("", ())
    conn.execute(f"UPDATE entries SET has_child=0 {where.replace('e.', '')}", params)
    cur = conn.execute(
        f"SELECT e.log, b.data FROM entries e JOIN blocks b ON b.id = e.block {where}", params
    )
    marks: list[tuple[bytes, int]] = []
    while rows := cur.fetchmany(1024):
        for log, data in rows:
            marks.extend((bytes(p), int(log)) for p in _parents(bytes(data)))
        conn.executemany(_MARK_PARENT, marks)
        marks = []


def _parents(block: bytes) -> list[Cid]:
    try:
        fields = codec.decode(block, check_nesting=False)
    except DecodeError:
        return []
    parents = fields.get("next") if isinstance(fields, dict) else None
    if not isinstance(parents, list):
        return []
    return [p for p in parents if isinstance(p, Cid)]
