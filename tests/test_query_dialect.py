"""The SQL dialect over each view type: columns, JSON paths, parameters, limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orbitstore.core.cid import Cid
from orbitstore.errors import QueryError
from orbitstore.node.query import QueryService
from orbitstore.query import QueryLimits, QueryResult, compile_select
from orbitstore.query.catalog import Catalog
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.testing.view_tables import WRITER, Tables

USERS = [
    {"_id": "a", "name": "Ann", "age": 31, "address": {"city": "Oslo"}, "tags": ["x", "y"]},
    {"_id": "b", "name": "Bob", "age": 25, "address": {"city": "Rome"}, "ok": True},
    {"_id": "c", "name": "cy", "age": 40, "ok": False, "blob": {"/": {"bytes": "AQID"}}},
    {"_id": "d", "name": "Dee", "age": None},
]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Tables, QueryService]]:
    store = SqliteStore(tmp_path / "node.sqlite")
    t = Tables(store)
    t.source("users", "documents")
    t.source("settings", "keyvalue")
    t.source("chat", "feed")
    t.put_docs("users", USERS)
    t.put_kv("settings", {"theme": "dark", "size": 12, "nested": {"a": {"b": [1, 2]}}},
             deleted=["old"])  # fmt: skip
    t.put_feed("chat", [{"text": "hi", "n": 1}, {"text": "yo", "n": 2}, "plain"])
    service = QueryService(store)
    yield t, service
    service.close()
    store.close()


def q(env: tuple[Tables, QueryService], sql: str, params: Any = None) -> list[dict[str, Any]]:
    t, service = env
    return service.query(sql, params, t.catalog(service)).dicts()


def test_documents_paths_and_decoding(env: Any) -> None:
    rows = q(
        env,
        "SELECT id, doc.name, doc.address.city AS city, doc.tags, doc.ok, doc.blob"
        " FROM users ORDER BY id",
    )
    assert rows[0] == {
        "id": "a", "doc.name": "Ann", "city": "Oslo", "doc.tags": ["x", "y"],
        "doc.ok": None, "doc.blob": None,
    }  # fmt: skip
    assert rows[1]["doc.ok"] is True and rows[2]["doc.ok"] is False
    assert rows[2]["doc.blob"] == b"\x01\x02\x03"
    whole = q(env, "SELECT doc FROM users WHERE id = 'a'")
    assert whole == [{"doc": USERS[0]}]


@pytest.mark.parametrize(
    "expr",
    [
        "doc.address.city",
        "u.doc.address.city",
        "doc->>'$.address.city'",
        "doc->'$.address.city'",  # -> is compiled to json_extract too: same results
        "json_extract(doc, '$.address.city')",
        "doc.address->>'city'",
        'doc."address"."city"',
    ],
)
def test_every_json_path_spelling_finds_the_same_rows(env: Any, expr: str) -> None:
    assert q(env, f"SELECT id FROM users u WHERE {expr} = 'Oslo'") == [{"id": "a"}]
    assert q(env, f"SELECT id FROM users u WHERE {expr} IN (?, ?) ORDER BY id", ["Rome", "x"]) == [
        {"id": "b"}
    ]


def test_table_qualified_path_without_alias(env: Any) -> None:
    assert q(env, "SELECT users.id FROM users WHERE users.doc.address.city = 'Oslo'") == [
        {"id": "a"}
    ]


def test_array_elements_and_numbers(env: Any) -> None:
    assert q(env, "SELECT id FROM users WHERE doc->>'$.tags[1]' = 'y'") == [{"id": "a"}]
    assert q(env, "SELECT key FROM settings WHERE value->>'$.a.b[0]' = 1") == [{"key": "nested"}]
    # SQLite's order: NULL < numbers < text, so text and JSON containers are "> 10" too
    assert q(env, "SELECT key FROM settings WHERE value > 10 ORDER BY key") == [
        {"key": "nested"}, {"key": "size"}, {"key": "theme"},
    ]  # fmt: skip
    assert q(env, "SELECT key FROM settings WHERE typeof(value) = 'integer' AND value > 10") == [
        {"key": "size"}
    ]


def test_keyvalue_columns_and_deleted_rows_hidden(env: Any) -> None:
    rows = q(env, "SELECT * FROM settings ORDER BY key")
    assert [r["key"] for r in rows] == ["nested", "size", "theme"]  # "old" is deleted
    assert rows[2]["value"] == "dark" and rows[1]["value"] == 12
    assert rows[0]["value"] == {"a": {"b": [1, 2]}}
    assert rows[0]["writer"] == WRITER and isinstance(rows[0]["clock"], int)
    Cid.parse(rows[0]["cid"])
    assert q(env, "SELECT count(*) AS n FROM settings") == [{"n": 3}]
    assert q(env, "SELECT key FROM settings WHERE key = 'old'") == []
    by_cid = q(env, "SELECT key FROM settings WHERE cid = ?", [rows[1]["cid"]])
    assert by_cid == [{"key": "size"}]
    as_cid = q(env, "SELECT key FROM settings WHERE cid = ?", [Cid.parse(rows[1]["cid"])])
    assert as_cid == [{"key": "size"}]


def test_deleted_documents_disappear(env: Any) -> None:
    t, _ = env
    t.delete_doc("users", "a")
    assert [r["id"] for r in q(env, "SELECT id FROM users ORDER BY id")] == ["b", "c", "d"]


def test_feed_columns(env: Any) -> None:
    rows = q(env, "SELECT id, cid, writer, clock, ts, value FROM chat ORDER BY clock DESC")
    assert [r["value"] for r in rows] == ["plain", {"text": "yo", "n": 2}, {"text": "hi", "n": 1}]
    assert rows[0]["id"] == rows[0]["cid"]
    assert q(env, "SELECT value.text FROM chat WHERE value.n >= 2") == [{"value.text": "yo"}]


def test_aggregates_group_by_having_distinct(env: Any) -> None:
    rows = q(
        env,
        "SELECT doc.address.city AS city, count(*) AS n, max(doc.age) AS oldest"
        " FROM users GROUP BY city HAVING n >= 1 ORDER BY city",
    )
    assert rows == [
        {"city": None, "n": 2, "oldest": 40},
        {"city": "Oslo", "n": 1, "oldest": 31},
        {"city": "Rome", "n": 1, "oldest": 25},
    ]
    assert q(env, "SELECT sum(doc.age) s, avg(doc.age) a, min(doc.age) m FROM users") == [
        {"s": 96, "a": 32.0, "m": 25}
    ]
    assert q(env, "SELECT DISTINCT typeof(doc.age) t FROM users ORDER BY t") == [
        {"t": "integer"},
        {"t": "null"},
    ]
    assert q(env, "SELECT count(DISTINCT doc.ok) n FROM users") == [{"n": 2}]


def test_scalar_functions_and_operators(env: Any) -> None:
    rows = q(
        env,
        "SELECT upper(doc.name) u, lower(doc.name) l, length(doc.name) n,"
        " substr(doc.name, 1, 2) s, coalesce(doc.age, -1) c, ifnull(doc.ok, 0) f,"
        " round(doc.age / 3.0, 1) r, abs(-doc.age) a, doc.name || '!' x,"
        " CASE WHEN doc.age > 30 THEN 'old' ELSE 'young' END k,"
        " iif(doc.age IS NULL, 'none', 'some') i, CAST(doc.age AS TEXT) t"
        " FROM users WHERE id = :id",
        {"id": "a"},
    )
    assert rows == [
        {"u": "ANN", "l": "ann", "n": 3, "s": "An", "c": 31, "f": 0, "r": 10.3, "a": 31,
         "x": "Ann!", "k": "old", "i": "some", "t": "31"}
    ]  # fmt: skip


def test_where_predicates(env: Any) -> None:
    def ids(where: str, params: Any = None) -> list[str]:
        return [r["id"] for r in q(env, f"SELECT id FROM users WHERE {where} ORDER BY id", params)]

    assert ids("doc.name LIKE 'c%'") == ["c"]  # LIKE is case-insensitive
    assert ids("doc.name NOT LIKE '%e%'") == ["a", "b", "c"]
    assert ids("doc.age BETWEEN 25 AND 31") == ["a", "b"]
    assert ids("doc.age IS NULL") == ["d"]
    assert ids("doc.ok IS NOT NULL") == ["b", "c"]
    assert ids("doc.ok = true") == ["b"]
    assert ids("doc.age NOT IN (25, 40)") == ["a"]
    assert ids("NOT (doc.age > 30) OR doc.name = ?", ["Dee"]) == ["b", "d"]


def test_join_between_databases(env: Any) -> None:
    rows = q(
        env,
        "SELECT u.id, s.value AS theme FROM users u JOIN settings s ON s.key = 'theme'"
        " WHERE u.doc.age > 30 ORDER BY u.id",
    )
    assert rows == [{"id": "a", "theme": "dark"}, {"id": "c", "theme": "dark"}]
    left = q(
        env,
        "SELECT u.id, c.value.text AS t FROM users u LEFT JOIN chat c ON c.value.n = u.doc.age"
        " ORDER BY u.id LIMIT 2",
    )
    assert left == [{"id": "a", "t": None}, {"id": "b", "t": None}]
    star = q(env, "SELECT * FROM users u JOIN settings s ON s.key = u.id")
    assert star == []
    cols = env[1].query("SELECT u.*, s.key FROM users u, settings s LIMIT 1", None,
                        env[0].catalog(env[1])).columns  # fmt: skip
    assert cols == ("u.id", "u.doc", "u.writer", "u.clock", "u.cid", "key")


def test_order_limit_offset_and_params(env: Any) -> None:
    base = "SELECT id FROM users ORDER BY doc.age DESC, id"
    assert [r["id"] for r in q(env, base)] == ["c", "a", "b", "d"]  # NULL sorts last on DESC
    assert [r["id"] for r in q(env, base + " LIMIT 2 OFFSET 1")] == ["a", "b"]
    assert [r["id"] for r in q(env, base + " LIMIT ? OFFSET ?", [1, 2])] == ["b"]
    assert [r["id"] for r in q(env, base + " LIMIT :n", {"n": 1})] == ["c"]
    assert [r["id"] for r in q(env, "SELECT id FROM users ORDER BY 1 DESC LIMIT 1")] == ["d"]


@pytest.mark.parametrize(
    ("sql", "params", "message"),
    [
        ("SELECT id FROM users WHERE id = ? AND doc.age > :a", [1], r"either \? or :name"),
        ("SELECT id FROM users WHERE id = ?", [], r"1 \? parameter"),
        ("SELECT id FROM users WHERE id = ?", {"x": 1}, "list or tuple"),
        ("SELECT id FROM users WHERE id = :id", ["a"], "dict"),
        ("SELECT id FROM users WHERE id = :id", {}, "no value for parameter"),
        ("SELECT id FROM users WHERE id = ?", [{"a": 1}], "a parameter must be"),
        ("SELECT id FROM users LIMIT ?", [10**9], "above the maximum"),
        ("SELECT id FROM users LIMIT ?", ["5"], "non-negative integer"),
        ("SELECT id FROM users WHERE id = ?1", [1], "syntax error"),
    ],
)
def test_bad_parameters(env: Any, sql: str, params: Any, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        q(env, sql, params)


def test_result_and_time_limits(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "n.sqlite")
    t = Tables(store)
    t.source("users", "documents")
    t.put_docs("users", ({"_id": str(i), "n": i} for i in range(300)))
    small = QueryService(store, QueryLimits(max_rows=100, timeout_s=0.05))
    cat = t.catalog(small)
    assert len(small.query("SELECT id FROM users LIMIT 100", None, cat)) == 100
    with pytest.raises(QueryError, match="more than 100 rows"):
        small.query("SELECT id FROM users", None, cat)
    with pytest.raises(QueryError, match="LIMIT 101 is above"):
        small.query("SELECT id FROM users LIMIT 101", None, cat)
    # 300**3 = 27 million joined rows cannot be counted in 50 ms
    with pytest.raises(QueryError, match="budget"):
        small.query("SELECT count(*) FROM users a, users b, users c", None, cat)
    small.close()
    store.close()


def test_errors_name_line_and_column(env: Any) -> None:
    with pytest.raises(QueryError) as info:
        q(env, "SELECT id,\n  nope FROM users")
    assert (info.value.line, info.value.column) == (2, 6)
    assert "unknown column 'nope'" in str(info.value) and "doc.nope" in str(info.value)
    with pytest.raises(QueryError, match="syntax error") as info:
        q(env, "SELECT id FROM users WHERE (")
    assert info.value.line == 1
    with pytest.raises(QueryError, match="ambiguous"):
        q(env, "SELECT id FROM users a JOIN users b ON 1")
    with pytest.raises(QueryError, match="not JSON"):
        q(env, "SELECT id.x FROM users")


def test_compiled_queries_are_cached(env: Any) -> None:
    t, service = env
    cat = t.catalog(service)
    before = service.compiler.misses
    for _ in range(5):
        service.query("SELECT id FROM users WHERE doc.age > ?", [1], cat)
    assert service.compiler.misses == before + 1 and service.compiler.hits >= 4


def test_query_result_shape() -> None:
    result = QueryResult(("a", "b"), ((1, 2), (3, 4)))
    assert list(result) == [{"a": 1, "b": 2}, {"a": 3, "b": 4}] and len(result) == 2
    cat = Catalog.of([])
    assert compile_select("SELECT 1 + 1 AS two", cat).columns == ("two",)


def test_limit_errors_are_query_limit_errors(env: Any) -> None:
    from orbitstore.errors import QueryLimitError

    with pytest.raises(QueryLimitError) as info:
        q(env, "SELECT id FROM users LIMIT 10001")
    assert info.value.code == "query_limit" and info.value.column is not None
    with pytest.raises(QueryLimitError):
        q(env, "SELECT id FROM users LIMIT ?", [10001])


def test_trim_family_and_whitelisted_aggregates(env: Any) -> None:
    rows = q(
        env,
        "SELECT ltrim('  x') l, rtrim('x  ') r, trim('..x..', '.') t, total(doc.age) tot,"
        " group_concat(id) g, json_array_length(doc.tags) n FROM users WHERE id = 'a'",
    )
    assert rows == [{"l": "x", "r": "x", "t": "x", "tot": 31.0, "g": "a", "n": 2}]


def test_brackets_are_not_array_indexes(env: Any) -> None:
    with pytest.raises(QueryError, match="not an array index"):
        q(env, "SELECT doc.tags[0] FROM users")


@pytest.mark.parametrize(
    ("sql", "message", "column"),
    [
        ("SELEC * FROM users", "syntax error at line 1, column 1 near 'SELEC'", 1),
        ("  selec id FROM users", "column 3 near 'selec'", 3),
        ("SELECT * FRM users", "column 10 near 'FRM'", 10),
        ("SELECT (1", "expected ')'", 9),
        ("SELECT id FROM users WHERE", "near 'WHERE': the WHERE is incomplete", 22),
        ("foo", "near 'foo': a query starts with SELECT", 1),
    ],
)
def test_syntax_errors_speak_our_dialect(env: Any, sql: str, message: str, column: int) -> None:
    with pytest.raises(QueryError) as info:
        q(env, sql)
    text = str(info.value)
    assert message in text
    assert info.value.line == 1 and info.value.column == column
    assert text.count("line 1") == 1  # the position is said once, in words


_WORDS = [
    "SELECT",
    "FROM",
    "WHERE",
    "users",
    "id",
    "(",
    ")",
    ",",
    "*",
    "=",
    "1",
    "'x'",
    "AND",
    "OR",
    "GROUP",
    "BY",
    "ORDER",
    "LIMIT",
    "JOIN",
    "ON",
    "AS",
    "NOT",
    "NULL",
]


@given(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=12))
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_no_error_names_sqlglot_internals(env: Any, words: list[str]) -> None:
    try:
        q(env, " ".join(words))
    except QueryError as exc:
        text = str(exc)
        assert "<class" not in text and "sqlglot" not in text, text
