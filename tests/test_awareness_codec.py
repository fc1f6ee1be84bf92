"""The awareness gossip codec (orbitstore.sync.awareness): what pycrdt and Yjs encode
round-trips; anything else is a ProtocolError, never another exception; limits hold."""

from __future__ import annotations

import contextlib
import json

import pycrdt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.errors import PayloadTooLargeError, ProtocolError
from orbitstore.sync.awareness import (
    AwarenessLimits,
    AwarenessMessage,
    decode_awareness,
    encode_awareness,
    parse_update,
)

DB = Cid.for_block(codec.encode({"name": "notes"}))
OTHER = Cid.for_block(codec.encode({"name": "other"}))

json_states = st.one_of(
    st.none(),
    st.dictionaries(
        st.text(max_size=8),
        st.one_of(st.text(max_size=20), st.integers(-1000, 1000), st.booleans()),
        max_size=4,
    ),
)


def yjs_update(entries: list[tuple[int, int, object]]) -> bytes:
    encoder = pycrdt.Encoder()
    encoder.write_var_uint(len(entries))
    for client_id, clock, state in entries:
        encoder.write_var_uint(client_id)
        encoder.write_var_uint(clock)
        encoder.write_var_string(json.dumps(state))
    return encoder.to_bytes()


@given(
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**40), json_states), max_size=10)
)
def test_updates_round_trip_and_name_their_clients(
    entries: list[tuple[int, int, object]],
) -> None:
    update = yjs_update(entries)
    data = encode_awareness(AwarenessMessage(db=DB, update=update))
    message = decode_awareness(data, db=DB)
    assert message.update == update and not message.is_query
    assert [(c.client_id, c.clock, c.removed) for c in message.clients] == [
        (i, clock, state is None) for i, clock, state in entries
    ]


def test_a_pycrdt_awareness_update_parses() -> None:
    awareness = pycrdt.Awareness(pycrdt.Doc())
    awareness.set_local_state({"user": {"name": "ada"}, "cursor": None})
    update = awareness.encode_awareness_update([awareness.client_id])
    (client,) = parse_update(update)
    assert client.client_id == awareness.client_id and not client.removed


def test_a_query_round_trips() -> None:
    message = decode_awareness(encode_awareness(AwarenessMessage(db=DB)), db=DB)
    assert message.is_query and message.clients == ()


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_protocol_error(data: bytes) -> None:
    for candidate in (data, codec.encode({"db": DB, "update": data})):
        with contextlib.suppress(ProtocolError):
            decode_awareness(candidate, db=DB)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (codec.encode({"db": OTHER, "update": yjs_update([])}), "another database"),
        (codec.encode({"db": DB, "update": "text"}), "must be bytes"),
        (codec.encode({"db": DB, "query": 1}), "query: true"),
        (codec.encode({"db": DB, "update": b"", "query": True}), "a map of"),
        (codec.encode({"db": DB, "update": yjs_update([(1, 1, [1])])}), "object or null"),
        (codec.encode({"db": DB, "update": yjs_update([(1, 1, None)]) + b"x"}), "trailing"),
        (codec.encode({"db": DB, "update": b"\x01\x01\x01\x05ab"}), "ends inside a state"),
        (codec.encode({"db": DB, "update": b"\x01" + b"\xff" * 9}), "over 2**53"),
        (codec.encode({"db": DB, "update": b"\x01\x01\x01\x02\xff\xfe"}), "not JSON"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(data: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why.replace("*", r"\*")):
        decode_awareness(data, db=DB)


def test_limits_bound_what_is_gossiped_and_accepted() -> None:
    limits = AwarenessLimits(max_message_bytes=512, max_clients=2, max_state_bytes=64)
    many = yjs_update([(i, 1, {}) for i in range(3)])
    big_state = yjs_update([(1, 1, {"name": "x" * 100})])
    huge = yjs_update([(1, 1, {"name": "x" * 600})])
    for update in (many, big_state, huge):
        with pytest.raises(PayloadTooLargeError):
            encode_awareness(AwarenessMessage(db=DB, update=update), limits=limits)
        with pytest.raises(ProtocolError):
            decode_awareness(codec.encode({"db": DB, "update": update}), db=DB, limits=limits)
    with pytest.raises(ProtocolError, match="not JSON"):  # a local client's garbage
        encode_awareness(AwarenessMessage(db=DB, update=b"\x01\x01\x01\x01{"))
