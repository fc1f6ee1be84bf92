"""EXPLAIN in our terms: the declared index that serves a query, or a scan."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orbitstore.node.query import QueryService
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.testing.view_tables import Tables


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Tables, QueryService]]:
    store = SqliteStore(tmp_path / "node.sqlite")
    t = Tables(store)
    t.source("users", "documents")
    t.source("kv", "keyvalue")
    t.put_docs(
        "users",
        ({"_id": f"u{i}", "age": i % 90, "address": {"city": f"c{i % 7}"}} for i in range(500)),
    )
    t.put_kv("kv", {"a": 1})
    service = QueryService(store)
    yield t, service
    service.close()
    store.close()


def plan(env: Any, sql: str, params: Any = None) -> Any:
    t, service = env
    return service.explain(sql, params, t.catalog(service))


@pytest.mark.parametrize(
    "where",
    [
        "doc.age = 30",
        "doc.age = ?",
        "30 = doc.age",
        "doc.age > 80",
        "doc.age BETWEEN 10 AND 12",
        "doc.age IN (1, 2, 3)",
        "doc->>'$.age' <= 3 AND doc.address.city = 'c1'",
    ],
)
def test_declared_index_is_reported_and_results_match_a_scan(env: Any, where: str) -> None:
    t, service = env
    params = [30] if "?" in where else None
    sql = f"SELECT id FROM users WHERE {where} ORDER BY id"
    scanned = service.query(sql, params, t.catalog(service)).rows
    assert plan(env, sql, params).uses_index is False
    t.index("users", "age")
    p = plan(env, sql, params)
    assert p.uses_index
    step = next(s for s in p.steps if s.access == "index")
    assert (step.table, step.index, step.path) == ("users", "view_documents_age", "$.age")
    assert service.query(sql, params, t.catalog(service)).rows == scanned


def test_nested_path_index(env: Any) -> None:
    t, _ = env
    t.index("users", "address.city")
    p = plan(env, "SELECT id FROM users WHERE doc.address.city = 'c3'")
    assert p.indexes == ("view_documents_address_city",) and p.steps[0].path == "$.address.city"


def test_scan_when_no_index_serves(env: Any) -> None:
    t, _ = env
    t.index("users", "age")
    for where in ("doc.address.city = 'c1'", "doc.age <> 3", "doc.age + 1 = 3", "1"):
        p = plan(env, f"SELECT id FROM users WHERE {where}")
        assert [s.access for s in p.steps if s.table] == ["scan"], where


def test_primary_key_lookup_beats_an_index(env: Any) -> None:
    t, _ = env
    t.index("users", "age")
    p = plan(env, "SELECT id FROM users WHERE id = 'u3' AND doc.age = 3")
    assert [s.access for s in p.steps] == ["key"]
    assert [s.access for s in plan(env, "SELECT * FROM kv WHERE key = ?", ["a"]).steps] == ["key"]


def test_sorting_is_reported(env: Any) -> None:
    p = plan(env, "SELECT id FROM users ORDER BY doc.age")
    assert "sort" in [s.access for s in p.steps]
