"""Values stored by the views as DAG-JSON come back from queries as the values written
(Hypothesis round trip), whether selected whole or through a JSON path."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core.cid import Cid
from orbitstore.node.query import QueryService
from orbitstore.query.results import decode_json_text, from_dag_json
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.testing.view_tables import Tables

cids = st.binary(min_size=1, max_size=8).map(Cid.for_block)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    cids,
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def to_dag_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"/": {"bytes": base64.b64encode(value).decode().rstrip("=")}}
    if isinstance(value, Cid):
        return {"/": str(value)}
    if isinstance(value, list):
        return [to_dag_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_dag_json(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tables, QueryService]]:
    store = SqliteStore(tmp_path_factory.mktemp("decode") / "node.sqlite")
    t = Tables(store)
    t.source("kv", "keyvalue")
    service = QueryService(store)
    yield t, service
    service.close()
    store.close()


def put(t: Tables, key: str, value: Any) -> None:
    log = t.sources["kv"].log_id
    with t.store.transaction():
        t.conn.execute(
            "INSERT OR REPLACE INTO view_kv(log, key, value, json, clock, writer, cid, idx,"
            " deleted) VALUES (?, ?, NULL, ?, 1, 'w', ?, 0, 0)",
            (log, key, json.dumps(to_dag_json(value)), bytes(Cid.for_block(b"x"))),
        )


@given(values)
def test_whole_values_round_trip(env: Any, value: Any) -> None:
    t, service = env
    put(t, "k", value)
    got = service.query("SELECT value FROM kv WHERE key = 'k'", None, t.catalog(service))
    assert got.rows == ((value,),)


@given(values)
def test_values_under_a_path_round_trip(env: Any, value: Any) -> None:
    t, service = env
    put(t, "p", {"inner": {"v": value}})
    for sql in (
        "SELECT value.inner.v FROM kv WHERE key = 'p'",
        "SELECT value->>'$.inner.v' FROM kv WHERE key = 'p'",
        "SELECT json_extract(value, '$.inner') FROM kv WHERE key = 'p'",
    ):
        (row,) = service.query(sql, None, t.catalog(service)).rows
        expected = {"v": value} if "inner')" in sql else value
        assert row == (expected,), sql


def test_maps_that_only_look_like_links_stay_maps() -> None:
    assert from_dag_json({"/": "not a cid"}) == {"/": "not a cid"}
    assert from_dag_json({"/": {"bytes": "!!"}}) == {"/": {"bytes": "!!"}}
    assert decode_json_text(None) is None


def test_strings_with_nul_survive_a_path_projection(env: Any) -> None:
    # SQLite 3.40's json_extract truncates text at NUL; projections decode exact JSON text.
    t, service = env
    put(t, "z", {"inner": {"v": "a\x00b", "t": True, "n": None}})
    got = service.query(
        "SELECT value.inner.v, value.inner.t, value->>'$.inner.n' FROM kv WHERE key = 'z'",
        None,
        t.catalog(service),
    )
    assert got.rows == (("a\x00b", True, None),)
