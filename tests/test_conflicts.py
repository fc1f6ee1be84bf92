"""Conflicts (concurrent writes that lost) of the keyvalue and documents views: every
replica, under any delivery order, reports exactly the conflict sets that the definition
gives when computed directly from the DAG, and a rebuild reports the same."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from orbitstore.core.access import StaticAccess
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.storage.memory import MemoryStore
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.storage.views import open_view_state
from orbitstore.storage.views.documents import MemoryDocumentsState
from orbitstore.storage.views.keyvalue import MemoryKeyValueState
from orbitstore.views import causal
from orbitstore.views import documents as dv
from orbitstore.views import keyvalue as kvv
from orbitstore.views.base import Change, Conflict
from orbitstore.views.causal import CausalTracker, Member
from orbitstore.views.documents import DocumentsOptions, DocumentsView
from orbitstore.views.keyvalue import KeyValueView

KEYS = ["a", "b", "c"]
FIELDS = ["x", "y"]
Stamp = tuple[int, str, bytes, int]
Expected = list[tuple[str | None, str, bool, Any]]  # (field, cid, deleted, value)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path_factory.mktemp("conflicts") / "s.sqlite") as store:
        yield store


_names = itertools.count()


def _log(seed: int, db_type: str, name: str) -> OpLog:
    access = StaticAccess.of(["*"])
    db, _ = Manifest(name=name, type=db_type, access=access).to_block()
    store = MemoryStore()
    return OpLog(
        db=db, access=access, store=store.log_store(db), identity=Identity(bytes([seed]) * 32)
    )


# --- the reference: the definition, computed from the whole DAG ------------------------------


def _pasts(entries: list[Entry]) -> dict[bytes, set[bytes]]:
    """Strict causal past of every entry."""
    past: dict[bytes, set[bytes]] = {}
    for e in sorted(entries, key=lambda e: e.order_key):  # parents sort first
        mine: set[bytes] = set()
        for p in e.next:
            mine.add(bytes(p))
            mine |= past[bytes(p)]
        past[bytes(e.cid)] = mine
    return past


def _ops(entry: Entry) -> list[dict[str, Any]]:
    p = entry.payload
    return list(p["ops"]) if p["op"] == "batch" else [p]


def _maximal(writes: list[tuple[Stamp, Any]], past: dict[bytes, set[bytes]]) -> list[Any]:
    """The writes that are below no other write; below = entry in the other's past, or an
    earlier op of the same entry. Returns them without the greatest, newest first."""

    def below(a: Stamp, b: Stamp) -> bool:
        return a[2] in past[b[2]] or (a[2] == b[2] and a[3] < b[3])

    top = [w for w in writes if not any(below(w[0], o[0]) for o in writes)]
    top.sort(key=lambda w: w[0], reverse=True)
    return [w[1] for w in top[1:]]


def _register_reference(
    entries: list[Entry], writes_of: Callable[[Entry], dict[str, tuple[int, bool, Any]]]
) -> dict[str, Expected]:
    """keyvalue and document mode: one register per key; ``writes_of`` gives, per entry,
    register -> (op index, deleted, value) of its last op on it."""
    past = _pasts(entries)
    writes: dict[str, list[tuple[Stamp, Any]]] = {}
    for e in entries:
        for key, (idx, deleted, value) in writes_of(e).items():
            stamp = (e.clock, e.writer, bytes(e.cid), idx)
            writes.setdefault(key, []).append((stamp, (None, str(e.cid), deleted, value)))
    return {k: _maximal(w, past) for k, w in writes.items()}


def _kv_writes(e: Entry) -> dict[str, tuple[int, bool, Any]]:
    out = {}
    for i, op in enumerate(_ops(e)):
        out[op["key"]] = (i, op["op"] == "del", op.get("value"))
    return out


def _doc_writes(e: Entry) -> dict[str, tuple[int, bool, Any]]:
    out = {}
    for i, op in enumerate(_ops(e)):
        if op["op"] == "put":
            out[op["doc"]["_id"]] = (i, False, op["doc"])
        elif op["op"] == "del":
            out[op["id"]] = (i, True, None)
    return out


def _field_reference(entries: list[Entry]) -> dict[str, Expected]:
    past = _pasts(entries)
    by_doc: dict[str, list[tuple[Stamp, dict[str, Any]]]] = {}
    for e in entries:
        for i, op in enumerate(_ops(e)):
            doc_id = op["doc"]["_id"] if op["op"] == "put" else op["id"]
            by_doc.setdefault(doc_id, []).append(((e.clock, e.writer, bytes(e.cid), i), op))
    out: dict[str, Expected] = {}
    for doc_id, ops in by_doc.items():
        names: set[str] = set()
        for _, op in ops:
            if op["op"] == "put":
                names |= set(op["doc"])
            elif op["op"] == "patch":
                names |= {*op["set"], *op["unset"]}
        names.discard("_id")
        found: Expected = []
        for name in sorted(names):
            touching = [
                (stamp, op)
                for stamp, op in ops
                if op["op"] != "patch" or name in op["set"] or name in op["unset"]
            ]

            def mentions(op: dict[str, Any], name: str = name) -> bool:
                return name in (op["doc"] if op["op"] == "put" else {}) or op["op"] == "patch"

            def value(stamp: Stamp, op: dict[str, Any], name: str = name) -> Any:
                src = op["doc"] if op["op"] == "put" else op.get("set", {})
                present = op["op"] != "del" and name in src
                return (
                    name,
                    _cid_text(stamp, entries),
                    not present,
                    src[name] if present else None,
                )

            losers = _maximal([(s, (s, op)) for s, op in touching], past)
            members = [*losers, *_top(touching, past)]
            if losers and any(mentions(op) for _, op in members):
                found.extend(value(s, op) for s, op in losers)
        out[doc_id] = found
    return out


def _top(writes: list[tuple[Stamp, Any]], past: dict[bytes, set[bytes]]) -> list[Any]:
    def below(a: Stamp, b: Stamp) -> bool:
        return a[2] in past[b[2]] or (a[2] == b[2] and a[3] < b[3])

    top = [w for w in writes if not any(below(w[0], o[0]) for o in writes)]
    return [max(top, key=lambda w: w[0])]


def _cid_text(stamp: Stamp, entries: list[Entry]) -> str:
    return next(str(e.cid) for e in entries if bytes(e.cid) == stamp[2])


def _seen(conflicts: tuple[Conflict, ...]) -> Expected:
    return [(c.field, str(c.cid), c.deleted, c.value) for c in conflicts]


# --- random DAGs, random deliveries ------------------------------------------------------------

_kv_op = st.one_of(
    st.builds(lambda k, v: kvv.Put(key=k, value=v), st.sampled_from(KEYS), st.integers(0, 2)),
    st.builds(lambda k: kvv.Delete(key=k), st.sampled_from(KEYS)),
)
_kv_payload = st.lists(_kv_op, min_size=1, max_size=3).map(kvv.batch_op)

_doc_op = st.one_of(
    st.builds(
        lambda i, f: dv.put_op({"_id": i, **f}, id_field="_id"),
        st.sampled_from(KEYS),
        st.dictionaries(st.sampled_from(FIELDS), st.integers(0, 2), max_size=2),
    ),
    st.builds(dv.delete_op, st.sampled_from(KEYS)),
    st.builds(
        lambda i, f, u: dv.patch_op(i, set=f, unset=[n for n in u if n not in f], id_field="_id"),
        st.sampled_from(KEYS),
        st.dictionaries(st.sampled_from(FIELDS), st.integers(0, 2), min_size=1, max_size=2),
        st.lists(st.sampled_from(FIELDS), max_size=1),
    ),
)
_doc_payload = st.lists(_doc_op, min_size=1, max_size=3).map(dv.batch_op)


def _plan(payload: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(
        st.one_of(
            st.tuples(st.just("write"), st.integers(0, 3), payload),
            st.tuples(st.just("sync"), st.integers(0, 3), st.integers(0, 3), st.floats(0, 1)),
        ),
        max_size=30,
    )


class _Replica:
    def __init__(self, log: OpLog, view: Any) -> None:
        self.log, self.view = log, view
        self.last: dict[str, Change] = {}

    def apply(self, entries: list[Entry] | tuple[Entry, ...], store: SqliteStore) -> None:
        with store.transaction():
            for change in self.view.apply(list(entries), local=False):
                self.last[change.key] = change


def _run(
    store: SqliteStore,
    db_type: str,
    *,
    make_view: Callable[[Any, OpLog], Any],
    plan: list[Any],
    n: int,
    rnd: random.Random,
) -> tuple[list[_Replica], list[Entry]]:
    name = f"c{next(_names)}"
    replicas: list[_Replica] = []
    for i in range(n):
        log = _log(i + 1, db_type, name)
        if i == 0:  # one replica on SQLite, the others in memory
            state = open_view_state(store, db_type, log.db)
        else:
            state = MemoryKeyValueState() if db_type == "keyvalue" else MemoryDocumentsState()
        replicas.append(_Replica(log, make_view(state, log)))
    written: list[Entry] = []
    for step in plan:
        if step[0] == "write":
            r = replicas[step[1] % n]
            entries = r.log.append_many([step[2]])
            written.extend(entries)
            r.apply(entries, store)
        else:  # a partial, shuffled sync: held entries wait for their parents
            src, dst = replicas[step[1] % n], replicas[step[2] % n]
            have = list(src.log.traverse())
            part = rnd.sample(have, k=int(len(have) * step[3]))
            dst.apply(dst.log.receive_entries(part).added, store)
    for r in replicas:
        delivery = written + rnd.sample(written, k=min(4, len(written)))
        rnd.shuffle(delivery)
        for e in delivery:
            r.apply(r.log.receive_entries([e]).added, store)
    return replicas, written


def _check(replicas: list[_Replica], expected: dict[str, Expected], rebuilt: Any) -> None:
    conflicted = [k for k in KEYS if expected.get(k)]
    assert rebuilt.conflicted() == conflicted
    assert all(r.view.conflicted() == conflicted for r in replicas)
    assert all(r.view.conflicted(limit=1) == conflicted[:1] for r in replicas)
    with_conflicts = 0
    for key in KEYS:
        want = expected.get(key, [])
        with_conflicts += bool(want)
        assert _seen(rebuilt.conflicts(key)) == want
        for r in replicas:
            got = r.view.conflicts(key)
            assert _seen(got) == want
            change = r.last.get(key)
            assert (change.conflicts if change is not None else ()) == got
    event(f"registers with conflicts: {with_conflicts}")


# 1: every list of intervals is cut to its newest interval, so "no" answers walk the log
LIST_SIZES = pytest.mark.parametrize("max_intervals", [causal.MAX_INTERVALS, 1])


@LIST_SIZES
@given(plan=_plan(_kv_payload), n=st.integers(2, 4), rnd=st.randoms(use_true_random=False))
def test_keyvalue_conflicts_match_the_definition(
    shared_store: SqliteStore, max_intervals: int, plan: list[Any], n: int, rnd: random.Random
) -> None:
    def make(state: Any, log: OpLog) -> KeyValueView:
        return KeyValueView(state, lookup=log.get)

    with mock.patch.object(causal, "MAX_INTERVALS", max_intervals):
        replicas, written = _run(shared_store, "keyvalue", make_view=make, plan=plan, n=n, rnd=rnd)
    expected = _register_reference(written, _kv_writes)
    rebuilt = make(MemoryKeyValueState(), replicas[0].log)
    rebuilt.apply(list(replicas[0].log.traverse()), local=False)
    _check(replicas, expected, rebuilt)


@LIST_SIZES
@pytest.mark.parametrize("merge", ["document", "field"])
def test_documents_conflicts_match_the_definition(
    merge: str, max_intervals: int, tmp_path: Path
) -> None:
    options = DocumentsOptions(merge=merge)  # type: ignore[arg-type]

    def make(state: Any, log: OpLog) -> DocumentsView:
        return DocumentsView(state, options, lookup=log.get)

    with SqliteStore(tmp_path / "s.sqlite") as store:

        @given(_plan(_doc_payload), st.integers(2, 4), st.randoms(use_true_random=False))
        def check(plan: list[Any], n: int, rnd: random.Random) -> None:
            with mock.patch.object(causal, "MAX_INTERVALS", max_intervals):
                replicas, written = _run(
                    store, "documents", make_view=make, plan=plan, n=n, rnd=rnd
                )
            if merge == "field":
                expected = _field_reference(written)
            else:
                expected = _register_reference(written, _doc_writes)
            rebuilt = make(MemoryDocumentsState(), replicas[0].log)
            rebuilt.apply(list(replicas[0].log.traverse()), local=False)
            _check(replicas, expected, rebuilt)

        check()


# --- the ancestry oracle itself ------------------------------------------------------------------


@LIST_SIZES
@given(plan=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.booleans()), max_size=30))
def test_superseded_is_exactly_the_causal_past(
    max_intervals: int, plan: list[tuple[int, int, bool]]
) -> None:
    """Whatever the DAG, a step says a member is superseded iff it is in the causal past."""
    with mock.patch.object(causal, "MAX_INTERVALS", max_intervals):
        _check_oracle(plan)


def _check_oracle(plan: list[tuple[int, int, bool]]) -> None:
    logs = [_log(i + 1, "keyvalue", "oracle") for i in range(3)]
    everything: dict[bytes, Entry] = {}
    tracker = CausalTracker(MemoryKeyValueState(), lambda c: everything.get(bytes(c)))
    members: list[tuple[Member, Entry]] = []
    applied: list[Entry] = []
    for who, src, sync in plan:
        if sync:
            logs[who].receive_entries(list(logs[src].traverse()))
            continue
        entry = logs[who].append(kvv.put_op("k", 1))
        # the view sees entries in a causal order: everything the writer had, then this
        fresh = [e for e in logs[who].traverse() if bytes(e.cid) not in everything]
        tracker.begin()
        for e in fresh:
            everything[bytes(e.cid)] = e
            step = tracker.step(e)
            applied.append(e)
            if e is entry or e.cid == entry.cid:
                past = _pasts(applied)[bytes(e.cid)]
                got = step.superseded([m for m, _ in members])
                assert {m.cid for m in got} == {m.cid for m, _ in members if m.cid in past}
            members.append((step.member(0), e))
        tracker.end()
