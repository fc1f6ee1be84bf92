"""Structure-aware fuzzing of the views: valid, signed entries with mutated payloads.

A remote writer that is allowed to write can still sign any payload. Starting from a
valid operation of each database type (feed, keyvalue, documents, counter, ydoc, log),
the payload is mutated (orbitstore.testing.fuzz), signed into a chain of entries and
handed to ``Database.receive`` on a node over a real SQLite file. Invariants:

* receiving never raises (a bad entry is *rejected* with a typed error in the result,
  a malformed operation is ignored by the view);
* the views' read API and SQL still answer afterwards;
* the view survives a reopen unchanged (it is a function of the stored entries).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import pycrdt
import pytest
import trio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from orbitstore.core.cid import Cid
from orbitstore.core.identity import Identity
from orbitstore.errors import InvalidDataError, QueryError
from orbitstore.node import NodeConfig, open_node
from orbitstore.node.counter import Counter
from orbitstore.node.database import Database
from orbitstore.node.documents import Documents
from orbitstore.node.feed import Feed
from orbitstore.node.keyvalue import KeyValue
from orbitstore.node.ydoc import YDocument
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.testing import fuzz

# A failing example can be a megabyte of bytes: Hypothesis warns when it prints one.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
NIGHTLY = os.environ.get("HYPOTHESIS_PROFILE") == "nightly"
# CI reports a failing example as found: shrinking a node scenario can take minutes.
CI_PHASES = (Phase.explicit, Phase.reuse, Phase.generate)
FUZZ = settings(
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    **(
        {"max_examples": 500}
        if NIGHTLY
        else {"max_examples": 15, "derandomize": True, "phases": CI_PHASES}
    ),
    database=None,
)
NODE = Identity(b"\x0a" * 32)
REMOTE = Identity(b"\x0b" * 32)
CONFIG = NodeConfig(timestamps=False)


def _yjs_update() -> bytes:
    doc = pycrdt.Doc()
    doc["text"] = text = pycrdt.Text()
    text += "hello"
    return bytes(doc.get_update())


PAYLOADS: dict[str, list[Any]] = {
    "log": [{"anything": [1, "x"]}],
    "feed": [{"op": "add", "value": {"a": 1}}, {"op": "add", "values": [1, "x", None]}],
    "keyvalue": [
        {"op": "put", "key": "k", "value": [1, {"b": 2}]},
        {"op": "del", "key": "k"},
        {"op": "batch", "ops": [{"op": "put", "key": "a", "value": 1}, {"op": "del", "key": "b"}]},
    ],
    "documents": [
        {"op": "put", "doc": {"_id": "d1", "age": 3, "tags": ["a"]}},
        {"op": "del", "id": "d1"},
        {"op": "patch", "id": "d1", "set": {"age": 4}, "unset": ["tags"]},
        {"op": "batch", "ops": [{"op": "put", "doc": {"_id": "d2", "age": 1}}]},
    ],
    "counter": [{"op": "inc", "by": 5}, {"op": "inc", "by": -2}],
    "ydoc": [{"op": "update", "update": _yjs_update()}],
}
META: dict[str, dict[str, Any]] = {
    "documents": {"id_field": "_id", "merge": "field", "indexes": ["age"]},
}


def read_all(db: Database) -> Any:
    """Everything the view's read API shows."""
    if isinstance(db, Feed):
        return [(item.id, item.value) for item in db.items()]
    if isinstance(db, KeyValue):
        return list(db.items())
    if isinstance(db, Documents):
        return db.all()
    if isinstance(db, Counter):
        return db.value
    if isinstance(db, YDocument):
        return db.text("text")
    return sorted(str(e.cid) for e in db.entries())


def chain(db: Database, payloads: list[Any]) -> list[tuple[Cid, bytes]]:
    out: list[tuple[Cid, bytes]] = []
    for i, payload in enumerate(payloads):
        fields = {
            "v": 1,
            "db": db.cid,
            "next": [out[-1][0]] if out else [],
            "clock": i + 1,
            "writer": REMOTE.id,
            "payload": payload,
        }
        block = fuzz.sign_raw(fields, REMOTE)
        out.append((Cid.for_block(block), block))
    return out


async def scenario(home: Path, type_: str, payloads: list[Any]) -> None:
    store = SqliteStore(home / "s.sqlite")
    try:
        async with open_node(store=store, identity=NODE, config=CONFIG) as node:
            db = await node.open("fuzzed", type=type_, write=["*"], meta=META.get(type_))
            result = await db.receive(chain(db, payloads))
            assert all(isinstance(r.error, InvalidDataError) for r in result.rejected)
            before = read_all(db)
            with contextlib.suppress(QueryError):  # a log or ydoc may have no table
                node.query("SELECT * FROM fuzzed LIMIT 50")
            heads = db.heads
        async with open_node(store=store, identity=NODE, config=CONFIG) as node:
            db = await node.open("fuzzed", type=type_, write=["*"], meta=META.get(type_))
            assert db.heads == heads
            assert read_all(db) == before
    finally:
        store.close()


payload_lists = st.sampled_from(sorted(PAYLOADS)).flatmap(
    lambda t: st.tuples(
        st.just(t),
        st.lists(
            st.one_of(
                st.sampled_from(PAYLOADS[t]),
                st.sampled_from(PAYLOADS[t]).flatmap(fuzz.mutated_values),
            ),
            min_size=1,
            max_size=4,
        ),
    )
)


@FUZZ
@given(payload_lists)
def test_views_survive_mutated_payloads(case: tuple[str, list[Any]]) -> None:
    type_, payloads = case
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(scenario, Path(tmp), type_, payloads)
