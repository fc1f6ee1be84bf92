"""One battery of tests that every storage backend passes.

Subclass :class:`NodeStoreConformance` in a test module and give it a ``store`` fixture
that yields a fresh, empty :class:`~orbitstore.storage.base.NodeStore` (and closes it
afterwards)::

    class TestMyStore(NodeStoreConformance):
        @pytest.fixture
        def store(self) -> Iterator[NodeStore]:
            s = MyStore()
            yield s
            s.close()

Set ``atomic_transactions = False`` for a backend whose ``transaction()`` does not roll
back (the in-memory store); every other check applies to all backends.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import ClassVar

import pytest

from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import RAW, Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import LogStore
from orbitstore.errors import ClosedError, HashMismatchError
from orbitstore.storage.base import NodeStore

WRITERS = tuple(Identity(bytes([n]) * 32) for n in (1, 2, 3))


def manifest_cid(name: str = "conformance") -> Cid:
    """The CID of a log manifest any of :data:`WRITERS` may write to."""
    access = StaticAccess.of([w.id for w in WRITERS])
    return Manifest(name=name, type="log", access=access).to_block()[0]


def make_entries(db: Cid, count: int = 24, *, seed: int = 0) -> list[Entry]:
    """A DAG of ``count`` entries by three writers, with forks and merges, parents first.

    Several entries share a clock, so the total order has to break ties by writer and
    then by CID bytes.
    """
    rng = random.Random(seed)
    entries: list[Entry] = []
    clocks: dict[Cid, int] = {}
    heads: set[Cid] = set()
    for n in range(count):
        writer = WRITERS[n % len(WRITERS)]
        if heads and rng.random() < 0.7:
            parents = rng.sample(sorted(heads), k=rng.randint(1, len(heads)))
        elif entries and rng.random() < 0.5:
            parents = [rng.choice(entries).cid]  # a fork from an older entry
        else:
            parents = []
        clock = max((clocks[p] for p in parents), default=0) + 1
        entry = Entry.create(writer, db=db, clock=clock, next=parents, payload={"n": n})
        entries.append(entry)
        clocks[entry.cid] = clock
        heads -= set(parents)
        heads.add(entry.cid)
    return entries


def total_order(entries: list[Entry]) -> list[Cid]:
    return [e.cid for e in sorted(entries, key=lambda e: e.order_key)]


def _block(n: int, codec: int = 0x71) -> tuple[Cid, bytes]:
    data = b"block %d" % n
    return Cid.for_block(data, codec), data


class NodeStoreConformance:
    """The battery. Needs a ``store`` fixture (see the module docstring)."""

    atomic_transactions: ClassVar[bool] = True

    # -- blocks ---------------------------------------------------------------------------

    def test_put_get_has(self, store: NodeStore) -> None:
        cid, data = _block(1)
        raw_cid, raw_data = _block(2, RAW)
        assert store.blocks.get(cid) is None
        assert not store.blocks.has(cid)
        store.blocks.put(cid, data)
        store.blocks.put(raw_cid, raw_data)
        assert store.blocks.get(cid) == data
        assert store.blocks.has(cid)
        assert store.blocks.get(raw_cid) == raw_data
        assert store.blocks.get(_block(3)[0]) is None
        assert not store.blocks.has(_block(3)[0])

    def test_put_is_idempotent(self, store: NodeStore) -> None:
        cid, data = _block(1)
        store.blocks.put(cid, data)
        store.blocks.put(cid, data)
        store.blocks.put_many([(cid, data), (cid, data)])
        assert len(store.blocks) == 1
        assert list(store.blocks) == [cid]

    def test_put_many_len_iter(self, store: NodeStore) -> None:
        blocks = [_block(n) for n in range(10)]
        store.blocks.put_many(iter(blocks))
        assert len(store.blocks) == 10
        assert sorted(store.blocks) == sorted(cid for cid, _ in blocks)
        for cid, data in blocks:
            assert store.blocks.get(cid) == data

    def test_delete(self, store: NodeStore) -> None:
        (a, da), (b, db) = _block(1), _block(2)
        store.blocks.put_many([(a, da), (b, db)])
        store.blocks.delete(a)
        store.blocks.delete(a)  # deleting a missing block is a no-op
        store.blocks.delete(_block(9)[0])
        assert not store.blocks.has(a)
        assert store.blocks.get(a) is None
        assert store.blocks.get(b) == db
        assert len(store.blocks) == 1
        assert list(store.blocks) == [b]

    def test_put_with_wrong_hash_stores_nothing(self, store: NodeStore) -> None:
        cid, _ = _block(1)
        with pytest.raises(HashMismatchError):
            store.blocks.put(cid, b"other bytes")
        raw_cid, raw_data = _block(2, RAW)
        wrong_codec = Cid.for_block(raw_data)  # same digest, other codec: still fine
        store.blocks.put(wrong_codec, raw_data)
        store.blocks.delete(wrong_codec)
        good = [_block(n) for n in range(3, 6)]
        with pytest.raises(HashMismatchError):
            store.blocks.put_many([*good, (raw_cid, raw_data + b"!")])
        assert len(store.blocks) == 0
        assert list(store.blocks) == []
        for c, _ in good:
            assert not store.blocks.has(c)

    # -- logs -----------------------------------------------------------------------------

    def test_add_entries_idempotent_and_count(self, store: NodeStore) -> None:
        db = manifest_cid()
        log = store.log_store(db)
        entries = make_entries(db)
        assert log.count() == 0
        log.add_entries(entries[:10])
        assert log.count() == 10
        log.add_entries(entries[:15])  # overlaps the first call
        log.add_entries(entries[5:15])
        assert log.count() == 15
        log.add_entries(entries)
        log.add_entries([])
        assert log.count() == len(entries)
        assert len(list(log.iter_entries())) == len(entries)

    def test_clocks_and_blocks(self, store: NodeStore) -> None:
        db = manifest_cid()
        log = store.log_store(db)
        entries = make_entries(db)
        log.add_entries(entries)
        for e in entries:
            assert log.get_clock(e.cid) == e.clock
            assert log.get_block(e.cid) == e.block
            assert store.blocks.get(e.cid) == e.block
        missing = Cid.for_block(b"missing")
        assert log.get_clock(missing) is None
        assert log.get_block(missing) is None
        assert log.get_clocks([]) == {}
        asked = [missing, *(e.cid for e in entries), missing]
        assert log.get_clocks(asked) == {e.cid: e.clock for e in entries}

    def test_a_block_alone_is_not_an_entry(self, store: NodeStore) -> None:
        db = manifest_cid()
        entry = make_entries(db, 1)[0]
        store.blocks.put(entry.cid, entry.block)
        log = store.log_store(db)
        assert log.get_clock(entry.cid) is None
        assert log.get_block(entry.cid) is None
        assert log.count() == 0
        log.add_entries([entry])  # the block is already there
        assert log.count() == 1
        assert log.get_block(entry.cid) == entry.block

    def test_logs_are_separate(self, store: NodeStore) -> None:
        db1, db2 = manifest_cid("one"), manifest_cid("two")
        log1 = store.log_store(db1)
        log2 = store.log_store(db2)
        entries = make_entries(db1, 5)
        log1.add_entries(entries)
        log1.set_heads({entries[-1].cid: entries[-1].clock})
        assert log2.count() == 0
        assert list(log2.iter_entries()) == []
        assert log2.get_clock(entries[0].cid) is None
        assert log2.get_block(entries[0].cid) is None
        assert log2.get_heads() == {}
        assert store.log_store(db1).count() == 5
        assert set(store.databases()) == {db1, db2}

    def test_iter_entries_in_total_order(self, store: NodeStore) -> None:
        db = manifest_cid()
        log = store.log_store(db)
        entries = make_entries(db, 40, seed=7)
        clocks = [e.clock for e in entries]
        assert len(set(clocks)) < len(clocks)  # ties exist, so tie-breaking is tested
        shuffled = list(entries)
        random.Random(1).shuffle(shuffled)
        for n in range(0, len(shuffled), 7):  # several calls, out of causal order
            log.add_entries(shuffled[n : n + 7])
        expected = total_order(entries)
        got = [cid for cid, _ in log.iter_entries()]
        assert got == expected
        blocks = {e.cid: e.block for e in entries}
        assert all(block == blocks[cid] for cid, block in log.iter_entries())
        assert [cid for cid, _ in log.iter_entries(reverse=True)] == expected[::-1]
        for limit in (0, 1, 5, len(entries), len(entries) + 3):
            assert [c for c, _ in log.iter_entries(limit=limit)] == expected[:limit]
            rev = [c for c, _ in log.iter_entries(reverse=True, limit=limit)]
            assert rev == expected[::-1][:limit]
        by_cid = {e.cid: e.clock for e in entries}
        for top in (0, 1, 2, max(clocks) // 2, max(clocks), max(clocks) + 1):
            upto = [c for c in expected if by_cid[c] <= top]
            assert [c for c, _ in log.iter_entries(max_clock=top)] == upto
            down = [c for c, _ in log.iter_entries(reverse=True, max_clock=top, limit=3)]
            assert down == upto[::-1][:3]

    def test_heads_persist(self, store: NodeStore) -> None:
        db = manifest_cid()
        log = store.log_store(db)
        entries = make_entries(db, 6)
        log.add_entries(entries)
        assert log.get_heads() == {}
        heads = {e.cid: e.clock for e in entries[-2:]}
        log.set_heads(heads)
        assert log.get_heads() == heads
        assert store.log_store(db).get_heads() == heads
        log.set_heads({entries[0].cid: entries[0].clock})
        assert log.get_heads() == {entries[0].cid: entries[0].clock}
        log.set_heads({})
        assert log.get_heads() == {}

    def test_log_store_is_stable(self, store: NodeStore) -> None:
        db = manifest_cid()
        entries = make_entries(db, 3)
        store.log_store(db).add_entries(entries)
        again: LogStore = store.log_store(db)
        assert again.count() == 3
        assert store.databases() == [db]

    # -- names ----------------------------------------------------------------------------

    def test_names(self, store: NodeStore) -> None:
        a, b = manifest_cid("a"), manifest_cid("b")
        assert store.get_name("x") is None
        assert store.names() == {}
        store.set_name("x", a)
        store.set_name("y", b)
        assert store.get_name("x") == a
        assert store.names() == {"x": a, "y": b}
        store.set_name("x", b)  # a name can be re-pointed
        assert store.get_name("x") == b
        assert store.names() == {"x": b, "y": b}

    # -- transactions ---------------------------------------------------------------------

    def test_transaction_commits(self, store: NodeStore) -> None:
        db = manifest_cid()
        entries = make_entries(db, 4)
        cid, data = _block(1)
        with store.transaction():
            with store.transaction():  # nested
                store.blocks.put(cid, data)
            log = store.log_store(db)
            log.add_entries(entries)
            log.set_heads({entries[-1].cid: entries[-1].clock})
            store.set_name("t", db)
        assert store.blocks.get(cid) == data
        assert store.log_store(db).count() == 4
        assert store.log_store(db).get_heads() == {entries[-1].cid: entries[-1].clock}
        assert store.get_name("t") == db

    def test_transaction_rolls_back_on_exception(self, store: NodeStore) -> None:
        if not self.atomic_transactions:
            pytest.skip("this backend's transactions do not roll back")
        db = manifest_cid()
        log = store.log_store(db)
        before = make_entries(db, 3)
        log.add_entries(before)
        log.set_heads({before[-1].cid: before[-1].clock})
        more = make_entries(db, 8)[3:]
        cid, data = _block(1)

        class Boom(Exception):
            pass

        with pytest.raises(Boom), store.transaction():
            store.blocks.put(cid, data)
            log.add_entries(more)
            log.set_heads({more[-1].cid: more[-1].clock})
            store.set_name("gone", db)
            with store.transaction():  # the inner block fails; the outer one rolls back
                raise Boom
        assert not store.blocks.has(cid)
        assert log.count() == 3
        assert [c for c, _ in log.iter_entries()] == total_order(before)
        assert log.get_heads() == {before[-1].cid: before[-1].clock}
        for e in more:
            assert log.get_clock(e.cid) is None
            assert not store.blocks.has(e.cid)
        assert store.get_name("gone") is None
        # and the store is still usable afterwards
        log.add_entries(more)
        assert log.count() == 8

    # -- lifecycle ------------------------------------------------------------------------

    def test_closed_store_refuses_work(self, store: NodeStore) -> None:
        store.close()
        with pytest.raises(ClosedError):
            store.log_store(manifest_cid())
        with pytest.raises(ClosedError), store.transaction():
            pass
        store.close()  # closing twice is fine


def entry_cids(log: LogStore) -> Iterator[Cid]:
    """Every entry CID of ``log`` in total order."""
    for cid, _ in log.iter_entries():
        yield cid
