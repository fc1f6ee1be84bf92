"""Canonical DAG-CBOR: the only encoding of blocks.

The hot path uses ``cbrrr`` (C, strict, ~2 µs per entry); the pure-Python ``dag-cbor``
package is the reference the conformance tests hold it to, byte for byte. Decoding
rejects anything that is not canonical DAG-CBOR — unsorted or duplicate map keys,
non-minimal integers, indefinite lengths, tags other than 42, floats other than 64-bit,
NaN and infinities, non-string map keys, invalid UTF-8, trailing bytes, malformed CIDs —
with :class:`~orbitstore.errors.DecodeError`.

Nesting is limited to :data:`MAX_DEPTH` levels both ways, for the whole value. ``cbrrr``
has no limit of its own: it encodes a list that contains itself until memory runs out,
and decodes any depth, handing recursive consumers (``==``, ``repr``, ``json``, views)
values that blow Python's recursion limit. Error messages about bad input describe the
offending value with :func:`describe` (bounded, never recursive), never with ``repr``.

The data model: ``None``, ``bool``, ``int`` (-2**64 .. 2**64-1), ``float`` (finite),
``str``, ``bytes``, ``list``, ``dict`` with ``str`` keys, and :class:`Cid` links.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NamedTuple, TypeAlias

import cbrrr

from orbitstore.core.cid import Cid
from orbitstore.core.describe import describe as _describe
from orbitstore.errors import DecodeError, InvalidCidError, InvalidValueError

Value: TypeAlias = Any
"""A value of the DAG-CBOR data model (see module docstring)."""

# Far past any real document, and far enough under Python's default recursion limit
# (1000 frames) that recursive code walking a decoded value stays safe.
MAX_DEPTH: Final = 256


def _within_depth(value: Value, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and maps in ``value`` nest at most ``limit`` deep (False on a cycle).

    Iterative, so any depth is safe; used for values handed to :func:`encode`."""
    if not isinstance(value, (dict, list)):
        return True
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth > limit:
            return False
        for child in item:
            if isinstance(child, (list, dict)):
                push((child, depth + 1))
    return True


def _walk(value: Any, depth: int, limit: int) -> bool:
    # Recursive on purpose: ~2x faster than the explicit stack for the shallow values of
    # the hot path. It recurses at most ``limit`` frames, and only ever sees exact lists
    # and dicts (what cbrrr builds), so it cannot loop.
    if depth > limit:
        return False
    for child in value.values() if type(value) is dict else value:
        kind = type(child)
        if (kind is list or kind is dict) and not _walk(child, depth + 1, limit):
            return False
    return True


def _decoded_within_depth(value: Value, limit: int) -> bool:
    """:func:`_within_depth` for a freshly decoded value (no cycles, no subclasses)."""
    kind = type(value)
    if kind is not list and kind is not dict:
        return True
    try:
        return _walk(value, 1, limit)
    except RecursionError:  # called from deep in someone's stack: walk without frames
        return _within_depth(value, limit)


def _walk_any(value: Any, depth: int, limit: int) -> bool:
    # _walk for caller values (subclasses of list and dict too). A cycle ends it when it
    # passes ``limit``, so at most ``limit`` frames: ~2x faster than the explicit stack.
    if depth > limit:
        return False
    for child in value.values() if isinstance(value, dict) else value:
        if isinstance(child, (list, dict)) and not _walk_any(child, depth + 1, limit):
            return False
    return True


# Leaves for the depth check: they hold no list or dict (a Cid is bytes inside).
_SCALARS: Final = frozenset({str, int, bytes, bool, float, type(None), Cid})


def is_shallow(value: Any) -> bool:
    """True if ``value`` is a scalar, or a dict or list of scalars and of lists and dicts
    of scalars (two levels: far inside :data:`~orbitstore.core.codec.MAX_DEPTH`, and no
    room for a cycle) — the common payload, checked without the recursive walk. False
    says nothing: :func:`~orbitstore.core.codec.check_depth` decides."""
    kind = type(value)
    if kind is dict:
        children = value.values()
    elif kind is list:
        children = value
    else:
        return kind in _SCALARS
    scalars = _SCALARS
    for child in children:
        kind = type(child)
        if kind in scalars:
            continue
        if kind is list:
            grandchildren = child
        elif kind is dict:
            grandchildren = child.values()
        else:
            return False
        for leaf in grandchildren:
            if type(leaf) not in scalars:
                return False
    return True


def cbor_head(major: int, n: int) -> bytes:
    """A canonical CBOR head: ``major`` type with argument ``n`` (0 <= n < 2**64), for
    callers that lay out a fixed shape by hand (an entry chain, a sealed payload)."""
    kind = major << 5
    if n < 24:
        return bytes((kind | n,))
    if n < 0x100:
        return bytes((kind | 24, n))
    if n < 0x10000:
        return bytes((kind | 25,)) + n.to_bytes(2, "big")
    if n < 2**32:
        return bytes((kind | 26,)) + n.to_bytes(4, "big")
    return bytes((kind | 27,)) + n.to_bytes(8, "big")


class Encoded(NamedTuple):
    """A value with its canonical DAG-CBOR encoding, from a caller that built both (the
    sealer of an encrypted database: its payload's shape is fixed). An entry chain
    stores ``data`` as the value's encoding without walking or encoding it again."""

    value: Any
    data: bytes


def check_depth(value: Value) -> None:
    """Raise InvalidValueError if ``value`` nests deeper than MAX_DEPTH or is cyclic."""
    if not isinstance(value, (dict, list)) or is_shallow(value):
        return
    try:
        ok = _walk_any(value, 1, MAX_DEPTH)
    except RecursionError:  # called from deep in someone's stack: walk without frames
        ok = _within_depth(value)
    if not ok:
        raise InvalidValueError(f"value nests deeper than {MAX_DEPTH} levels (or is cyclic)")


def encode(value: Value) -> bytes:
    """Encode ``value`` as canonical DAG-CBOR, or raise InvalidValueError."""
    check_depth(value)
    return encode_checked(value)


def encode_checked(value: Value) -> bytes:
    """:func:`encode` for a value whose nested parts already passed :func:`check_depth`
    (the entry envelope around a checked payload): skips the walk on the hot path."""
    try:
        return bytes(cbrrr.encode_dag_cbor(value, cid_type=Cid))
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise InvalidValueError(f"value cannot be encoded as DAG-CBOR: {exc}") from exc


def decode(
    data: bytes,
    *,
    max_depth: int = MAX_DEPTH,
    check_nesting: bool = True,
    cid_ctor: Callable[[bytes], Cid] = Cid,
) -> Value:
    """Decode canonical DAG-CBOR, or raise DecodeError.

    Lists and maps may nest at most ``max_depth`` levels, counting the outermost one; the
    whole value is checked, so nothing deeper ever reaches recursive code (``==``,
    ``repr``, ``json``, views). An entry passes ``MAX_DEPTH + 1``: its payload may nest
    ``MAX_DEPTH`` levels inside the entry map.

    ``check_nesting=False`` skips the walk: only for bytes this node itself checked
    before it stored them (never for anything from a peer, a file or a caller).

    ``cid_ctor`` makes each link from its bytes (a :class:`Cid`, or an error): e.g. a
    :class:`LinkCache` lookup, which shares one object per distinct link."""
    data = bytes(data)
    try:
        value = cbrrr.decode_dag_cbor(data, cid_ctor=cid_ctor)
    except InvalidCidError as exc:
        raise DecodeError(f"malformed CID link: {exc}") from exc
    except (cbrrr.CbrrrDecodeError, ValueError, TypeError, EOFError, RecursionError) as exc:
        raise DecodeError(f"not canonical DAG-CBOR: {exc}") from exc
    # Each level of nesting takes at least one byte, so short blocks need no walk.
    if check_nesting and len(data) > max_depth and not _decoded_within_depth(value, max_depth):
        raise DecodeError(f"value nests deeper than {max_depth} levels")
    return value


def _raw_link(raw: bytes) -> bytes:
    return raw


def decode_raw_links(data: bytes) -> Any:
    """Decode DAG-CBOR this node checked before it stored it, every link left as its CID
    bytes (no :class:`Cid` built): for bulk readers that only compare links. No nesting
    walk (as ``check_nesting=False``); DecodeError for bytes that do not decode."""
    try:
        return cbrrr.decode_dag_cbor(data, cid_ctor=_raw_link)
    except (cbrrr.CbrrrDecodeError, ValueError, TypeError, EOFError, RecursionError) as exc:
        raise DecodeError(f"not canonical DAG-CBOR: {exc}") from exc


class LinkCache(dict[bytes, Cid]):
    """CIDs by their bytes, made on first use: decoding many blocks that link each other
    (a log's entries: every entry names its database and its parents) with
    ``cid_ctor=cache.__getitem__`` builds and checks each distinct link once, and every
    mention of it is the same object (set and dict lookups then match by identity)."""

    __slots__ = ()

    def __missing__(self, raw: bytes) -> Cid:
        cid = self[raw] = Cid(raw)  # InvalidCidError for malformed bytes, as without it
        return cid


def describe(value: object) -> str:
    """A short, bounded description of any value, for error messages about bad input.

    :func:`orbitstore.core.describe.describe`, plus links (``link bafy…``). Use it, not
    ``{value!r}``, for anything that came from a peer, a file or a caller."""
    if type(value) is Cid:
        text = str(value)
        return f"link {text[:60]}…" if len(text) > 60 else f"link {text}"
    return _describe(value)
