"""Differential test: random documents and random queries from the supported grammar;
our engine must return exactly what a plain Python evaluation of the same query (with
SQLite's comparison and three-valued NULL rules) returns."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.node.query import QueryService
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.testing.view_tables import Tables

FIELDS = ("a", "b", "s")
MISSING = object()

values = st.one_of(
    st.none(), st.integers(-3, 3), st.sampled_from(["", "a", "B", "ab", "Ba", "b_", "x%"])
)
docs_strategy = st.lists(
    st.fixed_dictionaries({}, optional={f: values for f in FIELDS}), max_size=12
)
constants = st.one_of(st.integers(-3, 3), st.sampled_from(["a", "ab", "B", ""]))


# -- a tiny query AST, rendered to SQL and evaluated in Python -----------------------


@dataclass(frozen=True)
class Cmp:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class In:
    field: str
    values: tuple[Any, ...]
    negate: bool


@dataclass(frozen=True)
class Between:
    field: str
    low: Any
    high: Any


@dataclass(frozen=True)
class Like:
    field: str
    pattern: str


@dataclass(frozen=True)
class IsNull:
    field: str
    negate: bool


@dataclass(frozen=True)
class Bool:
    op: str  # AND, OR
    left: Any
    right: Any


@dataclass(frozen=True)
class Not:
    inner: Any


fields = st.sampled_from(FIELDS)
leaves = st.one_of(
    st.builds(Cmp, fields, st.sampled_from(["=", "<>", "<", "<=", ">", ">="]), constants),
    st.builds(In, fields, st.lists(constants, min_size=1, max_size=3).map(tuple), st.booleans()),
    st.builds(Between, fields, constants, constants),
    st.builds(Like, fields, st.text(alphabet="abAB_%", max_size=3)),
    st.builds(IsNull, fields, st.booleans()),
)
conditions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(Bool, st.sampled_from(["AND", "OR"]), inner, inner), st.builds(Not, inner)
    ),
    max_leaves=6,
)


class Renderer:
    """SQL text for a condition, with a random JSON path spelling and literal/param."""

    def __init__(self, draw: Any) -> None:
        self.draw = draw
        self.params: list[Any] = []

    def field(self, name: str) -> str:
        return self.draw(
            st.sampled_from(
                [f"doc.{name}", f"doc->>'$.{name}'", f"json_extract(doc, '$.{name}')",
                 f"users.doc.{name}"]
            )
        )  # fmt: skip

    def const(self, value: Any) -> str:
        if self.draw(st.booleans()):
            self.params.append(value)
            return "?"
        if isinstance(value, str):
            return "'" + value.replace("'", "''") + "'"
        return str(value)

    def render(self, c: Any) -> str:
        if isinstance(c, Cmp):
            return f"{self.field(c.field)} {c.op} {self.const(c.value)}"
        if isinstance(c, In):
            items = ", ".join(self.const(v) for v in c.values)
            return f"{self.field(c.field)} {'NOT ' if c.negate else ''}IN ({items})"
        if isinstance(c, Between):
            f = self.field(c.field)
            return f"{f} BETWEEN {self.const(c.low)} AND {self.const(c.high)}"
        if isinstance(c, Like):
            return f"{self.field(c.field)} LIKE {self.const(c.pattern)}"
        if isinstance(c, IsNull):
            return f"{self.field(c.field)} IS {'NOT ' if c.negate else ''}NULL"
        if isinstance(c, Bool):
            return f"({self.render(c.left)} {c.op} {self.render(c.right)})"
        assert isinstance(c, Not)
        return f"NOT ({self.render(c.inner)})"


# -- Python evaluation with SQLite's rules ---------------------------------------------


def sort_key(v: Any) -> tuple[int, Any]:
    """SQLite's order of values: NULL < numbers < text."""
    if v is None:
        return (0, 0)
    if isinstance(v, int):
        return (1, v)
    return (2, v)


def compare(x: Any, y: Any, op: str) -> bool | None:
    if x is None or y is None:
        return None
    kx, ky = sort_key(x), sort_key(y)
    return {
        "=": kx == ky, "<>": kx != ky, "<": kx < ky, "<=": kx <= ky, ">": kx > ky,
        ">=": kx >= ky,
    }[op]  # fmt: skip


def like(x: Any, pattern: str) -> bool | None:
    if x is None:
        return None
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, str(x), re.IGNORECASE | re.DOTALL) is not None


def not3(v: bool | None) -> bool | None:
    return None if v is None else not v


def and3(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def or3(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def evaluate(c: Any, doc: dict[str, Any]) -> bool | None:
    if isinstance(c, Cmp):
        return compare(doc.get(c.field), c.value, c.op)
    if isinstance(c, In):
        x = doc.get(c.field)
        if x is None:
            return None
        found = any(compare(x, v, "=") for v in c.values)
        return not found if c.negate else found
    if isinstance(c, Between):
        x = doc.get(c.field)
        return and3(compare(x, c.low, ">="), compare(x, c.high, "<="))
    if isinstance(c, Like):
        return like(doc.get(c.field), c.pattern)
    if isinstance(c, IsNull):
        isnull = doc.get(c.field) is None
        return not isnull if c.negate else isnull
    if isinstance(c, Bool):
        f = and3 if c.op == "AND" else or3
        return f(evaluate(c.left, doc), evaluate(c.right, doc))
    assert isinstance(c, Not)
    return not3(evaluate(c.inner, doc))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tables, QueryService]]:
    store = SqliteStore(tmp_path_factory.mktemp("diff") / "node.sqlite")
    t = Tables(store)
    t.source("users", "documents")
    t.index("users", "a")  # forced-index plans must give the same answers as scans
    service = QueryService(store)
    yield t, service
    service.close()
    store.close()


def load(t: Tables, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with t.store.transaction():
        t.conn.execute("DELETE FROM view_documents")
    rows = [{"_id": f"d{i:02}", **d} for i, d in enumerate(docs)]
    t.put_docs("users", rows)
    return rows


@given(docs=docs_strategy, cond=conditions, data=st.data())
def test_where_matches_python(env: Any, docs: Any, cond: Any, data: st.DataObject) -> None:
    t, service = env
    rows = load(t, docs)
    r = Renderer(data.draw)
    sql = f"SELECT id, doc.a, doc.b, doc.s FROM users WHERE {r.render(cond)} ORDER BY id"
    got = service.query(sql, r.params, t.catalog(service)).rows
    want = [
        (d["_id"], d.get("a"), d.get("b"), d.get("s")) for d in rows if evaluate(cond, d) is True
    ]
    assert list(got) == want, sql


@given(
    docs=docs_strategy,
    cond=conditions,
    order=st.lists(st.tuples(fields, st.booleans()), min_size=1, max_size=2),
    limit=st.none() | st.integers(0, 5),
    offset=st.integers(0, 3),
    data=st.data(),
)
def test_order_limit_offset_match_python(  # noqa: PLR0917
    env: Any,
    docs: Any,
    cond: Any,
    order: list[tuple[str, bool]],
    limit: int | None,
    offset: int,
    data: st.DataObject,
) -> None:
    t, service = env
    rows = load(t, docs)
    r = Renderer(data.draw)
    where = r.render(cond)
    order_sql = ", ".join(f"{r.field(f)}{' DESC' if desc else ''}" for f, desc in order)
    sql = f"SELECT id FROM users WHERE {where} ORDER BY {order_sql}, id"
    if limit is not None:
        sql += f" LIMIT {limit} OFFSET {offset}"
    got = [row[0] for row in service.query(sql, r.params, t.catalog(service)).rows]

    matching = [d for d in rows if evaluate(cond, d) is True]
    matching.sort(key=lambda d: d["_id"])
    for f, desc in reversed(order):  # stable sorts, last key first
        matching.sort(key=lambda d, f=f: sort_key(d.get(f)), reverse=desc)
    want = [d["_id"] for d in matching]
    if limit is not None:
        want = want[offset : offset + limit]
    assert got == want, sql
