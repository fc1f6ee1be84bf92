from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import orbitstore
from orbitstore.core.access import StaticAccess
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.errors import InvalidValueError
from orbitstore.node.counter import Counter
from orbitstore.storage.memory import MemoryStore
from orbitstore.storage.views.counter import MemoryCounterState
from orbitstore.views.base import Change
from orbitstore.views.counter import CounterView, increment_op


async def test_counter_persists_without_replay(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        c = await node.open("hits", type="counter")
        assert isinstance(c, Counter)
        assert await c.increment() == 1
        assert await c.increment(41) == 42
        assert await c.decrement(2) == 40
        address = c.address
    async with orbitstore.open_node(tmp_path) as node:
        c = await node.open(address, type="counter")
        assert isinstance(c, Counter)
        assert c.value == 40
        assert c.statistics().reapplied_on_open == 0


async def test_counter_rejects_bad_increments() -> None:
    async with orbitstore.open_node() as node:
        c = await node.open("c", type="counter")
        assert isinstance(c, Counter)
        for bad in (1.5, "1", True, 2**63):
            with pytest.raises(InvalidValueError):
                await c.increment(bad)  # type: ignore[arg-type]
        assert c.value == 0 and len(c) == 0


async def test_counter_change_notifications() -> None:
    async with orbitstore.open_node() as node:
        c = await node.open("c", type="counter")
        assert isinstance(c, Counter)
        async with c.subscribe() as changes:
            await c.increment(5)
            await c.increment(-2)
            got = [changes.receive_nowait(), changes.receive_nowait()]
        assert all(isinstance(x, Change) for x in got)
        assert [(x.kind, x.key, x.value) for x in got if isinstance(x, Change)] == [
            ("increment", 5, 5),
            ("increment", -2, 3),
        ]


def _replica(seed: int, db_seed: int = 0) -> tuple[OpLog, CounterView]:
    access = StaticAccess.of(["*"])
    db, _ = Manifest(name=f"c{db_seed}", type="counter", access=access).to_block()
    store = MemoryStore()
    log = OpLog(
        db=db, access=access, store=store.log_store(db), identity=Identity(bytes([seed]) * 32)
    )
    return log, CounterView(MemoryCounterState())


@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(-1000, 1000)), max_size=30),
    st.randoms(use_true_random=False),
)
def test_counter_converges_under_any_delivery_order(
    ops: list[tuple[int, int]], rnd: random.Random
) -> None:
    replicas = [_replica(i + 1) for i in range(3)]
    written = []
    for who, by in ops:
        log, view = replicas[who]
        entries = log.append_many([increment_op(by)])
        view.apply(entries, local=True)
        written.extend(entries)
    for log, view in replicas:
        delivery = written + rnd.sample(written, k=min(5, len(written)))  # with duplicates
        rnd.shuffle(delivery)
        for e in delivery:
            view.apply(log.receive_entries([e]).added, local=False)
    expected = sum(by for _, by in ops)
    assert [view.value for _, view in replicas] == [expected] * 3
    assert len({log.heads for log, _ in replicas}) == 1


@pytest.mark.parametrize("n", [3, 100])  # below and above the threaded-verify threshold
async def test_database_receive_applies_the_view(n: int) -> None:
    async with orbitstore.open_node() as a, orbitstore.open_node() as b:
        ca = await a.open("shared", type="counter", write=["*"])
        for _ in range(n):
            await ca.increment(2)
        a_manifest = a.store.blocks.get(ca.cid)
        assert a_manifest is not None
        b.store.blocks.put(ca.cid, a_manifest)
        cb = await b.open(ca.address, type="counter")
        assert isinstance(cb, Counter)
        async with cb.subscribe() as changes:
            result = await cb.receive((e.cid, e.block) for e in ca.entries())
            assert len(result.added) == n
            assert cb.value == 2 * n
            assert sum(1 for _ in range(n) if changes.receive_nowait() is not None) == n
