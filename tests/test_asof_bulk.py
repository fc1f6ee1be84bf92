"""AS OF snapshots folded in bulk (views/history.py, node/asof.py) hold exactly the rows
the entry-by-entry fold holds, on random multi-writer histories: concurrent writes and
their conflicts, batches, deletes, malformed and unencodable ops, any set of past heads."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orbitstore.core import codec
from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.errors import StorageCorruptedError
from orbitstore.node.asof import fold_image
from orbitstore.node.types import database_class
from orbitstore.storage.base import NodeStore
from orbitstore.storage.memory import MemoryStore
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.views import history
from orbitstore.views.base import View

# The tables a query reads (the causal bookkeeping and field registers are not copied).
TABLES = {
    "keyvalue": ["view_kv", "view_kv_stats"],
    "documents": ["view_documents"],
    "feed": ["view_feed"],
    "counter": ["view_counter"],
}
KEYS = ["a", "b", "c"]
_names = itertools.count()

junk = st.one_of(
    st.none(),
    st.integers(-9, 9),
    st.just({"op": "nope"}),
    st.just({"op": "batch", "ops": "x"}),
)
values = st.one_of(
    st.integers(-3, 3),
    st.text(max_size=2),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.lists(st.integers(0, 2), max_size=2),
    st.just({"/": "not a link"}),  # no DAG-JSON form: the whole entry is ignored
)
kv_op = st.one_of(
    st.builds(lambda k, v: {"op": "put", "key": k, "value": v}, st.sampled_from(KEYS), values),
    st.builds(lambda k: {"op": "del", "key": k}, st.sampled_from(KEYS)),
    st.just({"op": "put", "key": ""}),
)
kv_payload = st.one_of(
    kv_op, st.lists(kv_op, min_size=1, max_size=3).map(lambda ops: {"op": "batch", "ops": ops})
)
doc = st.fixed_dictionaries(
    {"_id": st.sampled_from(KEYS)}, optional={"x": values, "y": st.integers(0, 2)}
)
doc_op = st.one_of(
    st.builds(lambda d: {"op": "put", "doc": d}, doc),
    st.builds(lambda i: {"op": "del", "id": i}, st.sampled_from(KEYS)),
    st.builds(
        lambda i, s, u: {"op": "patch", "id": i, "set": s, "unset": u},
        st.sampled_from(KEYS),
        st.dictionaries(st.sampled_from(["x", "y"]), st.integers(0, 2), max_size=2),
        st.lists(st.sampled_from(["x", "y"]), max_size=1),
    ),
)
doc_payload = st.one_of(
    doc_op, st.lists(doc_op, min_size=1, max_size=3).map(lambda ops: {"op": "batch", "ops": ops})
)
feed_payload = st.one_of(
    st.builds(lambda v: {"op": "add", "value": v}, values),
    st.builds(lambda vs: {"op": "add", "values": vs}, st.lists(values, max_size=3)),
)
counter_payload = st.builds(lambda by: {"op": "inc", "by": by}, st.integers(-5, 5))
PAYLOADS = {
    "keyvalue": kv_payload,
    "documents": doc_payload,
    "feed": feed_payload,
    "counter": counter_payload,
}


class _History:
    """What fold_image needs of a database handle, over a finished history."""

    def __init__(self, db_type: str, meta: dict[str, Any], log: OpLog, manifest: Manifest):
        self.cid = log.db
        self.name = manifest.name
        self.type = db_type
        self.log = log
        self.heads = log.heads
        self._manifest = manifest
        self._factory = database_class(db_type)[1]

    encrypted = False

    def view_entries(self, entries: Sequence[Entry]) -> list[Entry]:
        return list(entries)

    def fresh_view(self, store: NodeStore) -> View | None:
        assert self._factory is not None
        return self._factory(store, self.cid, self._manifest)


def _plan(payload: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(
        st.one_of(
            st.tuples(st.just("write"), st.integers(0, 2), st.one_of(payload, payload, junk)),
            st.tuples(st.just("sync"), st.integers(0, 2), st.integers(0, 2)),
        ),
        min_size=1,
        max_size=25,
    )


def _build(
    db_type: str, meta: dict[str, Any], plan: list[Any], store: NodeStore | None = None
) -> _History:
    """The history of ``plan`` written by three logs, all of it gathered in the first
    (on ``store``: a MemoryStore unless given)."""
    access = StaticAccess.of(["*"])
    manifest = Manifest(name=f"h{next(_names)}", type=db_type, access=access, meta=meta)
    db, _ = manifest.to_block()
    logs = [
        OpLog(
            db=db,
            access=access,
            store=(store if i == 0 and store is not None else MemoryStore()).log_store(db),
            identity=Identity(bytes([i + 1]) * 32),
        )
        for i in range(3)
    ]
    for step in plan:
        if step[0] == "write":
            logs[step[1]].append(step[2])
        else:
            logs[step[2]].receive_entries(list(logs[step[1]].traverse()))
    everything = logs[0]
    for other in logs[1:]:
        everything.receive_entries(list(other.traverse()))
    return _History(db_type, meta, everything, manifest)


def _tables(image: bytes, log_id: int, tables: list[str]) -> dict[str, list[Any]]:
    conn = sqlite3.connect(":memory:")
    try:
        conn.deserialize(image)
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
    finally:
        conn.close()


def _same(db_type: str, h: _History, heads: frozenset[Cid]) -> None:
    bulk, log_bulk = fold_image(h, heads)
    slow, log_slow = fold_image(h, heads, bulk=False)
    assert log_bulk == log_slow
    tables = TABLES[db_type]
    assert _tables(bulk, log_bulk, tables) == _tables(slow, log_slow, tables)


KINDS = [
    ("keyvalue", {}),
    ("documents", {}),
    ("documents", {"merge": "field"}),
    ("feed", {}),
    ("counter", {}),
]


@pytest.mark.parametrize(("db_type", "meta"), KINDS, ids=[f"{t}{m}" for t, m in KINDS])
@given(data=st.data())
def test_bulk_fold_equals_entry_by_entry(
    db_type: str, meta: dict[str, Any], data: st.DataObject
) -> None:
    h = _build(db_type, meta, data.draw(_plan(PAYLOADS[db_type]), label="plan"))
    known = sorted((e.cid for e in h.log.traverse()), key=str)
    _same(db_type, h, h.heads)
    if known:
        picked = data.draw(st.sets(st.sampled_from(known), max_size=3), label="heads")
        _same(db_type, h, frozenset(picked))


@pytest.mark.parametrize("db_type", ["keyvalue", "documents"])
@settings(max_examples=40)
@given(data=st.data())
def test_bulk_fold_of_a_sqlite_log_equals_entry_by_entry(db_type: str, data: st.DataObject) -> None:
    """The same on a SQLite log store: its raw rows (``iter_entry_rows``) feed the fold."""
    with SqliteStore.in_memory() as store:
        plan = data.draw(_plan(PAYLOADS[db_type]), label="plan")
        h = _build(db_type, {}, plan, store)
        known = sorted((e.cid for e in h.log.traverse()), key=str)
        _same(db_type, h, h.heads)
        if known:
            picked = data.draw(st.sets(st.sampled_from(known), max_size=3), label="heads")
            _same(db_type, h, frozenset(picked))


def test_the_keyvalue_bulk_fold_builds_no_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """It reads the store's raw rows into columns: no Entry (nor a Cid per row) is made,
    and the rows are what the entry-by-entry fold of the decoded entries gives."""
    plan: list[Any] = [
        ("write", i % 3, {"op": "put", "key": KEYS[i % 3], "value": i}) for i in range(9)
    ]
    plan.insert(4, ("sync", 0, 1))
    h = _build("keyvalue", {}, plan)
    slow, _ = fold_image(h, h.heads, bulk=False)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an Entry was decoded")

    monkeypatch.setattr(Entry, "from_trusted_block", classmethod(refuse))
    bulk, log_id = fold_image(h, h.heads)
    assert _tables(bulk, log_id, TABLES["keyvalue"]) == _tables(slow, log_id, TABLES["keyvalue"])


def test_a_damaged_stored_block_is_a_storage_error() -> None:
    rows = [(b"\x01q\x12 " + bytes(32), b"\xff not cbor")]
    with pytest.raises(StorageCorruptedError):
        history.History.of_rows(rows, [rows[0][0]])
    with pytest.raises(StorageCorruptedError):  # decodes, but is no entry
        history.History.of_rows([(rows[0][0], codec.encode({"a": 1}))], [rows[0][0]])


def test_a_tangled_history_falls_back_to_the_entry_by_entry_fold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def put(n: int) -> dict[str, Any]:
        return {"op": "put", "key": "a", "value": n}

    # w1's last entry has seen w0's first but not its second, numbered between them
    plan = [("write", 0, put(0)), ("sync", 0, 1), ("write", 1, put(1))]
    plan += [("write", 0, put(2)), ("write", 1, put(3))]
    h = _build("keyvalue", {}, plan)
    entries = list(h.log.traverse())
    assert history.Ancestry.of(entries) is not None
    monkeypatch.setattr(history, "MAX_EXACT_INTERVALS", 1)
    assert history.Ancestry.of(entries) is None  # its past is two intervals
    _same("keyvalue", h, h.heads)
    image, log_id = fold_image(h, h.heads)
    (row,) = _tables(image, log_id, ["view_kv"])["view_kv"]
    assert row[11] is not None  # w0's second put is a conflict of w1's last


def test_a_history_missing_a_parent_is_refused() -> None:
    plan = [("write", 0, {"op": "put", "key": "a", "value": n}) for n in range(3)]
    entries = list(_build("keyvalue", {}, plan).log.traverse())
    assert history.Ancestry.of(entries[1:]) is None


def test_a_foreign_document_with_no_json_form_is_ignored_not_a_crash(tmp_path: Any) -> None:
    """Regression: such a put reached the SQLite state, whose JSON column raised
    InvalidValueError out of the view (a peer's entry stopped every later receive)."""
    from orbitstore.storage.sqlite import SqliteStore
    from orbitstore.storage.views import open_view_state
    from orbitstore.views.documents import DocumentsOptions, DocumentsView

    bad = {"op": "put", "doc": {"_id": "a", "x": {"/": "not a link"}}}
    good = {"op": "put", "doc": {"_id": "b", "x": 1}}
    h = _build("documents", {}, [("write", 0, bad), ("write", 0, good)])
    with SqliteStore(tmp_path / "s.sqlite") as store:
        view = DocumentsView(
            open_view_state(store, "documents", h.cid),
            DocumentsOptions.from_meta({}),
            lookup=h.log.get,
        )
        with store.transaction():
            view.apply(list(h.log.traverse()), local=False)
        assert view.get("a") is None and view.get("b") == {"_id": "b", "x": 1}
