"""The op-log's in-memory state follows the store exactly (oplog Rule 5): a store that
raises leaves the log as it was, ``all_or_nothing`` refuses a whole call, and a snapshot
taken before a rolled-back transaction restores the log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.errors import ClockError, InvalidParentsError, StorageError
from orbitstore.storage.memory import MemoryLogStore, MemoryStore

ALICE = Identity(bytes([1]) * 32)
BOB = Identity(bytes([2]) * 32)
ACCESS = StaticAccess.of([ALICE.id, BOB.id])
DB = Manifest(name="atomic", type="log", access=ACCESS).to_block()[0]
NEVER = Cid.for_block(b"never delivered")


class FailingLogStore(MemoryLogStore):
    """A memory log store whose writes raise while ``fail`` is set."""

    fail = False

    def add_entries(self, entries: Sequence[Entry]) -> None:
        if self.fail:
            raise StorageError("disk full")
        super().add_entries(entries)

    def set_heads(self, heads: Mapping[Cid, int]) -> None:
        if self.fail:
            raise StorageError("disk full")
        super().set_heads(heads)


def state(log: OpLog) -> tuple[Any, ...]:
    """Everything the log keeps in memory, as plain values."""
    return (
        dict(log._heads),
        dict(log._pending),
        {p: set(w) for p, w in log._waiting.items()},
        dict(log._invalid),
        len(log),
    )


def make_log() -> tuple[OpLog, FailingLogStore]:
    store = FailingLogStore(MemoryStore().blocks)
    log = OpLog(db=DB, access=ACCESS, store=store, identity=ALICE)
    log.append("root")
    return log, store


def entries_on(log: OpLog) -> dict[str, Entry]:
    """A little zoo on top of ``log``: applicable, held, invalid and descendants."""
    (head,) = log.heads
    ok = Entry.create(BOB, db=DB, clock=2, next=[head], payload="ok")
    ok_child = Entry.create(BOB, db=DB, clock=3, next=[ok.cid], payload="ok child")
    orphan = Entry.create(BOB, db=DB, clock=9, next=[NEVER], payload="orphan")
    bad_clock = Entry.create(BOB, db=DB, clock=7, next=[head], payload="bad clock")
    bad_child = Entry.create(BOB, db=DB, clock=8, next=[bad_clock.cid], payload="bad child")
    return {
        "ok": ok,
        "ok_child": ok_child,
        "orphan": orphan,
        "bad_clock": bad_clock,
        "bad_child": bad_child,
    }


def test_a_failing_store_leaves_the_log_unchanged() -> None:
    log, store = make_log()
    zoo = entries_on(log)
    log.receive_entries([zoo["orphan"]])  # something already held
    before = state(log)
    store.fail = True
    with pytest.raises(StorageError):
        log.receive_entries([zoo["bad_child"], zoo["ok_child"], zoo["ok"], zoo["bad_clock"]])
    assert state(log) == before
    with pytest.raises(StorageError):
        log.append("local")
    assert state(log) == before
    store.fail = False
    result = log.receive_entries(list(zoo.values()))
    assert {e.cid for e in result.added} == {zoo["ok"].cid, zoo["ok_child"].cid}


@settings(max_examples=60, deadline=None)
@given(
    order=st.permutations(["ok", "ok_child", "orphan", "bad_clock", "bad_child"]),
    take=st.integers(min_value=1, max_value=5),
    first=st.integers(min_value=0, max_value=5),
)
def test_a_failing_store_never_moves_memory(order: list[str], take: int, first: int) -> None:
    """Whatever was held or refused before, a call whose store write raises changes no
    in-memory state (a call that writes nothing does not reach the store)."""
    log, store = make_log()
    zoo = entries_on(log)
    log.receive_entries([zoo[name] for name in order[:first]])
    before = state(log)
    store.fail = True
    try:
        log.receive_entries([zoo[name] for name in order[:take]])
    except StorageError:
        assert state(log) == before
    else:
        assert len(log) == before[4]


def test_all_or_nothing_refuses_the_whole_call() -> None:
    log, _ = make_log()
    zoo = entries_on(log)
    before = state(log)
    result = log.receive_entries(
        [zoo["ok"], zoo["ok_child"], zoo["orphan"], zoo["bad_clock"], zoo["bad_child"]],
        all_or_nothing=True,
    )
    assert result.added == ()
    assert {r.cid: type(r.error) for r in result.rejected} == {
        zoo["bad_clock"].cid: ClockError,
        zoo["bad_child"].cid: InvalidParentsError,
    }
    assert state(log) == before  # nothing stored, held or remembered as invalid
    # Without the bad entries the same call goes through.
    ok = log.receive_entries([zoo["ok"], zoo["ok_child"], zoo["orphan"]], all_or_nothing=True)
    assert [e.cid for e in ok.added] == [zoo["ok"].cid, zoo["ok_child"].cid]
    assert log.pending_count == 1


def test_all_or_nothing_on_blocks_counts_undecodable_ones() -> None:
    log, _ = make_log()
    zoo = entries_on(log)
    before = state(log)
    junk = (Cid.for_block(b"junk"), b"junk")
    result = log.receive([(zoo["ok"].cid, zoo["ok"].block), junk], all_or_nothing=True)
    assert result.added == () and len(result.rejected) == 1
    assert state(log) == before


def test_snapshot_and_restore_undo_a_rolled_back_call() -> None:
    log, store = make_log()
    zoo = entries_on(log)
    saved = log.snapshot()
    before = state(log)
    log.receive_entries(list(zoo.values()))
    assert state(log) != before
    # The caller rolls its transaction back (here: by hand) and restores the snapshot.
    store._heads = dict(saved.heads)
    log.restore(saved)
    assert state(log)[:4] == before[:4]
    # The snapshot's containers were never changed in place by the call.
    assert dict(saved.heads) == before[0] and dict(saved.pending) == before[1]
