from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.dagjson import from_json, to_json
from orbitstore.errors import DecodeError, InvalidValueError

links = st.binary(max_size=8).map(Cid.for_block)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.binary(max_size=10)
    | links
)
dag_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=4) | st.just("/") | st.just("bytes"), inner, max_size=4)
    ),
    max_leaves=20,
)


def _reserved_inside(value: Any) -> bool:
    if isinstance(value, list):
        return any(_reserved_inside(v) for v in value)
    if isinstance(value, dict):
        if list(value) == ["/"]:
            inner = value["/"]
            if isinstance(inner, str) or (
                isinstance(inner, dict)
                and list(inner) == ["bytes"]
                and isinstance(inner["bytes"], str)
            ):
                return True
        return any(_reserved_inside(v) for v in value.values())
    return False


@given(dag_values)
def test_round_trip_keeps_the_dag_cbor_bytes(value: Any) -> None:
    if _reserved_inside(value):
        with pytest.raises(InvalidValueError):
            to_json(value)
        return
    text = to_json(value)
    assert codec.encode(from_json(text)) == codec.encode(value)
    # It is plain JSON: compact, keys sorted, and stable.
    assert (
        json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        == text
    )
    assert to_json(from_json(text)) == text


def test_dag_json_forms() -> None:
    cid = Cid.for_block(b"x")
    assert to_json({"b": b"\x00\x01\x02\x03", "a": cid, "n": [1, 2.5, None, True]}) == (
        '{"a":{"/":"' + str(cid) + '"},"b":{"/":{"bytes":"AAECAw"}},"n":[1,2.5,null,true]}'
    )
    assert to_json("é") == '"é"'
    assert to_json(2**64 - 1) == str(2**64 - 1)
    assert to_json({"/": 1, "x": 2}) == '{"/":1,"x":2}'  # an ordinary map
    assert from_json('{"/":{"bytes":""}}') == b""


@pytest.mark.parametrize(
    "bad",
    [
        float("nan"),
        float("inf"),
        2**64,
        -(2**64) - 1,
        {1: "x"},
        (1, 2),
        {1, 2},
        object(),
        {"/": "not reserved? it is"},
        {"/": {"bytes": "AA"}},
    ],
)
def test_to_json_refuses_what_dag_json_cannot_hold(bad: Any) -> None:
    with pytest.raises(InvalidValueError):
        to_json(bad)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "NaN",
        "Infinity",
        "1e999",
        str(2**64),
        '{"a":1,"a":2}',
        '{"/":"bnot-a-cid"}',
        '{"/":{"bytes":"AA=="}}',
        '{"/":{"bytes":"!!"}}',
        '"\\ud800"',
    ],
)
def test_from_json_refuses_bad_text(text: str) -> None:
    with pytest.raises(DecodeError):
        from_json(text)


@given(st.text(max_size=40))
def test_from_json_parses_or_raises_decode_error(text: str) -> None:
    try:
        value = from_json(text)
    except DecodeError:
        return
    codec.encode(value)
