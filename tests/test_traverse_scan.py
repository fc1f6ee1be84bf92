"""OpLog.traverse(heads): the reverse scan of the store gives exactly the ancestors of
``heads`` in total order, on both stores (differential against a direct walk)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.errors import UsageError
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
@settings(max_examples=40, deadline=None)
@given(plan=steps, picks=st.lists(st.integers(0, 50), min_size=1, max_size=4))
def test_traverse_heads_is_the_ancestry(
    kind: str, plan: list[tuple[int, list[int]]], picks: list[int]
) -> None:
    store: NodeStore = MemoryStore() if kind == "memory" else SqliteStore.in_memory()
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
    finally:
        store.close()


def test_an_unknown_head_is_a_usage_error() -> None:
    store = MemoryStore()
    log, made = build(store, [(0, []), (1, [0])])
    with pytest.raises(UsageError):
        list(log.traverse({made[0].cid, Cid.for_block(b"not an entry")}))
