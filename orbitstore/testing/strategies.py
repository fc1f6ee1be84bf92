"""Hypothesis strategies for the DAG-CBOR data model and CIDs.

The data model (see :mod:`orbitstore.core.codec`): ``None``, ``bool``, ``int`` in
``[-2**64, 2**64 - 1]``, finite ``float``, ``str``, ``bytes``, ``list``, ``dict`` with
``str`` keys, and :class:`~orbitstore.core.cid.Cid` links.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from orbitstore.core.cid import DAG_CBOR, RAW, Cid

MIN_INT = -(2**64)
MAX_INT = 2**64 - 1


def cids(codecs: tuple[int, ...] = (DAG_CBOR, RAW)) -> st.SearchStrategy[Cid]:
    """CIDv1 sha2-256 links with an arbitrary digest and one of ``codecs``."""
    prefixes = {DAG_CBOR: b"\x01\x71\x12\x20", RAW: b"\x01\x55\x12\x20"}
    return st.builds(
        lambda codec, digest: Cid(prefixes[codec] + digest),
        st.sampled_from(codecs),
        st.binary(min_size=32, max_size=32),
    )


def ints() -> st.SearchStrategy[int]:
    """Integers DAG-CBOR can hold, biased to the encoding boundaries."""
    edges = [0, 23, 24, 255, 256, 2**16 - 1, 2**16, 2**32 - 1, 2**32, MAX_INT]
    boundary = st.sampled_from(edges + [-1 - e for e in edges])
    return st.one_of(boundary, st.integers(min_value=MIN_INT, max_value=MAX_INT))


def floats() -> st.SearchStrategy[float]:
    """Finite 64-bit floats (DAG-CBOR has no NaN or infinities)."""
    return st.floats(allow_nan=False, allow_infinity=False)


def scalars() -> st.SearchStrategy[Any]:
    """Every non-container value of the data model."""
    return st.one_of(
        st.none(),
        st.booleans(),
        ints(),
        floats(),
        st.text(max_size=40),
        st.binary(max_size=40),
        cids(),
    )


def values(*, max_leaves: int = 30) -> st.SearchStrategy[Any]:
    """Arbitrary DAG-CBOR values: scalars nested in lists and str-keyed maps."""
    return st.recursive(
        scalars(),
        lambda children: st.one_of(
            st.lists(children, max_size=6),
            st.dictionaries(st.text(max_size=12), children, max_size=6),
        ),
        max_leaves=max_leaves,
    )


def payloads(*, max_leaves: int = 10) -> st.SearchStrategy[Any]:
    """Small values fit for entry payloads."""
    return values(max_leaves=max_leaves)


def strict_equal(a: Any, b: Any) -> bool:
    """Equality that also compares types, so ``1 != 1.0`` and ``True != 1``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return repr(a) == repr(b)  # tells 0.0 from -0.0
    return bool(a == b)
