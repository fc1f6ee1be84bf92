from __future__ import annotations

import itertools
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import orbitstore
from orbitstore.core import codec
from orbitstore.core.access import StaticAccess
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.errors import InvalidValueError, PayloadTooLargeError
from orbitstore.node.keyvalue import KeyValue
from orbitstore.storage.memory import MemoryStore
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.storage.views import open_view_state
from orbitstore.storage.views.keyvalue import MemoryKeyValueState
from orbitstore.views.base import Change
from orbitstore.views.keyvalue import Delete, KeyValueView, Put, batch_op, delete_op, put_op

# --- the handle ------------------------------------------------------------------------


async def _kv(node: orbitstore.Node, name: str = "kv") -> KeyValue:
    kv = await node.open(name, type="keyvalue")
    assert isinstance(kv, KeyValue)
    return kv


async def test_put_get_delete_and_ranges() -> None:
    async with orbitstore.open_node() as node:
        kv = await _kv(node)
        await kv.put("b", {"n": 1, "raw": b"\x00"})
        await kv.put("a", None)
        await kv.put_many({"c/1": 1, "c/2": 2, "c/3": 3, "d": [1.5]})
        await kv.delete("c/2")
        await kv.apply_batch([kv.Put(key="e", value="E"), kv.Delete(key="d"), Delete(key="zz")])
        assert kv.get("b") == {"n": 1, "raw": b"\x00"}
        assert kv.get("a", "default") is None and "a" in kv
        assert kv.get("c/2", "gone") == "gone" and "c/2" not in kv and 5 not in kv
        assert kv.get("d") is None and "d" not in kv
        assert kv.count() == 5
        assert list(kv.keys()) == ["a", "b", "c/1", "c/3", "e"]
        assert list(kv.items(prefix="c/")) == [("c/1", 1), ("c/3", 3)]
        assert list(kv.keys(start="b", stop="e")) == ["b", "c/1", "c/3"]
        assert list(kv.keys(reverse=True, limit=2)) == ["e", "c/3"]
        assert list(kv.keys(prefix="c/", start="c/2")) == ["c/3"]
        assert list(kv.keys(start="x", stop="c")) == []
        assert await kv.apply_batch([]) is None and await kv.put_many({}) is None
        assert len(kv) == 5  # entries: put, put, put_many, delete, batch


async def test_ranges_cross_pages(tmp_path: Path) -> None:
    keys = sorted(f"k{i:04}" for i in range(700))
    async with orbitstore.open_node(tmp_path) as node:
        kv = await _kv(node)
        await kv.put_many({k: i for i, k in enumerate(keys)})
        await kv.apply_batch(Delete(key=k) for k in keys[::3])
        live = [k for k in keys if k not in set(keys[::3])]
        assert list(kv.keys()) == live
        assert list(kv.keys(reverse=True)) == live[::-1]
        assert list(kv.keys(limit=300)) == live[:300]
        assert (
            list(kv.keys(start="k0100", stop="k0650", reverse=True, limit=400))
            == [k for k in live[::-1] if "k0100" <= k < "k0650"][:400]
        )
        assert list(kv.keys(prefix="k05")) == [k for k in live if k.startswith("k05")]
        assert kv.count() == len(live)


def test_prefix_ranges_at_unicode_edges() -> None:
    log = _replica(1)[0]
    view = KeyValueView(MemoryKeyValueState(), lookup=log.get)
    keys = ["a\U0010ffff", "a\U0010ffffz", "b", "\ud7ff", "\ud7ffx", "\ue000", "é", "éa"]
    view.apply(log.append_many([batch_op([Put(key=k, value=1) for k in keys])]), local=True)
    assert list(view.keys()) == sorted(keys)
    for prefix in ["a", "a\U0010ffff", "\ud7ff", "é", "\U0010ffff"]:
        assert list(view.keys(prefix=prefix)) == [k for k in sorted(keys) if k.startswith(prefix)]


async def test_bad_input_writes_nothing(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        kv = await _kv(node)
        bad_keys: list[Any] = [1, b"k", None, "", "x" * 1025, "é" * 513, "\ud800"]
        for key in bad_keys:
            with pytest.raises(InvalidValueError):
                await kv.put(key, 1)
            with pytest.raises(InvalidValueError):
                await kv.delete(key)
        bad_values: list[Any] = [object(), float("nan"), 2**64, {1: 2}, (1,), {"/": "x"}]
        for value in bad_values:
            with pytest.raises(InvalidValueError):
                await kv.put("k", value)
        with pytest.raises(InvalidValueError):
            await kv.put_many({"a": 1, "b": object()})
        with pytest.raises(InvalidValueError):
            await kv.apply_batch([Put(key="a", value=1), "b"])  # type: ignore[list-item]
        with pytest.raises(PayloadTooLargeError):
            await kv.put("big", b"x" * 600_000)
        with pytest.raises(InvalidValueError):
            kv.get(1)  # type: ignore[arg-type]
        with pytest.raises(InvalidValueError):
            list(kv.items(prefix=1))  # type: ignore[arg-type]
        assert len(kv) == 0 and kv.count() == 0 and not kv.heads
        assert list(kv.items()) == []
        await kv.put("ok", 1)  # the log and view are still usable
        assert list(kv.items()) == [("ok", 1)]


async def test_change_notifications_only_when_visible_value_changes() -> None:
    async with orbitstore.open_node() as node:
        kv = await _kv(node)
        async with kv.subscribe() as changes:
            await kv.put("a", 1)
            await kv.put("a", 1)  # same value: silent
            await kv.put("a", 2)
            await kv.delete("a")
            await kv.delete("a")  # already gone: silent
            await kv.delete("never")  # never there: silent
            await kv.put_many({"b": 1, "c": 2})
            got = []
            while (change := changes.receive_nowait()) is not None:
                assert isinstance(change, Change)
                got.append((change.kind, change.key, change.value, change.local))
        assert got == [
            ("put", "a", 1, True),
            ("put", "a", 2, True),
            ("delete", "a", None, True),
            ("put", "b", 1, True),
            ("put", "c", 2, True),
        ]


async def test_reopen_without_replay(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        kv = await _kv(node)
        await kv.put_many({f"k{i}": {"i": i} for i in range(50)})
        await kv.apply_batch([Delete(key="k3"), Put(key="k4", value="four")])
        await kv.delete("k7")
        before = list(kv.items())
        count = kv.count()
        address = kv.address
    async with orbitstore.open_node(tmp_path) as node:
        kv = await node.open(address, type="keyvalue")
        assert isinstance(kv, KeyValue)
        assert kv.statistics().reapplied_on_open == 0
        assert list(kv.items()) == before
        assert kv.count() == count == 48
        assert kv.get("k4") == "four" and "k3" not in kv


# --- the view: convergence under any delivery order ----------------------------------


def _replica(seed: int, name: str = "kv") -> tuple[OpLog, MemoryStore]:
    access = StaticAccess.of(["*"])
    db, _ = Manifest(name=name, type="keyvalue", access=access).to_block()
    store = MemoryStore()
    log = OpLog(
        db=db, access=access, store=store.log_store(db), identity=Identity(bytes([seed]) * 32)
    )
    return log, store


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteStore]:
    # One file for every Hypothesis example (each gets its own database in it): creating
    # and closing a SQLite file per example would cost more than the example itself.
    with SqliteStore(tmp_path_factory.mktemp("keyvalue") / "s.sqlite") as store:
        yield store


_databases = itertools.count()


def _sqlite_replica(store: SqliteStore, seed: int, name: str) -> tuple[OpLog, KeyValueView]:
    access = StaticAccess.of(["*"])
    db, _ = Manifest(name=name, type="keyvalue", access=access).to_block()
    log = OpLog(
        db=db, access=access, store=store.log_store(db), identity=Identity(bytes([seed]) * 32)
    )
    return log, KeyValueView(open_view_state(store, "keyvalue", db), lookup=log.get)


KEYS = ["a", "b", "c", "d"]
single_ops = st.one_of(
    st.builds(lambda k, v: ("put", k, v), st.sampled_from(KEYS), st.integers(0, 3)),
    st.builds(lambda k: ("del", k), st.sampled_from(KEYS)),
)
ops_strategy = st.one_of(single_ops, st.lists(single_ops, min_size=1, max_size=4))
steps = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 3), ops_strategy),
        st.tuples(st.just("sync"), st.integers(0, 3), st.integers(0, 3)),
    ),
    max_size=25,
)


def _payload(op: Any) -> dict[str, Any]:
    if isinstance(op, list):
        return batch_op(
            [Put(key=o[1], value=o[2]) if o[0] == "put" else Delete(key=o[1]) for o in op]
        )
    return put_op(op[1], op[2]) if op[0] == "put" else delete_op(op[1])


def _model(entries: list[Entry]) -> dict[str, Any]:
    """The reference: every operation sorted by (clock, writer, cid, index), folded."""
    stamped = []
    for e in entries:
        p = e.payload
        ops = p["ops"] if p["op"] == "batch" else [p]
        for i, op in enumerate(ops):
            stamped.append(((e.clock, e.writer, bytes(e.cid), i), op))
    out: dict[str, Any] = {}
    for _, op in sorted(stamped, key=lambda s: s[0]):
        if op["op"] == "put":
            out[op["key"]] = op["value"]
        else:
            out.pop(op["key"], None)
    return dict(sorted(out.items()))


def _fold_changes(into: dict[str, Any], changes: list[Change]) -> None:
    for c in changes:
        if c.kind == "conflict":
            assert c.key in into or c.value is None
            continue
        if c.kind == "put":
            into[c.key] = c.value
        else:
            assert c.kind == "delete" and c.key in into
            del into[c.key]


@given(steps, st.integers(2, 4), st.randoms(use_true_random=False))
def test_replicas_converge_to_the_reference_model(
    shared_store: SqliteStore, plan: list[tuple[Any, ...]], n: int, rnd: random.Random
) -> None:
    sql_store = shared_store
    name = f"kv{next(_databases)}"  # a new database for each example
    sql_log, sql_view = _sqlite_replica(sql_store, 1, name)
    replicas: list[tuple[OpLog, KeyValueView]] = [(sql_log, sql_view)]
    for i in range(1, n):
        log = _replica(i + 1, name)[0]
        replicas.append((log, KeyValueView(MemoryKeyValueState(), lookup=log.get)))
    seen: list[dict[str, Any]] = [{} for _ in replicas]  # state folded from changes

    def deliver(to: int, entries: list[Entry]) -> None:
        log, view = replicas[to]
        batch = entries + rnd.sample(entries, k=min(3, len(entries)))  # duplicates
        rnd.shuffle(batch)
        for e in batch:
            with sql_store.transaction():
                _fold_changes(seen[to], view.apply(log.receive_entries([e]).added, local=False))

    written: list[Entry] = []
    for step in plan:
        if step[0] == "write":
            who = step[1] % n
            log, view = replicas[who]
            with sql_store.transaction():
                entries = log.append_many([_payload(step[2])])
                _fold_changes(seen[who], view.apply(entries, local=True))
            written.extend(entries)
        else:
            src, dst = step[1] % n, step[2] % n
            deliver(dst, list(replicas[src][0].traverse()))
    for i in range(n):
        deliver(i, written)

    expected = _model(written)
    for (log, view), folded in zip(replicas, seen, strict=True):
        assert dict(view.items()) == expected
        assert list(view.keys()) == list(expected)
        assert view.count() == len(expected)
        assert folded == expected
        rebuilt = KeyValueView(MemoryKeyValueState(), lookup=log.get)
        rebuilt.apply(list(log.traverse()), local=False)
        assert list(rebuilt.items()) == list(view.items())
        assert [view.record(k) for k in KEYS] == [rebuilt.record(k) for k in KEYS]
    assert len({log.heads for log, _ in replicas}) == 1


def test_tombstone_beats_an_older_put_that_arrives_later() -> None:
    (a, _), (b, _) = _replica(1), _replica(2)
    old_put = a.append(put_op("k", "old"))
    b.receive_entries([old_put])
    tomb = b.append(delete_op("k"))  # causally after the put
    late = a.append(put_op("k", "concurrent"))  # concurrent with the delete, clock 2
    view = KeyValueView(MemoryKeyValueState(), lookup=b.get)
    view.apply([old_put, tomb], local=False)
    first, second = sorted([tomb, late], key=lambda e: e.order_key)
    changes = view.apply([late], local=False)
    if second is late:  # greater stamp: the put wins and resurrects the key
        assert view.get("k") == "concurrent" and [c.kind for c in changes] == ["put"]
        assert [(c.deleted, c.cid) for c in view.conflicts("k")] == [(True, tomb.cid)]
    else:  # the tombstone wins: the late put changes no value, it is a conflict
        assert "k" not in {k for k, _ in view.items()}
        assert [c.kind for c in changes] == ["conflict"]
        assert [(c.value, c.cid) for c in view.conflicts("k")] == [("concurrent", late.cid)]
    assert changes[0].conflicts == view.conflicts("k")
    assert first is not second


def test_malformed_payloads_are_ignored_by_every_replica() -> None:
    log, _ = _replica(1)
    bad: list[Any] = [
        "x",
        {"op": "put", "key": "a"},  # no value
        {"op": "put", "key": "", "value": 1},
        {"op": "put", "key": 5, "value": 1},
        {"op": "put", "key": "a", "value": {"/": "x"}},
        {"op": "nope", "key": "a"},
        {"op": "batch", "ops": [{"op": "put", "key": "a", "value": 1}, {"op": "del"}]},
        {"op": "batch", "ops": "x"},
    ]
    view = KeyValueView(MemoryKeyValueState(), lookup=log.get)
    assert view.apply(log.append_many(bad), local=True) == []
    assert list(view.items()) == [] and view.count() == 0
    view.apply([log.append(put_op("a", codec.decode(codec.encode({"ok": 1}))))], local=True)
    assert list(view.items()) == [("a", {"ok": 1})]


# --- crash safety ------------------------------------------------------------------------

_WRITER = """
import sys, trio, orbitstore
async def main(path):
    async with orbitstore.open_node(path) as node:
        kv = await node.open("crash", type="keyvalue")
        i = int(sys.argv[2])
        while True:
            await kv.put_many({f"k{(i * 7 + j) % 300}": {"i": i, "pad": "x" * 200}
                               for j in range(100)})
            await kv.delete(f"k{i % 300}")
            print(i, flush=True)
            i += 1
trio.run(main, sys.argv[1])
"""


@pytest.mark.slow
async def test_killed_writer_leaves_view_equal_to_log(tmp_path: Path) -> None:
    rnd = random.Random(20240601)
    start = 0
    for _ in range(2):
        stop_after = rnd.randint(3, 25)
        with trio.fail_after(60):
            proc = await trio.lowlevel.open_process(
                [sys.executable, "-c", _WRITER, str(tmp_path), str(start)],
                stdout=subprocess.PIPE,
            )
            assert proc.stdout is not None
            buffer = b""
            acked = -1
            while acked < start + stop_after:
                chunk = await proc.stdout.receive_some()
                assert chunk, "the writer exited early"
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                if lines:
                    acked = int(lines[-1])
            proc.kill()  # SIGKILL, most likely in the middle of the next write
            await proc.wait()
            await proc.stdout.aclose()
        async with orbitstore.open_node(tmp_path) as node:
            kv = await _kv(node, "crash")
            assert kv.statistics().reapplied_on_open == 0
            assert len(kv) >= 2 * (acked + 1)  # every acknowledged write survived
            rebuilt = KeyValueView(MemoryKeyValueState(), lookup=kv.log.get)
            rebuilt.apply(list(kv.log.traverse()), local=False)
            assert list(kv.items()) == list(rebuilt.items())
            assert kv.count() == rebuilt.count()
        start = acked + 1
