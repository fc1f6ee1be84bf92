"""``EntryChain.create`` makes exactly the entry ``Entry.create`` makes.

The chain lays the entry map out by hand (the pairs every entry of an append shares are
encoded once); this holds its bytes, CID and fields to the encoding path for every
shape of entry an append can make, and its errors to the same typed errors.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.entry import NONCE_LENGTH, Entry, EntryChain
from orbitstore.core.identity import Identity
from orbitstore.core.limits import EntryLimits
from orbitstore.errors import InvalidValueError, PayloadTooLargeError
from orbitstore.testing.strategies import cids, payloads

WRITER = Identity(bytes([5]) * 32)
DB = Cid.for_block(b"chain manifest")
_EDGES = [1, 23, 24, 255, 256, 2**16 - 1, 2**16, 2**32 - 1, 2**32, 2**53 - 1]
_FIELDS = ("cid", "block", "db", "clock", "next", "refs", "payload", "writer", "sig", "ts")


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def same(a: Entry, b: Entry) -> None:
    for name in (*_FIELDS, "nonce"):
        assert getattr(a, name) == getattr(b, name), name
    assert type(a.clock) is type(b.clock)
    assert Entry.from_block(a.cid, a.block) == a


@settings(max_examples=200, deadline=None)
@given(
    parents=st.lists(cids(codecs=(0x71,)), max_size=5),
    clock=st.one_of(st.sampled_from(_EDGES), st.integers(1, 2**53 - 1)),
    payload=payloads(),
    ts=st.one_of(st.none(), st.sampled_from([0, *_EDGES]), st.integers(0, 2**53 - 1)),
    nonce=st.one_of(st.none(), st.binary(min_size=NONCE_LENGTH, max_size=NONCE_LENGTH)),
)
def test_chain_entry_equals_created_entry(
    parents: list[Cid], clock: int, payload: Any, ts: int | None, nonce: bytes | None
) -> None:
    if not parents:
        clock = 1
    made = EntryChain(WRITER, db=DB, ts=ts).create(
        clock=clock, next=parents, payload=payload, nonce=nonce
    )
    expected = Entry.create(
        WRITER, db=DB, clock=clock, next=parents, payload=payload, ts=ts, nonce=nonce
    )
    same(made, expected)


def test_a_chain_of_appends_equals_created_entries() -> None:
    chain = EntryChain(WRITER, db=DB, ts=1_700_000_000_000)
    parents: list[Cid] = []
    for clock in range(1, 30):
        nonce = bytes([clock]) * NONCE_LENGTH
        made = chain.create(clock=clock, next=parents, payload={"n": clock}, nonce=nonce)
        expected = Entry.create(
            WRITER,
            db=DB,
            clock=clock,
            next=parents,
            payload={"n": clock},
            ts=1_700_000_000_000,
            nonce=nonce,
        )
        same(made, expected)
        parents = [made.cid]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clock": 0}, "clock"),
        ({"clock": True}, "clock"),
        ({"clock": 2**53}, "clock"),
        ({"clock": "1"}, "clock"),
        ({"next": [Cid.for_block(b"x", codec=0x55)]}, "entry CIDs"),
        ({"next": ["not a cid"]}, "entry CIDs"),
        ({"nonce": b"short"}, "nonce"),
        ({"payload": {1: "int key"}}, "DAG-CBOR"),
        ({"payload": _nested(codec.MAX_DEPTH + 1)}, "nests"),
    ],
)
def test_bad_arguments_raise_what_create_raises(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"clock": 1, "next": [], "payload": "x", "nonce": None, **kwargs}
    with pytest.raises(InvalidValueError, match=message):
        EntryChain(WRITER, db=DB).create(**args)
    with pytest.raises(InvalidValueError, match=message):
        Entry.create(WRITER, db=DB, **args)


@pytest.mark.parametrize("ts", [-1, 2**53, True, 1.5])
def test_a_bad_ts_is_refused_once(ts: Any) -> None:
    with pytest.raises(InvalidValueError, match="ts"):
        EntryChain(WRITER, db=DB, ts=ts)


def test_a_bad_database_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="db"):
        EntryChain(WRITER, db=Cid.for_block(b"m", codec=0x55))


def test_the_size_limit_holds() -> None:
    limits = EntryLimits(max_entry_bytes=400)
    chain = EntryChain(WRITER, db=DB, limits=limits)
    assert chain.create(clock=1, next=[], payload="x" * 10).block
    with pytest.raises(PayloadTooLargeError):
        chain.create(clock=1, next=[], payload="x" * 400)
    too_many = [Cid.for_block(bytes([i])) for i in range(3)]
    with pytest.raises(InvalidValueError, match="too many parents"):
        EntryChain(WRITER, db=DB, limits=EntryLimits(max_next=2)).create(
            clock=2, next=too_many, payload="x"
        )


def _cycles() -> list[Any]:
    d: dict[str, Any] = {}
    d["self"] = d
    inner: list[Any] = []
    inner.append(inner)
    deeper: dict[str, Any] = {"a": {"b": {}}}
    deeper["a"]["b"]["c"] = deeper
    return [d, {"x": inner}, [inner], deeper]


@pytest.mark.parametrize("payload", _cycles())
def test_a_cyclic_payload_is_refused(payload: Any) -> None:
    with pytest.raises(InvalidValueError, match="nests"):
        EntryChain(WRITER, db=DB).create(clock=1, next=[], payload=payload)


class _Dict(dict[str, Any]):
    pass


@pytest.mark.parametrize(
    "payload",
    [
        {"n": 1, "tags": ["a", "b"], "m": {"k": None, "f": 1.5, "b": b"x"}},
        [[1, 2], {"a": True}],
        {"deep": [[["three levels"]]]},
        _nested(codec.MAX_DEPTH),
    ],
)
def test_shallow_and_deeper_payloads_encode_as_create_does(payload: Any) -> None:
    made = EntryChain(WRITER, db=DB).create(clock=1, next=[], payload=payload)
    same(made, Entry.create(WRITER, db=DB, clock=1, next=[], payload=payload))


def test_a_dict_subclass_is_refused_as_create_refuses_it() -> None:
    payload = _Dict(a=[_Dict(b=1)])
    with pytest.raises(InvalidValueError, match="DAG-CBOR"):
        EntryChain(WRITER, db=DB).create(clock=1, next=[], payload=payload)
    with pytest.raises(InvalidValueError, match="DAG-CBOR"):
        Entry.create(WRITER, db=DB, clock=1, next=[], payload=payload)
