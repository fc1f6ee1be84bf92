"""SqliteLogStore.add_entries keeps ``has_child`` and the block links exact on every
path: parents in the same call, parents from earlier calls, entries stored twice, the
same block in two logs (differential against the definition)."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from orbitstore.core.access import StaticAccess
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.storage.sqlite import SqliteStore

WRITERS = [Identity(bytes([70 + n]) * 32) for n in range(2)]
ACCESS = StaticAccess.of(["*"])
DB = Manifest(name="flags", type="log", access=ACCESS).to_block()[0]
OTHER = Manifest(name="flags-2", type="log", access=ACCESS).to_block()[0]


def dag(plan: list[tuple[int, list[int]]]) -> list[Entry]:
    made: list[Entry] = []
    for writer, parents in plan:
        nxt = {made[p % len(made)] for p in parents} if made else set()
        made.append(
            Entry.create(
                WRITERS[writer],
                db=DB,
                clock=max((e.clock for e in nxt), default=0) + 1,
                next=[e.cid for e in nxt],
                payload=len(made),
            )
        )
    return made


#: DAG shapes for :func:`dag`: per entry, which earlier ones (by index) it follows.
PLANS = st.lists(
    st.tuples(st.integers(0, 1), st.lists(st.integers(0, 40), max_size=2)),
    min_size=1,
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(
    plan=PLANS,
    cuts=st.lists(st.integers(0, 20), max_size=5),
    repeats=st.lists(st.integers(0, 40), max_size=4),
    share=st.booleans(),
)
def test_flags_and_links_are_exact(
    plan: list[tuple[int, list[int]]], cuts: list[int], repeats: list[int], share: bool
) -> None:
    entries = dag(plan)
    store = SqliteStore.in_memory()
    try:
        if share:  # some blocks already stored by another log (other ids, other rows)
            store.log_store(OTHER).add_entries(entries[::2])
        log = store.log_store(DB)
        bounds = sorted({0, len(entries), *(min(c, len(entries)) for c in cuts)})
        done: list[Entry] = []
        for lo, hi in pairwise(bounds):
            # a call: a slice in causal order, plus some already stored entries again
            again = [done[r % len(done)] for r in repeats] if done else []
            log.add_entries([*again, *entries[lo:hi], *entries[lo:hi][:1]])
            done.extend(entries[lo:hi])
        conn = store._conn_()
        named = {p for e in entries for p in e.next}
        rows = conn.execute(
            "SELECT e.cid, e.has_child, b.cid, b.data FROM entries e JOIN blocks b"
            " ON b.id = e.block WHERE e.log=?",
            (log.log_id,),
        ).fetchall()
        by_raw = {bytes(e.cid): e for e in entries}
        assert len(rows) == len(entries) == log.count()
        for cid, has_child, block_cid, data in rows:
            entry = by_raw[bytes(cid)]
            assert bytes(block_cid) == bytes(cid) and bytes(data) == entry.block
            assert bool(has_child) == (entry.cid in named)
    finally:
        store.close()


def _check_flags(store: SqliteStore, log_id: int, entries: list[Entry]) -> None:
    named = {p for e in entries for p in e.next}
    rows = (
        store._conn_()
        .execute(
            "SELECT e.cid, e.has_child, b.cid, b.data FROM entries e JOIN blocks b"
            " ON b.id = e.block WHERE e.log=?",
            (log_id,),
        )
        .fetchall()
    )
    by_raw = {bytes(e.cid): e for e in entries}
    assert len(rows) == len(entries)
    for cid, has_child, block_cid, data in rows:
        entry = by_raw[bytes(cid)]
        assert bytes(block_cid) == bytes(cid) and bytes(data) == entry.block
        assert bool(has_child) == (entry.cid in named)


@settings(max_examples=60, deadline=None)
@given(
    plan=PLANS,
    repeats=st.lists(st.integers(0, 40), max_size=6),
    share=st.booleans(),
)
def test_single_entry_calls_are_exact(
    plan: list[tuple[int, list[int]]], repeats: list[int], share: bool
) -> None:
    """One entry per call (the single-append path: no id lookup), stored twice, or with
    its block already stored by another log: the same rows, flags and count."""
    entries = dag(plan)
    store = SqliteStore.in_memory()
    try:
        if share:
            for entry in entries[1::2]:
                store.log_store(OTHER).add_entries([entry])
        log = store.log_store(DB)
        for i, entry in enumerate(entries):
            log.add_entries([entry])
            for r in repeats:
                if r % (i + 1) == 0:
                    log.add_entries([entries[r % (i + 1)]])  # already stored: a no-op
        assert log.count() == len(entries)
        _check_flags(store, log.log_id, entries)
        if share:
            _check_flags(store, store.log_store(OTHER).log_id, entries[1::2])
    finally:
        store.close()


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 3), min_size=1, max_size=8))
def test_set_heads_replaces_every_head(sizes: list[int]) -> None:
    """Whatever the log's heads were (none, one, several), set_heads leaves exactly the
    given ones, and another log's heads are untouched."""
    entries = dag([(n % 2, []) for n in range(6)])
    store = SqliteStore.in_memory()
    try:
        log, other = store.log_store(DB), store.log_store(OTHER)
        other.set_heads({entries[5].cid: 9})
        for k, size in enumerate(sizes):
            heads = {e.cid: k + i for i, e in enumerate(entries[k % 3 : k % 3 + size])}
            log.set_heads(heads)
            assert log.get_heads() == heads
        assert other.get_heads() == {entries[5].cid: 9}
    finally:
        store.close()
