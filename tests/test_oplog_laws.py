"""The merge laws of the op-log, and convergence of replicas under any delivery order."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.storage.memory import MemoryStore

IDENTITIES = [Identity(bytes([10 + n]) * 32) for n in range(4)]
ACCESS = StaticAccess.of(["*"])
DB = Manifest(name="laws", type="log", access=ACCESS).to_block()[0]


def new_log(identity: Identity | None = None) -> OpLog:
    return OpLog(db=DB, access=ACCESS, store=MemoryStore().log_store(DB), identity=identity)


def clone(log: OpLog) -> OpLog:
    copy = new_log(log.identity)
    copy.receive_entries(log.traverse())
    return copy


def joined(*logs: OpLog) -> OpLog:
    """A new log: the first joined with each of the others, in order."""
    result = clone(logs[0])
    for other in logs[1:]:
        result.join(other)
    return result


def state(log: OpLog) -> tuple[frozenset[Cid], list[Cid]]:
    return log.heads, [e.cid for e in log.traverse()]


def total_order(entries: Iterable[Entry]) -> list[Cid]:
    return [e.cid for e in sorted(entries, key=lambda e: e.order_key)]


def heads_of(entries: Iterable[Entry]) -> frozenset[Cid]:
    entries = list(entries)
    named = {p for e in entries for p in e.next}
    return frozenset(e.cid for e in entries if e.cid not in named)


def ancestors(entries: dict[Cid, Entry], heads: Iterable[Cid]) -> set[Cid]:
    found: set[Cid] = set()
    stack = list(heads)
    while stack:
        cid = stack.pop()
        if cid not in found:
            found.add(cid)
            stack.extend(entries[cid].next)
    return found


def check_log(log: OpLog) -> None:
    """What must hold of any single log at any time."""
    entries = list(log.traverse())
    cids = [e.cid for e in entries]
    assert len(set(cids)) == len(cids) == len(log)
    assert cids == total_order(entries)
    assert log.heads == heads_of(entries)
    assert log.head_clocks == {e.cid: e.clock for e in entries if e.cid in log.heads}
    assert ancestors({e.cid: e for e in entries}, log.heads) == set(cids)  # closed
    assert not any(log.has(c) for c in log.needed)


# -- join laws --------------------------------------------------------------------------

Program = list[tuple[str, int, int]]

programs = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 2), st.integers(1, 3)),
        st.tuples(st.just("join"), st.integers(0, 2), st.integers(0, 2)),
        st.tuples(st.just("prefix"), st.integers(0, 2), st.integers(0, 2)),
    ),
    max_size=14,
)


def run(program: Program) -> list[OpLog]:
    """Three replicas that append and (fully or partly) sync as ``program`` says."""
    logs = [new_log(IDENTITIES[n]) for n in range(3)]
    for step, (op, a, b) in enumerate(program):
        if op == "append":
            logs[a].append_many([{"step": step, "i": i} for i in range(b)])
        elif op == "join":
            logs[b].join(logs[a])
        else:  # the older half of a's entries: a prefix of the total order is closed
            entries = list(logs[a].traverse())
            logs[b].receive_entries(entries[: len(entries) // 2])
    return logs


@settings(max_examples=60)
@given(programs)
def test_join_is_commutative(program: Program) -> None:
    a, b, _ = run(program)
    ab, ba = joined(a, b), joined(b, a)
    assert state(ab) == state(ba)
    assert state(ab)[1] == total_order({*a.traverse(), *b.traverse()})
    check_log(ab)


@settings(max_examples=60)
@given(programs)
def test_join_is_associative(program: Program) -> None:
    a, b, c = run(program)
    left = joined(joined(a, b), c)
    right = joined(a, joined(b, c))
    assert state(left) == state(right)
    check_log(left)


@settings(max_examples=60)
@given(programs)
def test_join_is_idempotent(program: Program) -> None:
    a, b, _ = run(program)
    assert state(joined(a, a)) == state(a)
    ab = joined(a, b)
    assert state(joined(ab, b)) == state(ab)
    assert state(joined(ab, a)) == state(ab)
    again = ab.join(a)
    assert again.added == again.rejected == ()


# -- replicas under any delivery order -----------------------------------------------------


class Replication(RuleBasedStateMachine):
    """2-4 replicas append concurrently and exchange entry blocks over a lossy network
    that reorders, duplicates and drops messages. After a full exchange, all agree."""

    logs: list[OpLog]
    inbox: list[list[tuple[Cid, bytes]]]

    @initialize(n=st.integers(2, 4))
    def start(self, n: int) -> None:
        self.logs = [new_log(IDENTITIES[i]) for i in range(n)]
        self.inbox = [[] for _ in range(n)]
        self.appended = 0

    def _replica(self, data: st.DataObject, label: str) -> int:
        return data.draw(st.integers(0, len(self.logs) - 1), label=label)

    @rule(data=st.data(), count=st.integers(1, 3))
    def append(self, data: st.DataObject, count: int) -> None:
        i = self._replica(data, "writer")
        payloads: list[Any] = [{"n": self.appended + k} for k in range(count)]
        self.appended += count
        if count == 1:
            self.logs[i].append(payloads[0])
        else:
            self.logs[i].append_many(payloads)

    @rule(data=st.data())
    def send(self, data: st.DataObject) -> None:
        """Some of src's entries, in any order, possibly repeated, go to dst's inbox."""
        src, dst = self._replica(data, "src"), self._replica(data, "dst")
        entries = list(self.logs[src].traverse())
        if src == dst or not entries:
            return
        chosen = data.draw(st.lists(st.sampled_from(entries), max_size=8), label="sent")
        self.inbox[dst].extend((e.cid, e.block) for e in chosen)

    @precondition(lambda self: any(self.inbox))
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        dst = data.draw(st.sampled_from([i for i, box in enumerate(self.inbox) if box]))
        box = self.inbox[dst]
        order = data.draw(st.permutations(range(len(box))), label="order")
        k = data.draw(st.integers(1, len(box)), label="how many")
        picked = [box[i] for i in order[:k]]
        self.inbox[dst] = [box[i] for i in order[k:]]
        result = self.logs[dst].receive(picked)
        assert result.rejected == ()
        assert result.dropped == ()
        for entry in result.added:
            assert self.logs[dst].has(entry.cid)

    @precondition(lambda self: any(self.inbox))
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        dst = data.draw(st.sampled_from([i for i, box in enumerate(self.inbox) if box]))
        i = data.draw(st.integers(0, len(self.inbox[dst]) - 1), label="dropped")
        del self.inbox[dst][i]

    @invariant()
    def each_log_is_consistent(self) -> None:
        for log in getattr(self, "logs", []):
            check_log(log)

    def teardown(self) -> None:
        if not hasattr(self, "logs"):
            return
        before = [log.heads for log in self.logs]
        union: dict[Cid, Entry] = {}
        for log in self.logs:
            union.update((e.cid, e) for e in log.traverse())
        # Redeliver everything, children first, so every replica has to hold and resolve.
        blocks = [(e.cid, e.block) for e in sorted(union.values(), key=lambda e: e.order_key)]
        for log in self.logs:
            result = log.receive(reversed(blocks))
            assert result.rejected == ()
            assert result.needed == frozenset()
            assert log.pending_count == 0
        expected = total_order(union.values())
        for log in self.logs:
            check_log(log)
            assert log.heads == heads_of(union.values())
            assert [e.cid for e in log.traverse()] == expected
            assert [e.cid for e in log.traverse(reverse=True)] == expected[::-1]
            assert [e.cid for e in log.traverse(limit=3)] == expected[:3]
            assert [e.cid for e in log.traverse(reverse=True, limit=3)] == expected[::-1][:3]
        log = self.logs[0]
        for heads in [*before, *({e.cid} for e in list(union.values())[:10])]:
            if not heads:
                continue
            want = [c for c in expected if c in ancestors(union, heads)]
            assert [e.cid for e in log.traverse(heads)] == want
            assert [e.cid for e in log.traverse(heads, reverse=True)] == want[::-1]
            assert [e.cid for e in log.traverse(heads, limit=2)] == want[:2]
            assert [e.cid for e in log.traverse(heads, reverse=True, limit=2)] == want[::-1][:2]


Replication.TestCase.settings = settings(max_examples=60, stateful_step_count=25)
test_replicas_converge = Replication.TestCase
