"""Mongo-style filters: compiled to the same engine, checked against a Python
evaluation of the same filter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.errors import QueryError
from orbitstore.node.query import QueryService
from orbitstore.query import compile_find
from orbitstore.query.catalog import Catalog
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.testing.view_tables import Tables

MISSING = object()
FIELDS = ("a", "b", "n.x")
scalars = st.one_of(st.none(), st.integers(-2, 2), st.sampled_from(["a", "b", "ab"]))
non_null = st.one_of(st.integers(-2, 2), st.sampled_from(["a", "b", "ab"]))
docs_strategy = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "a": scalars,
            "b": scalars,
            "n": st.fixed_dictionaries({}, optional={"x": scalars}),
        },
    ),
    max_size=10,
)


def field_ops(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    ops = st.one_of(
        st.builds(lambda v: {"$eq": v}, scalars),
        st.builds(lambda v: {"$ne": v}, scalars),
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), non_null),
        st.builds(lambda vs: {"$in": vs}, st.lists(scalars, max_size=3)),
        st.builds(lambda vs: {"$nin": vs}, st.lists(scalars, max_size=3)),
        st.builds(lambda b: {"$exists": b}, st.booleans()),
    )
    if depth > 0:
        ops = ops | st.builds(lambda inner: {"$not": inner}, field_ops(depth - 1))
    return ops


def filters(depth: int = 2) -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.dictionaries(
        st.sampled_from(FIELDS), st.one_of(scalars, field_ops(1)), min_size=1, max_size=2
    )
    if depth == 0:
        return leaf
    sub = st.lists(filters(depth - 1), min_size=1, max_size=3)
    return leaf | st.builds(lambda op, fs: {op: fs}, st.sampled_from(["$and", "$or", "$nor"]), sub)


def get(doc: dict[str, Any], path: str) -> Any:
    cur: Any = doc
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return MISSING
        cur = cur[part]
    return cur


def key(v: Any) -> tuple[int, Any]:
    return (1, v) if isinstance(v, int) else (2, v)


def eq(x: Any, v: Any) -> bool:
    return x is not None and v is not None and key(x) == key(v)


def op_matches(x: Any, op: str, v: Any) -> bool:
    present = x is not MISSING
    x = None if x is MISSING else x
    if op == "$eq":
        return x is None if v is None else eq(x, v)
    if op == "$ne":
        return x is not None if v is None else (x is None or not eq(x, v))
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if x is None:
            return False
        kx, kv = key(x), key(v)
        return {"$gt": kx > kv, "$gte": kx >= kv, "$lt": kx < kv, "$lte": kx <= kv}[op]
    if op == "$in":
        return any(eq(x, w) for w in v) or (None in v and x is None)
    if op == "$nin":
        if None in v:
            return x is not None and not any(eq(x, w) for w in v)
        return x is None or not any(eq(x, w) for w in v)
    if op == "$exists":
        return present == v
    assert op == "$not"
    return not all(op_matches(get_raw(x, present), o, w) for o, w in v.items())


def get_raw(x: Any, present: bool) -> Any:
    return x if present else MISSING


def matches(doc: dict[str, Any], spec: dict[str, Any]) -> bool:
    for k, cond in spec.items():
        if k == "$and":
            ok = all(matches(doc, s) for s in cond)
        elif k == "$or":
            ok = any(matches(doc, s) for s in cond)
        elif k == "$nor":
            ok = not any(matches(doc, s) for s in cond)
        elif isinstance(cond, dict):
            ok = all(op_matches(get(doc, k), op, v) for op, v in cond.items())
        else:
            ok = op_matches(get(doc, k), "$eq", cond)
        if not ok:
            return False
    return True


class FakeDocuments:
    """Stands in for the documents handle: ``find`` as ``Documents.find`` runs it."""

    def __init__(self, service: QueryService, catalog: Catalog) -> None:
        self.service = service
        self.catalog = catalog

    def find(self, spec: Any = None, **options: Any) -> list[Any]:
        sql, params = compile_find(spec or {}, **options)
        return [row[0] for row in self.service.query(sql, params, self.catalog).rows]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tables, FakeDocuments]]:
    store = SqliteStore(tmp_path_factory.mktemp("find") / "node.sqlite")
    t = Tables(store)
    src = t.source("users", "documents")
    t.index("users", "a")
    service = QueryService(store)
    catalog = Catalog.of([("this", service.table_source("users", "documents", src.log_id))])
    yield t, FakeDocuments(service, catalog)
    service.close()
    store.close()


def load(t: Tables, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with t.store.transaction():
        t.conn.execute("DELETE FROM view_documents")
    rows = [{"_id": f"d{i:02}", **d} for i, d in enumerate(docs)]
    t.put_docs("users", rows)
    return rows


@given(docs=docs_strategy, spec=filters())
def test_find_matches_python(env: Any, docs: Any, spec: dict[str, Any]) -> None:
    t, users = env
    rows = load(t, docs)
    got = [d["_id"] for d in users.find(spec)]
    want = [d["_id"] for d in rows if matches(d, spec)]
    assert got == want, spec


def test_sort_limit_skip(env: Any) -> None:
    t, users = env
    load(t, [{"a": 3, "b": "x"}, {"a": 1}, {"a": 2, "b": "y"}, {"b": "z"}])
    assert [d.get("a") for d in users.find({}, sort=[("a", -1)])] == [3, 2, 1, None]
    assert [d["_id"] for d in users.find({"a": {"$gte": 1}}, sort=[("a", 1)], limit=2)] == [
        "d01",
        "d02",
    ]
    assert [d["_id"] for d in users.find({}, sort=[("a", 1)], limit=2, skip=1)] == ["d01", "d02"]
    assert users.find({"b": {"$exists": False}}) == [{"_id": "d01", "a": 1}]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"a": {"$regex": "x"}}, "unknown operator"),
        ({"$where": "1"}, "unknown top-level operator"),
        ({"a": {"$in": 3}}, "takes a list"),
        ({"a": {"$gt": None}}, "needs a value"),
        ({"a": {"$exists": 1}}, "True or False"),
        ({"a": [1, 2]}, "compares with"),
        ({"$or": []}, "non-empty list"),
        ({"a..b": 1}, "empty segment"),
        ({'a"b': 1}, "double quote"),
    ],
)
def test_bad_filters(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(QueryError, match=message):
        compile_find(spec)


def test_same_shape_filters_share_one_compiled_query(env: Any) -> None:
    _, users = env
    users.find({"a": {"$gt": 1}, "b": "x"})
    misses = users.service.compiler.misses
    users.find({"a": {"$gt": 7}, "b": "q"})
    assert users.service.compiler.misses == misses


def test_equality_filter_uses_the_declared_index(env: Any) -> None:
    _, users = env
    sql, params = compile_find({"a": 2})
    plan = users.service.explain(sql, params, users.catalog)
    assert plan.indexes == ("view_documents_a",)
