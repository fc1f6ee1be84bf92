"""Stateful property: any interleaving of batches (nested, failing), appends and
receives on several databases of one node — some receives from a task outside every
batch, as replication makes them — leaves the in-memory state equal to the state after
closing and reopening the node, and subscribers see exactly the committed changes.

Hypothesis draws each step from the steps possible in the current state (``st.data()``),
and one trio run executes them: a batch stays open across steps, which a synchronous
``RuleBasedStateMachine`` cannot hold.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from functools import cache
from pathlib import Path
from typing import Any

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.node import NodeConfig, open_node
from orbitstore.node.database import Database
from orbitstore.node.keyvalue import KeyValue
from orbitstore.node.node import Node
from orbitstore.node.subscription import Subscription
from orbitstore.node.verify import MIN_BLOCKS_FOR_THREADS
from orbitstore.storage.memory import MemoryStore
from orbitstore.views.base import Lagged
from orbitstore.views.keyvalue import put_op

ME = Identity(b"\x01" * 32)
PEER = Identity(b"\x02" * 32)
CONFIG = NodeConfig(timestamps=False)
DATABASES = (("l1", "log"), ("l2", "log"), ("kv", "keyvalue"))
CHAIN = MIN_BLOCKS_FOR_THREADS + 6  # a whole chain at once takes the pipelined path
MAX_DEPTH = 3


class Boom(Exception):
    pass


@cache
def peer_chain(name: str, type_name: str) -> tuple[Entry, ...]:
    """Entries by PEER on database ``name`` (as the node creates it), each on the last."""
    db = Manifest(name=name, type=type_name, access=StaticAccess.of(["*"]), meta={}).to_block()
    out: list[Entry] = []
    for i in range(CHAIN):
        payload = put_op(f"k{i % 5}", i) if type_name == "keyvalue" else i
        out.append(
            Entry.create(
                PEER, db=db[0], clock=i + 1, next=[out[-1].cid] if out else [], payload=payload
            )
        )
    return tuple(out)


def stored(db: Database) -> tuple[Any, ...]:
    items = dict(db.items()) if isinstance(db, KeyValue) else None
    return (dict(db.log.head_clocks), len(db), [e.cid for e in db.entries()], items)


class Run:
    """The node under test, the open batches, and the model of what must be held."""

    def __init__(self, node: Node, dbs: list[Database], subs: list[Subscription]) -> None:
        self.node = node
        self.dbs = dbs
        self.subs = subs
        self.batches: list[tuple[AbstractAsyncContextManager[None], list[set[Cid]]]] = []
        self.offered: list[set[Cid]] = [set() for _ in dbs]  # in committed receives
        self.published: list[Counter[Cid]] = [Counter() for _ in dbs]

    def offer(self, i: int, cids: set[Cid]) -> None:
        if self.batches:
            self.batches[-1][1][i] |= cids
        else:
            self.offered[i] |= cids

    async def open_batch(self, i: int) -> None:
        cm = self.dbs[i].batch()
        await cm.__aenter__()
        if not self.batches:  # what committed before the batch took the lock
            self.collect()
        self.batches.append((cm, [set() for _ in self.dbs]))

    async def close_batch(self, fail: bool) -> None:
        cm, offered = self.batches.pop()
        if fail:
            try:
                raise Boom
            except Boom as exc:
                assert not await cm.__aexit__(Boom, exc, exc.__traceback__)
            return
        await cm.__aexit__(None, None, None)
        for i, cids in enumerate(offered):
            self.offer(i, cids)

    def collect(self) -> int:
        """Count what subscribers received since the last call; how many that was."""
        new = 0
        for i, sub in enumerate(self.subs):
            while (item := sub.receive_nowait()) is not None:
                assert not isinstance(item, Lagged)
                self.published[i][item.cid] += 1
                new += 1
        return new


def opener(where: Path | MemoryStore) -> AbstractAsyncContextManager[Node]:
    if isinstance(where, MemoryStore):
        return open_node(store=where, identity=ME, config=CONFIG)
    return open_node(where, identity=ME, config=CONFIG)


async def play(data: st.DataObject, where: Path | MemoryStore) -> list[tuple[Any, ...]]:
    chains = [peer_chain(name, kind) for name, kind in DATABASES]
    async with opener(where) as node, AsyncExitStack() as subs:
        dbs = [await node.open(name, type=kind, write=["*"]) for name, kind in DATABASES]
        run = Run(node, dbs, [await subs.enter_async_context(d.subscribe()) for d in dbs])
        jobs_in, jobs_out = trio.open_memory_channel[tuple[int, list[Entry]]](100)

        async def replication() -> None:  # started before any batch: outside all of them
            async with jobs_out:
                async for i, entries in jobs_out:
                    await dbs[i].receive([(e.cid, e.block) for e in entries])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(replication)
            for _ in range(data.draw(st.integers(1, 14), label="steps")):
                steps = ["append", "receive", "background receive"]
                steps += ["open batch"] if len(run.batches) < MAX_DEPTH else []
                steps += ["close batch", "fail batch"] if run.batches else []
                step = data.draw(st.sampled_from(steps), label="step")
                i = data.draw(st.integers(0, len(dbs) - 1), label="database")
                if step == "append":
                    payload = put_op("mine", 0) if isinstance(dbs[i], KeyValue) else "mine"
                    await dbs[i].append(payload)
                elif step in ("receive", "background receive"):
                    if data.draw(st.booleans(), label="whole chain"):
                        order = data.draw(st.permutations(range(CHAIN)), label="order")
                    else:
                        idx = st.integers(0, CHAIN - 1)
                        order = data.draw(st.lists(idx, min_size=1, max_size=6, unique=True))
                    entries = [chains[i][n] for n in order]
                    if step == "receive":
                        run.offer(i, {e.cid for e in entries})
                        await dbs[i].receive([(e.cid, e.block) for e in entries])
                    else:  # it commits after every batch now open: outside them
                        run.offered[i] |= {e.cid for e in entries}
                        await jobs_in.send((i, entries))
                elif step == "open batch":
                    await run.open_batch(i)
                else:
                    await run.close_batch(fail=step == "fail batch")
                if run.batches:  # nothing commits while a batch is open
                    assert not run.collect(), "a change was published before its commit"
            while run.batches:
                await run.close_batch(fail=data.draw(st.booleans(), label="fail at end"))
            await jobs_in.aclose()
        run.collect()
        for i, db in enumerate(dbs):
            cids = {e.cid for e in db.entries()}
            assert set(db.log._pending) == run.offered[i] - cids
            assert all(n == 1 for n in run.published[i].values()), "published twice"
            if db.type == "log":
                assert set(run.published[i]) == cids
            else:
                assert set(run.published[i]) <= cids
        return [(*stored(db), db.log.pending_count, db.log.needed) for db in dbs]


async def reopen(where: Path | MemoryStore) -> list[tuple[Any, ...]]:
    async with opener(where) as node:
        dbs = [await node.open(name, type=kind) for name, kind in DATABASES]
        return [stored(db) for db in dbs]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_memory_follows_the_store_through_any_interleaving(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        in_memory = trio.run(play, data, home)
        on_disk = trio.run(reopen, home)
    assert [state[:4] for state in in_memory] == on_disk


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_memory_store_rolls_back_alike(data: st.DataObject) -> None:
    """The same on a memory node reopened on its store: its transactions roll back too
    (view states are rebuilt from the log after a rollback)."""
    store = MemoryStore()
    in_memory = trio.run(play, data, store)
    assert [state[:4] for state in in_memory] == trio.run(reopen, store)
