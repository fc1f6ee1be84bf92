from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import orbitstore
from orbitstore.core import codec
from orbitstore.core.access import StaticAccess
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.errors import InvalidValueError, NotFoundError, PayloadTooLargeError
from orbitstore.node.documents import Documents
from orbitstore.storage.memory import MemoryStore
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.storage.views import open_view_state
from orbitstore.storage.views.documents import MemoryDocumentsState, SqliteDocumentsState
from orbitstore.views.base import Change
from orbitstore.views.documents import (
    DocumentsOptions,
    DocumentsView,
    batch_op,
    delete_op,
    patch_op,
    put_op,
)

IDS = ["a", "b", "c"]
FIELDS = ["x", "y", "z"]

# --- helpers ----------------------------------------------------------------------------


async def _open(node: orbitstore.Node, name: str = "d", **meta: Any) -> Documents:
    docs = await node.open(name, type="documents", write=["*"], meta=meta)
    assert isinstance(docs, Documents)
    return docs


async def _replica_of(node: orbitstore.Node, source: Documents) -> Documents:
    """Open ``source``'s database on ``node`` (copying the manifest block by hand)."""
    node.store.blocks.put(source.cid, source.manifest.to_block()[1])
    docs = await node.open(source.address, type="documents")
    assert isinstance(docs, Documents)
    return docs


async def _exchange(a: Documents, b: Documents) -> None:
    await a.receive_entries(list(b.entries()))
    await b.receive_entries(list(a.entries()))


# --- end to end -----------------------------------------------------------------------------


async def test_put_get_patch_delete_all_count() -> None:
    async with orbitstore.open_node() as node:
        docs = await _open(node)
        await docs.put({"_id": "ann", "age": 31, "tags": ["a"], "raw": b"\x00"})
        await docs.put_many([{"_id": "bob", "age": 25}, {"_id": "cy", "age": 40}])
        assert docs.get("ann") == {"_id": "ann", "age": 31, "tags": ["a"], "raw": b"\x00"}
        await docs.patch("ann", set={"age": 32}, unset=["tags"])
        assert docs.get("ann") == {"_id": "ann", "age": 32, "raw": b"\x00"}
        await docs.delete("bob")
        assert docs.get("bob") is None
        assert [d["_id"] for d in docs.all()] == ["ann", "cy"]
        assert [d["_id"] for d in docs.all(limit=1)] == ["ann"]
        assert docs.count() == 2
        assert len(docs) == 4  # put, put_many (one entry), patch (as a put), delete
        assert await docs.put_many([]) is None


async def test_custom_id_field_and_field_mode_patch() -> None:
    async with orbitstore.open_node() as node:
        docs = await _open(node, id_field="key", merge="field")
        await docs.put({"key": "k1", "n": 1})
        await docs.patch("k1", set={"m": 2})
        assert docs.get("k1") == {"key": "k1", "n": 1, "m": 2}
        assert docs.log.get(next(iter(docs.heads))).payload["op"] == "patch"  # type: ignore[union-attr]
        with pytest.raises(InvalidValueError):
            await docs.put({"_id": "k2"})


async def test_json_column_is_dag_json(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        docs = await _open(node)
        entry = await docs.put({"_id": "a", "b": b"hi", "l": docs.cid, "n": None})
        row = node.store.connection.execute(  # type: ignore[attr-defined]
            "SELECT doc, value, clock, writer, cid, deleted FROM view_documents WHERE id='a'"
        ).fetchone()
        assert row[0] == (
            f'{{"_id":"a","b":{{"/":{{"bytes":"aGk"}}}},"l":{{"/":"{docs.cid}"}},"n":null}}'
        )
        assert codec.decode(row[1]) == docs.get("a")
        assert (row[2], row[3], bytes(row[4]), row[5]) == (1, node.id, bytes(entry.cid), 0)


@pytest.mark.parametrize("merge", ["document", "field"])
async def test_concurrent_writes_to_different_fields(merge: str) -> None:
    async with orbitstore.open_node() as n1, orbitstore.open_node() as n2:
        a = await _open(n1, merge=merge)
        b = await _replica_of(n2, a)
        await a.put({"_id": "p", "x": 0, "y": 0})
        await _exchange(a, b)
        ea = await a.patch("p", set={"x": 1})
        eb = await b.patch("p", set={"y": 2})
        await _exchange(a, b)
        assert a.get("p") == b.get("p")
        if merge == "field":
            assert a.get("p") == {"_id": "p", "x": 1, "y": 2}  # both survive
        else:
            winner = max(ea, eb, key=lambda e: e.order_key)
            expected = (
                {"_id": "p", "x": 1, "y": 0} if winner is ea else {"_id": "p", "x": 0, "y": 2}
            )
            assert a.get("p") == expected  # one whole document wins


async def test_field_mode_delete_then_later_patch_resurrects_only_new_fields() -> None:
    async with orbitstore.open_node() as n1, orbitstore.open_node() as n2:
        a = await _open(n1, merge="field")
        b = await _replica_of(n2, a)
        await a.put({"_id": "p", "x": 0, "y": 0})
        await _exchange(a, b)
        await a.delete("p")  # clock 2
        await b.patch("p", set={"x": 5})  # clock 2, concurrent with the delete
        await b.patch("p", set={"z": 9})  # clock 3: after the delete in the total order
        await _exchange(a, b)
        # The patch at clock 3 sorts after the delete and survives; x survives only if
        # b's clock-2 patch sorts after a's delete.
        dele = next(e for e in a.entries() if e.payload["op"] == "del")
        px = next(e for e in b.entries() if e.payload.get("set") == {"x": 5})
        expected: dict[str, Any] = {"_id": "p", "z": 9}
        if px.order_key > dele.order_key:
            expected["x"] = 5
        assert a.get("p") == b.get("p") == expected


async def test_change_notifications_only_when_visible_doc_changes() -> None:
    async with orbitstore.open_node() as node:
        docs = await _open(node)
        async with docs.subscribe() as changes:
            await docs.put({"_id": "a", "n": 1})
            await docs.put({"_id": "a", "n": 1})  # same document: no change
            await docs.put_many([{"_id": "b"}, {"_id": "a", "n": 2}])
            await docs.delete("a")
            await docs.delete("a")  # already deleted: no change
            await docs.delete("never")  # tombstone only: no change
            got = []
            while (c := changes.receive_nowait()) is not None:
                assert isinstance(c, Change)
                got.append((c.kind, c.key, c.value, c.local))
        assert got == [
            ("put", "a", {"_id": "a", "n": 1}, True),
            ("put", "b", {"_id": "b"}, True),
            ("put", "a", {"_id": "a", "n": 2}, True),
            ("delete", "a", None, True),
        ]


async def test_reopen_on_sqlite_without_replay(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        docs = await _open(node, merge="field", indexes=["age"])
        await docs.put_many([{"_id": f"d{i}", "age": i, "city": f"c{i % 3}"} for i in range(50)])
        await docs.patch("d1", set={"age": 100})
        await docs.delete("d2")
        await docs.create_index("city")
        before = (docs.all(), docs.count(), docs.indexes(), docs._docs.state.rows())
        address = docs.address
    async with orbitstore.open_node(tmp_path) as node:
        docs = await node.open(address, type="documents")
        assert isinstance(docs, Documents)
        assert (docs.all(), docs.count(), docs.indexes(), docs._docs.state.rows()) == before
        assert docs.indexes() == ["age", "city"]
        assert docs.statistics().reapplied_on_open == 0


# --- indexes and where --------------------------------------------------------------------


def _plan(node: orbitstore.Node, docs: Documents, path: str, op: str, value: Any) -> str:
    state = docs._docs.state
    assert isinstance(state, SqliteDocumentsState)
    conn = node.store.connection  # type: ignore[attr-defined]
    rows = conn.execute(
        "EXPLAIN QUERY PLAN " + state.where_sql(path, op), (state._log, value, -1)
    ).fetchall()
    return " ".join(str(r[-1]) for r in rows)


async def test_declared_indexes_serve_where(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        docs = await _open(node, indexes=["age"])
        await docs.put_many(
            [{"_id": f"p{i}", "age": i % 90, "address": {"city": f"c{i % 7}"}} for i in range(300)]
        )
        assert "view_documents_1_age" in _plan(node, docs, "age", ">", 40)
        assert "view_documents_1_address.city" not in _plan(node, docs, "address.city", "=", "c1")
        await docs.create_index("address.city")
        assert "view_documents_1_address.city" in _plan(node, docs, "address.city", "=", "c1")
        assert docs.indexes() == ["address.city", "age"]
        got = docs.where("address.city", "=", "c3")
        assert got == [d for d in docs.all() if d["address"]["city"] == "c3"]
        oldest = sorted((d for d in docs.all() if d["age"] >= 88), key=lambda d: d["age"])
        assert docs.where("age", ">=", 88, limit=2) == oldest[:2]


def _python_where(docs: list[dict[str, Any]], op: str, value: Any) -> list[dict[str, Any]]:
    """The documented semantics: a missing field or null never matches; numbers sort
    before strings; booleans are 0/1."""

    def rank(v: Any) -> tuple[int, Any]:
        return (1, v) if isinstance(v, str) else (0, int(v) if isinstance(v, bool) else v)

    ops = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    found = [d for d in docs if d.get("f") is not None and ops[op](rank(d["f"]), rank(value))]
    return sorted(found, key=lambda d: (rank(d["f"]), d["_id"]))


_field_value = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["", "a", "b", "é", "10"])
)


def test_where_matches_python_filter_in_sqlite_and_memory(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "s.sqlite") as store:
        names = iter(range(10**6))

        @given(
            st.lists(st.one_of(st.just(None), _field_value), max_size=12),
            st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
            st.one_of(st.integers(-5, 5), st.sampled_from(["", "a", "b", "10"]), st.just(1.5)),
        )
        def check(values: list[Any], op: str, value: Any) -> None:
            docs = [
                {"_id": f"d{i:02}"} | ({} if v is None else {"f": v}) for i, v in enumerate(values)
            ]
            for i, v in enumerate(values):
                if v is None and i % 2:
                    docs[i]["f"] = None  # JSON null, not missing
            expected = _python_where(docs, op, value)
            log = _log(MemoryStore(), 1)
            entries = log.append_many([batch_op([put_op(d, id_field="_id") for d in docs])])
            for state in (_sqlite_state(store, f"w{next(names)}"), MemoryDocumentsState()):
                view = DocumentsView(state, DocumentsOptions(indexes=("f",)), lookup=log.get)
                with store.transaction():
                    view.apply(entries, local=True)
                assert view.where("f", op, value) == expected

        check()


# --- bad input ----------------------------------------------------------------------------------


async def test_bad_input_raises_typed_errors_and_writes_nothing() -> None:
    async with orbitstore.open_node() as node:
        docs = await _open(node)
        bad_docs: list[Any] = [
            ["not", "a", "map"],
            {"no_id": 1},
            {"_id": 7},
            {"_id": ""},
            {"_id": "x" * 1025},
            {"_id": "a", "v": {1, 2}},
            {"_id": "a", "v": float("nan")},
            {"_id": "a", 1: "non-string key"},
        ]
        for bad in bad_docs:
            with pytest.raises(InvalidValueError):
                await docs.put(bad)
            with pytest.raises(InvalidValueError):
                await docs.put_many([{"_id": "ok"}, bad])
        with pytest.raises(PayloadTooLargeError):
            await docs.put({"_id": "big", "blob": b"\x00" * 600_000})
        for bad_id in (None, 3, "", b"a"):
            with pytest.raises(InvalidValueError):
                await docs.delete(bad_id)  # type: ignore[arg-type]
            with pytest.raises(InvalidValueError):
                docs.get(bad_id)  # type: ignore[arg-type]
        with pytest.raises(NotFoundError):
            await docs.patch("missing", set={"a": 1})
        await docs.put({"_id": "a"})
        for kwargs in (
            {"set": {"_id": "b"}},
            {"unset": ["_id"]},
            {"set": {"a": 1}, "unset": ["a"]},
            {},
            {"unset": "a"},
            {"set": {"a": {3}}},
        ):
            with pytest.raises(InvalidValueError):
                await docs.patch("a", **kwargs)
        for path in ("", "a..b", "1a", "a-b", "a b", "a.'b", "$.a", "a" * 65, 3):
            with pytest.raises(InvalidValueError):
                await docs.create_index(path)  # type: ignore[arg-type]
            with pytest.raises(InvalidValueError):
                docs.where(path, "=", 1)  # type: ignore[arg-type]
        for op, value in (("==", 1), ("like", "a"), ("=", None), ("=", True), ("=", [1])):
            with pytest.raises(InvalidValueError):
                docs.where("a", op, value)
        with pytest.raises(InvalidValueError):
            docs.all(limit=-1)
        assert len(docs) == 1 and docs.all() == [{"_id": "a"}] and docs.indexes() == []


@pytest.mark.parametrize(
    "meta",
    [
        {"merge": "fields"},
        {"id_field": ""},
        {"id_field": 3},
        {"indexes": "age"},
        {"indexes": ["a..b"]},
        {"indexes": ["a", "a"]},
        {"index": ["a"]},
    ],
)
async def test_bad_options_are_refused_before_anything_is_written(meta: dict[str, Any]) -> None:
    async with orbitstore.open_node() as node:
        with pytest.raises(InvalidValueError):
            await node.open("d", type="documents", meta=meta)
        assert node.databases() == {}


async def test_foreign_malformed_ops_are_ignored() -> None:
    async with orbitstore.open_node() as node:
        docs = await _open(node)
        await docs.append_many(
            [
                {"op": "put", "doc": {"_id": 1}},
                {"op": "put", "doc": {"_id": "a"}, "extra": 1},
                {"op": "del"},
                {"op": "patch", "id": "a", "set": {}, "unset": []},
                {"op": "batch", "ops": [{"op": "put", "doc": {"_id": "b"}}, {"op": "nope"}]},
                {"op": "batch", "ops": "x"},
                "garbage",
                {"op": "put", "doc": {"_id": "c"}},
                {"op": "patch", "id": "c", "set": {"x": 1}, "unset": []},  # document mode
            ]
        )
        assert docs.all() == [{"_id": "c"}]


# --- convergence (Hypothesis) ----------------------------------------------------------------


def _log(store: MemoryStore, seed: int) -> OpLog:
    access = StaticAccess.of(["*"])
    db, _ = Manifest(name="docs", type="documents", access=access).to_block()
    return OpLog(
        db=db, access=access, store=store.log_store(db), identity=Identity(bytes([seed]) * 32)
    )


def _sqlite_state(store: SqliteStore, name: str) -> SqliteDocumentsState:
    db = Manifest(name=name, type="documents", access=StaticAccess.of(["*"])).cid
    state = open_view_state(store, "documents", db)
    assert isinstance(state, SqliteDocumentsState)
    return state


_ids = st.sampled_from(IDS)
_vals = st.integers(0, 3)
_put = st.builds(
    lambda i, f: put_op({"_id": i, **f}, id_field="_id"),
    _ids,
    st.dictionaries(st.sampled_from(FIELDS), _vals, max_size=3),
)
_del = st.builds(delete_op, _ids)


@st.composite
def _patch(draw: st.DrawFn) -> dict[str, Any]:
    to_set = draw(st.dictionaries(st.sampled_from(FIELDS), _vals, max_size=2))
    rest = [f for f in FIELDS if f not in to_set]
    unset = draw(st.lists(st.sampled_from(rest), max_size=2, unique=True)) if rest else []
    if not to_set and not unset:
        to_set = {"x": draw(_vals)}
    return patch_op(draw(_ids), set=to_set, unset=unset, id_field="_id")


_single = st.one_of(_put, _del, _patch())
_payload = st.one_of(_single, st.builds(batch_op, st.lists(_single, min_size=1, max_size=3)))
# a step: (writer, payload) or ("sync", from, to)
_step = st.one_of(
    st.tuples(st.integers(0, 3), _payload),
    st.tuples(st.just("sync"), st.integers(0, 3), st.integers(0, 3)),
)

Row = tuple[str, tuple[int, str, bytes], bytes | None]


def _ops_of(entry: Entry) -> list[tuple[tuple[int, str, bytes, int], dict[str, Any]]]:
    p = entry.payload
    ops = p["ops"] if p["op"] == "batch" else [p]
    return [((entry.clock, entry.writer, bytes(entry.cid), i), op) for i, op in enumerate(ops)]


def _op_id(op: dict[str, Any]) -> str:
    return str(op["doc"]["_id"] if op["op"] == "put" else op["id"])


def _model(entries: list[Entry], merge: str) -> list[Row]:
    """The definition in docs/types/documents.md, computed from the whole set of ops."""
    by_id: dict[str, list[tuple[tuple[int, str, bytes, int], dict[str, Any]]]] = {}
    for e in entries:
        for key, op in _ops_of(e):
            by_id.setdefault(_op_id(op), []).append((key, op))
    rows: list[Row] = []
    for doc_id, ops in sorted(by_id.items()):
        if merge == "document":
            puts_dels = [(k, op) for k, op in ops if op["op"] != "patch"]
            if not puts_dels:
                continue
            key, op = max(puts_dels, key=lambda t: t[0])
            value = codec.encode(op["doc"]) if op["op"] == "put" else None
            rows.append((doc_id, key[:3], value))
            continue
        clears = [k for k, op in ops if op["op"] in ("put", "del")]
        clear = max(clears) if clears else None
        latest: dict[str, tuple[tuple[int, str, bytes, int], bool, Any]] = {}
        for key, op in ops:
            writes: dict[str, tuple[bool, Any]] = {}
            if op["op"] == "put":
                writes = {f: (True, v) for f, v in op["doc"].items()}
            elif op["op"] == "patch":
                writes = {f: (True, v) for f, v in op["set"].items()}
                writes |= {f: (False, None) for f in op["unset"]}
            for f, (present, v) in writes.items():
                if f not in latest or latest[f][0] < key:
                    latest[f] = (key, present, v)
        live = {f: r for f, r in latest.items() if clear is None or r[0] >= clear}
        visible = {f: v for f, (_, present, v) in live.items() if present}
        doc = {**visible, "_id": doc_id} if visible else None
        keys = [k for k, _, _ in live.values()] + ([clear] if clear is not None else [])
        rows.append((doc_id, max(keys)[:3], None if doc is None else codec.encode(doc)))
    return rows


@pytest.mark.parametrize("merge", ["document", "field"])
def test_replicas_converge_to_the_model(merge: str, tmp_path: Path) -> None:
    options = DocumentsOptions(merge=merge)  # type: ignore[arg-type]
    with SqliteStore(tmp_path / "s.sqlite") as store:
        names = iter(range(10**6))

        @given(
            n=st.integers(2, 4),
            steps=st.lists(_step, max_size=25),
            rnd=st.randoms(use_true_random=False),
        )
        def check(n: int, steps: list[Any], rnd: random.Random) -> None:
            logs = [_log(MemoryStore(), i + 1) for i in range(n)]
            replicas = [
                (log, DocumentsView(MemoryDocumentsState(), options, lookup=log.get))
                for log in logs
            ]
            written: list[Entry] = []
            for step in steps:
                if step[0] == "sync":
                    (src, _), (dst_log, dst_view) = replicas[step[1] % n], replicas[step[2] % n]
                    added = dst_log.receive_entries(list(src.traverse())).added
                    dst_view.apply(added, local=False)
                    continue
                log, view = replicas[step[0] % n]
                entries = log.append_many([step[1]])
                view.apply(entries, local=True)
                written.extend(entries)
            for log, view in replicas:
                delivery = written + rnd.sample(written, k=min(5, len(written)))  # duplicates
                rnd.shuffle(delivery)
                for e in delivery:
                    view.apply(log.receive_entries([e]).added, local=False)
            rows = [view.state.rows() for _, view in replicas]
            assert all(r == rows[0] for r in rows)
            assert rows[0] == _model(written, merge)
            # a rebuild from scratch, on SQLite, in total order: the same rows and documents
            fresh = DocumentsView(
                _sqlite_state(store, f"r{next(names)}"), options, lookup=replicas[0][0].get
            )
            with store.transaction():
                fresh.apply(list(replicas[0][0].traverse()), local=False)
            assert fresh.state.rows() == rows[0]
            assert fresh.all() == replicas[0][1].all()
            assert fresh.count() == replicas[0][1].count()

        check()


def test_public_name() -> None:
    assert orbitstore.Documents is Documents
