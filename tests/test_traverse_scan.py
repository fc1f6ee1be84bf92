"""OpLog.traverse(heads): the reverse scan of the store, and the forward scan that skips
what a walk back from the current heads found missing, give exactly the ancestors of
``heads`` in total order, on both stores (differential against a direct walk)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orbitstore.core import oplog
from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.errors import StorageCorruptedError, UsageError
from orbitstore.storage.base import NodeStore
from orbitstore.storage.memory import MemoryStore
from orbitstore.storage.sqlite import SqliteStore

WRITERS = [Identity(bytes([40 + n]) * 32) for n in range(3)]
ACCESS = StaticAccess.of(["*"])
DB = Manifest(name="scan", type="log", access=ACCESS).to_block()[0]

# A plan step: (writer, which earlier entries it builds on, as indexes mod the count).
steps = st.lists(
    st.tuples(st.integers(0, 2), st.lists(st.integers(0, 50), max_size=3)),
    min_size=1,
    max_size=25,
)


def build(store: NodeStore, plan: list[tuple[int, list[int]]]) -> tuple[OpLog, list[Entry]]:
    log = OpLog(db=DB, access=ACCESS, store=store.log_store(DB))
    made: list[Entry] = []
    for writer, parents in plan:
        nxt = sorted({made[p % len(made)] for p in parents} if made else (), key=Entry.__hash__)
        entry = Entry.create(
            WRITERS[writer],
            db=DB,
            clock=max((e.clock for e in nxt), default=0) + 1,
            next=[e.cid for e in nxt],
            payload=len(made),
        )
        made.append(entry)
        log.receive_entries([entry])
    return log, made


def ancestry(made: list[Entry], heads: set[Cid]) -> list[Cid]:
    by_cid = {e.cid: e for e in made}
    found: set[Cid] = set()
    stack = list(heads)
    while stack:
        cid = stack.pop()
        if cid not in found:
            found.add(cid)
            stack.extend(by_cid[cid].next)
    return [e.cid for e in sorted(made, key=lambda e: e.order_key) if e.cid in found]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
# the exclusion walk's lookups: 0 = always the reverse scan, 3 = either, 256 = the walk
@pytest.mark.parametrize("walk", [0, 3, 256])
@settings(max_examples=40, deadline=None)
@given(plan=steps, picks=st.lists(st.integers(0, 50), min_size=1, max_size=4))
def test_traverse_heads_is_the_ancestry(
    kind: str, walk: int, plan: list[tuple[int, list[int]]], picks: list[int]
) -> None:
    store: NodeStore = MemoryStore() if kind == "memory" else SqliteStore.in_memory()
    budget = oplog._EXCLUSION_WALK
    oplog._EXCLUSION_WALK = walk
    try:
        log, made = build(store, plan)
        heads = {made[p % len(made)].cid for p in picks}
        want = ancestry(made, heads)
        assert [e.cid for e in log.traverse(heads)] == want
        assert [e.cid for e in log.traverse(heads, reverse=True)] == want[::-1]
        assert [e.cid for e in log.traverse(heads, limit=3)] == want[:3]
        assert [e.cid for e in log.traverse(heads, reverse=True, limit=3)] == want[::-1][:3]
        assert list(log.traverse(set())) == []
        # The current heads (the announcer's inline walk): a scan of the whole log.
        current = set(log.heads)
        every = ancestry(made, current)
        assert every == [e.cid for e in sorted(made, key=lambda e: e.order_key)]
        assert [e.cid for e in log.traverse(current)] == every
        assert [e.cid for e in log.traverse(current, reverse=True, limit=3)] == every[::-1][:3]
        # Parents link the very objects of the entries they name (one CID per link).
        got = {e.cid: e for e in log.traverse(heads)}
        assert all(got[p] is not None and p is got[p].cid for e in got.values() for p in e.next)
    finally:
        oplog._EXCLUSION_WALK = budget
        store.close()


def test_an_unknown_head_is_a_usage_error() -> None:
    store = MemoryStore()
    log, made = build(store, [(0, []), (1, [0])])
    with pytest.raises(UsageError):
        list(log.traverse({made[0].cid, Cid.for_block(b"not an entry")}))


@pytest.mark.parametrize("walk", [0, 256])
def test_a_damaged_link_in_a_stored_entry_is_storage_corruption(walk: int) -> None:
    """The shared link cache checks a link as the decoder would: a stored entry whose
    parent link no longer parses is StorageCorruptedError, whichever scan meets it."""
    store = MemoryStore()
    log, made = build(store, [(0, []), (1, [0]), (2, [1])])
    child = made[1]
    at = child.block.index(bytes(made[0].cid))
    damaged = child.block[:at] + b"\x09" + child.block[at + 1 :]  # CID version 9
    assert len(damaged) == len(child.block)
    store.blocks._blocks[child.cid] = damaged  # type: ignore[attr-defined]  # a bad disk
    budget = oplog._EXCLUSION_WALK
    oplog._EXCLUSION_WALK = walk
    try:
        with pytest.raises(StorageCorruptedError):
            list(log.traverse({made[1].cid}))
    finally:
        oplog._EXCLUSION_WALK = budget
