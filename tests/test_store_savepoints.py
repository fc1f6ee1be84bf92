"""Nested transactions are savepoints on every store: an inner block that raises rolls
back only what it wrote; the outer one goes on and commits or rolls back as a whole."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orbitstore.storage.base import NodeStore
from orbitstore.storage.memory import MemoryStore
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.testing.storage_conformance import make_entries, manifest_cid


class Boom(Exception):
    pass


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NodeStore]:
    s: NodeStore = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s")
    yield s
    s.close()


def test_inner_failure_rolls_back_only_the_inner_part(store: NodeStore) -> None:
    db = manifest_cid()
    log = store.log_store(db)
    entries = make_entries(db, 6)
    with store.transaction():
        log.add_entries(entries[:2])
        log.set_heads({entries[1].cid: entries[1].clock})
        store.set_checkpoint(db, "v", 2)
        with pytest.raises(Boom), store.transaction():
            log.add_entries(entries[2:4])
            log.set_heads({entries[3].cid: entries[3].clock})
            store.set_name("inner", db)
            store.set_checkpoint(db, "v", 4)
            with store.transaction():  # a savepoint inside the savepoint
                log.add_entries(entries[4:])
            raise Boom
        assert log.count() == 2
        store.set_name("outer", db)
    assert log.count() == 2
    assert {c for c, _ in log.iter_entries()} == {e.cid for e in entries[:2]}
    assert log.get_heads() == {entries[1].cid: entries[1].clock}
    assert log.last_seq() == 2
    # SQLite undoes the checkpoint; the memory store forgets the log's view checkpoints
    # (its view states cannot be undone, so views replay the log).
    assert store.get_checkpoint(db, "v") == (0 if isinstance(store, MemoryStore) else 2)
    assert store.names() == {"outer": db}
    for e in entries[2:]:
        assert log.get_clock(e.cid) is None
        assert not store.blocks.has(e.cid)


def test_outer_failure_rolls_back_committed_savepoints(store: NodeStore) -> None:
    db = manifest_cid()
    log = store.log_store(db)
    entries = make_entries(db, 3)
    with pytest.raises(Boom), store.transaction():
        with store.transaction():
            log.add_entries(entries)
        raise Boom
    assert log.count() == 0 and log.last_seq() == 0
    with store.transaction():  # still usable
        log.add_entries(entries)
    assert log.count() == 3


def test_a_rolled_back_removal_restores_the_entries(store: NodeStore) -> None:
    db = manifest_cid()
    log = store.log_store(db)
    entries = make_entries(db, 4)
    log.add_entries(entries)
    before = ([c for c, _ in log.iter_entries()], list(log.iter_since(0)), log.count())
    with pytest.raises(Boom), store.transaction():
        assert log.remove_entries([entries[1].cid, entries[3].cid]) == 2
        log.add_entries(entries[3:])
        raise Boom
    assert ([c for c, _ in log.iter_entries()], list(log.iter_since(0)), log.count()) == before
    assert all(store.blocks.has(e.cid) for e in entries)
