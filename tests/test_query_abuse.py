"""Injection and abuse: refused (or safely bound) before anything runs; the store is
unchanged afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.errors import QueryError
from orbitstore.node.query import QueryService
from orbitstore.query import QueryLimits
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.testing.view_tables import Tables


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tables, QueryService]]:
    store = SqliteStore(tmp_path_factory.mktemp("abuse") / "node.sqlite")
    t = Tables(store)
    t.source("users", "documents")
    t.source("kv", "keyvalue")
    t.put_docs("users", [{"_id": "a", "name": "Ann"}, {"_id": "b", "name": "O'Brien"}])
    t.put_kv("kv", {"k": 1})
    with store.transaction():
        store.blocks.put(*_block())
    service = QueryService(store, QueryLimits(max_rows=1000))
    yield t, service
    service.close()
    store.close()


def _block() -> tuple[Any, bytes]:
    from orbitstore.core.cid import Cid
    from orbitstore.core.codec import encode

    data = encode({"secret": 1})
    return Cid.for_block(data), data


REFUSED = [
    ("DELETE FROM view_documents", "DELETE is not allowed"),
    ("DROP TABLE users", "DROP is not allowed"),
    ("INSERT INTO users VALUES (1)", "INSERT is not allowed"),
    ("UPDATE users SET doc = NULL", "UPDATE is not allowed"),
    ("CREATE TABLE x(a)", "CREATE is not allowed"),
    ("ATTACH DATABASE 'other.db' AS x", "ATTACH is not allowed"),
    ("DETACH DATABASE main", "not allowed"),
    ("PRAGMA writable_schema = 1", "PRAGMA is not allowed"),
    ("VACUUM", "not allowed"),
    ("SELECT id FROM users; DELETE FROM view_documents", "one statement per query"),
    ("SELECT id FROM users; -- harmless?\nDROP TABLE blocks", "one statement per query"),
    (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r",
        "WITH",
    ),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH"),
    ("SELECT * FROM blocks", "unknown table 'blocks'"),
    ("SELECT * FROM view_documents", "unknown table 'view_documents'"),
    ("SELECT * FROM sqlite_master", "unknown table 'sqlite_master'"),
    ("SELECT * FROM main.view_kv", "not supported"),
    ("SELECT * FROM entries", "unknown table 'entries'"),
    ("SELECT id FROM users LIMIT 1001", "above the maximum"),
    ("SELECT id FROM users LIMIT 99999999999999999999", "above the maximum"),
    ("SELECT load_extension('evil.so')", "unknown function load_extension"),
    ("SELECT readfile('/etc/passwd')", "unknown function readfile"),
    ("SELECT random()", "not allowed"),
    ("SELECT sqlite_version()", "not allowed"),
    ("SELECT os_cid(x'00')", "unknown function os_cid"),
    ("SELECT id FROM users WHERE id IN (SELECT key FROM kv)", "subqueries"),
    ("SELECT (SELECT 1) FROM users", "subqueries"),
    ("SELECT id FROM users WHERE EXISTS (SELECT 1 FROM kv)", "subqueries"),
    ("SELECT * FROM (SELECT * FROM users)", "subqueries"),
    ("SELECT id FROM users UNION SELECT key FROM kv", "only SELECT|not allowed"),
    ("SELECT id, row_number() OVER () FROM users", "not"),
    ("SELECT id FROM users WHERE " + "(" * 200 + "1" + ")" * 200, "nested deeper"),
    ("SELECT id FROM users WHERE " + " + ".join(["-(1"] * 60) + ")" * 60, "nested deeper"),
    ("SELECT id FROM users WHERE " + "NOT " * 100 + "1", "nested deeper"),
    ("SELECT " + "x" * 30_000, "characters"),
    ("SELECT id FROM users WHERE id = 'a\x00'", "NUL"),
    ("SELECT 'unterminated", "cannot read|syntax"),
    ("SELECT id FROM users NATURAL JOIN kv", "not supported"),
    ("SELECT id FROM users u JOIN kv USING (key)", "not supported"),
    ("SELECT id FROM users u RIGHT JOIN kv k ON 1", "not supported"),
]


@pytest.mark.parametrize(("sql", "message"), REFUSED)
def test_refused_before_running(env: Any, sql: str, message: str) -> None:
    t, service = env
    before = t.snapshot()
    with pytest.raises(QueryError, match=message):
        service.query(sql, None, t.catalog(service))
    assert t.snapshot() == before


@pytest.mark.parametrize(
    "value",
    [
        "a' OR '1'='1",
        "'; DROP TABLE view_documents; --",
        'a" OR 1=1 --',
        "*/ DELETE FROM view_kv /*",
        "O'Brien",
    ],
)
def test_parameters_are_bound_never_interpolated(env: Any, value: str) -> None:
    t, service = env
    before = t.snapshot()
    rows = service.query("SELECT id FROM users WHERE doc.name = ?", [value], t.catalog(service))
    assert rows.dicts() == ([{"id": "b"}] if value == "O'Brien" else [])
    assert t.snapshot() == before


def test_quotes_in_literals_are_requoted(env: Any) -> None:
    t, service = env
    rows = service.query(
        "SELECT id, 'it''s' AS s FROM users WHERE doc.name = 'O''Brien' -- a comment",
        None,
        t.catalog(service),
    )
    assert rows.dicts() == [{"id": "b", "s": "it's"}]


@given(st.text(max_size=120))
def test_any_text_is_a_query_or_a_query_error(env: Any, text: str) -> None:
    """Fuzz: arbitrary text either runs as a read or raises QueryError, never anything
    else, and never changes the store."""
    t, service = env
    before = t.snapshot()
    with contextlib.suppress(QueryError):
        service.query(text, None, t.catalog(service))
    assert t.snapshot() == before


KEYWORDS = st.sampled_from(
    [
        "SELECT", "id", "doc", "doc.name", "FROM", "users", "kv", "WHERE", "=", "'a'", "(",
        ")", ";", "--", "/*", "*/", "ATTACH", "PRAGMA", "DELETE", "blocks", "WITH",
        "RECURSIVE", ",", "*", "OR", "AND", "NOT", "1", "?", ":p", "LIMIT", "UNION", "JOIN",
        "ON", "json_extract", "->>", "'$.name'", "count", "GROUP", "BY", "ORDER",
    ]
)  # fmt: skip


@given(st.lists(KEYWORDS, max_size=25))
def test_token_soup_is_a_query_or_a_query_error(env: Any, words: list[str]) -> None:
    t, service = env
    before = t.snapshot()
    with contextlib.suppress(QueryError):
        service.query(" ".join(words), None, t.catalog(service))
    assert t.snapshot() == before
