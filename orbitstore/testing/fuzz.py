"""Structure-aware fuzzing: builders of valid inputs and mutators that break them a little.

How it works
============

Random bytes rarely get past the first check of a decoder (``not DAG-CBOR``), so they
test the first ten lines of it. This module starts from *valid* inputs — signed entries,
sync frames, announcements, manifests — and changes them the way a buggy or hostile
peer would, at two levels:

* **value level**: pick one node of the decoded value tree and replace it — another
  type, nested a few hundred (or thousand) levels deep, a map with a key dropped, added,
  duplicated or out of order, a list with a length prefix that lies or claims 2**32
  items, a CID of another codec or a truncated link, an integer past the limits. The
  tree is re-encoded with :func:`encode_raw`, a small CBOR writer that can write what
  canonical DAG-CBOR forbids (:class:`RawMap`, :class:`RawArray`, :class:`Raw`).
  Entries can be re-signed after the change, so the mutation reaches the checks behind
  the signature (clock, parents, database, access).
* **byte level**: flip, set, insert, delete or duplicate bytes, truncate, or splice in a
  CBOR header claiming a huge length.

The strategies (Hypothesis) return bytes or ``(cid, block)`` pairs; the tests decide
the invariant (usually "a typed :class:`~orbitstore.errors.InvalidDataError` or a
valid value, never another exception").
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from hypothesis import strategies as st

from orbitstore.core import codec
from orbitstore.core.cid import _PREFIX_DAG_CBOR, _PREFIX_RAW, DAG_PB, RAW, Cid
from orbitstore.core.dagpb import PBNode, decode_node, decode_unixfs, encode_node, encode_unixfs
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.unixfs import FileLayout, build_file

# --- a CBOR writer that can lie ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Raw:
    """Bytes written as they are (a hand-made item)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class RawMap:
    """A map written in the order given, keys of any type, duplicates allowed; its header
    claims ``declared`` pairs (default: the true count)."""

    pairs: tuple[tuple[Any, Any], ...]
    declared: int | None = None


@dataclass(frozen=True, slots=True)
class RawArray:
    """An array whose header claims ``declared`` items (default: the true count)."""

    items: tuple[Any, ...]
    declared: int | None = None


def _head(major: int, arg: int) -> bytes:
    if arg < 24:
        return bytes([major << 5 | arg])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if arg < 1 << (8 * size):
            return bytes([major << 5 | info]) + arg.to_bytes(size, "big")
    raise ValueError("CBOR arguments are at most 64 bits")


def _key_order(key: str) -> tuple[int, bytes]:
    raw = key.encode()
    return len(raw), raw


def encode_raw(value: Any) -> bytes:
    """CBOR for ``value``: canonical DAG-CBOR for plain data-model values (the same bytes
    as :func:`orbitstore.core.codec.encode`), anything for the Raw* nodes inside.
    Integers outside 64 bits become bignum tags (2/3), which DAG-CBOR forbids."""
    out = bytearray()
    stack: list[Any] = [value]
    while stack:  # iterative: values nested 100,000 deep must not blow the stack
        item = stack.pop()
        if isinstance(item, Raw):
            out += item.data
        elif item is None:
            out += b"\xf6"
        elif item is True or item is False:
            out += b"\xf5" if item else b"\xf4"
        elif isinstance(item, int):
            out += _encode_int(item)
        elif isinstance(item, float):
            out += b"\xfb" + struct.pack(">d", item)
        elif isinstance(item, str):
            raw = item.encode("utf-8", "surrogatepass")
            out += _head(3, len(raw)) + raw
        elif isinstance(item, (bytes, bytearray)):
            out += _head(2, len(item)) + bytes(item)
        elif isinstance(item, Cid):
            raw = b"\x00" + bytes(item)
            out += b"\xd8\x2a" + _head(2, len(raw)) + raw
        elif isinstance(item, (list, tuple)):
            out += _head(4, len(item))
            stack.extend(reversed(item))
        elif isinstance(item, RawArray):
            out += _head(4, len(item.items) if item.declared is None else item.declared)
            stack.extend(reversed(item.items))
        elif isinstance(item, dict):
            out += _head(5, len(item))
            ordered = (
                sorted(item, key=_key_order) if all(isinstance(k, str) for k in item) else item
            )
            for key in reversed(list(ordered)):
                stack.extend((item[key], key))
        elif isinstance(item, RawMap):
            out += _head(5, len(item.pairs) if item.declared is None else item.declared)
            for key, val in reversed(item.pairs):
                stack.extend((val, key))
        else:
            raise TypeError(f"encode_raw cannot write {type(item).__name__}")
    return bytes(out)


def _encode_int(n: int) -> bytes:
    if 0 <= n < 1 << 64:
        return _head(0, n)
    if -(1 << 64) <= n < 0:
        return _head(1, -1 - n)
    tag, mag = (b"\xc2", n) if n > 0 else (b"\xc3", -1 - n)
    raw = mag.to_bytes((mag.bit_length() + 7) // 8, "big")
    return tag + _head(2, len(raw)) + raw


def nest(value: Any, depth: int, *, kind: str = "list") -> Any:
    """``value`` wrapped in ``depth`` lists (or single-key maps)."""
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


# --- value-level mutation ---------------------------------------------------------------

Path = tuple[Any, ...]

_MAX_PATHS: Final = 400
DEPTHS: Final = (
    codec.MAX_DEPTH - 2,
    codec.MAX_DEPTH - 1,
    codec.MAX_DEPTH,
    codec.MAX_DEPTH + 1,
    codec.MAX_DEPTH + 2,
    1_000,
    20_000,
)
HUGE_COUNTS: Final = (2**16, 2**31 - 1, 2**32 - 1, 2**63, 2**64 - 1)
_DIGEST: Final = bytes(range(32))
ODD_CIDS: Final = (
    Cid(_PREFIX_DAG_CBOR + _DIGEST),
    Cid(_PREFIX_RAW + _DIGEST),
)
# CID links DAG-CBOR or our Cid refuses: no 0x00 prefix, CIDv0, truncated, other hash.
BAD_LINKS: Final = (
    Raw(b"\xd8\x2a" + _head(2, 36) + _PREFIX_DAG_CBOR + _DIGEST),
    Raw(b"\xd8\x2a" + _head(2, 35) + b"\x00\x12\x20" + _DIGEST),
    Raw(b"\xd8\x2a" + _head(2, 20) + b"\x00" + _PREFIX_DAG_CBOR + _DIGEST[:15]),
    Raw(b"\xd8\x2a" + _head(2, 37) + b"\x00\x01\x71\x13\x20" + _DIGEST),
    Raw(b"\xd8\x2a\x01"),
    Raw(b"\xd8\x2b" + _head(2, 37) + b"\x00" + _PREFIX_DAG_CBOR + _DIGEST),
)
ODD_SCALARS: Final[tuple[Any, ...]] = (
    None,
    True,
    False,
    0,
    -1,
    1,
    2**53,
    2**63,
    2**64 - 1,
    -(2**64),
    2**64,
    -(2**64) - 1,
    0.0,
    -0.0,
    1.5,
    1e308,
    "",
    "x",
    "did:key:z6Mk",
    b"",
    b"\x00" * 64,
    [],
    {},
    *ODD_CIDS,
    Raw(b"\xf9\x3c\x00"),  # a 16-bit float
    Raw(b"\xfb\x7f\xf8\x00\x00\x00\x00\x00\x00"),  # NaN
    Raw(b"\x7f\x61a\xff"),  # indefinite-length text
    Raw(b"\x62\xc3\x28"),  # invalid UTF-8
    Raw(b"\x18\x05"),  # non-minimal integer
    Raw(b"\xf7"),  # undefined
    Raw(b"\xc1\x00"),  # tag 1
)


def paths(value: Any, limit: int = _MAX_PATHS) -> list[Path]:
    """Paths to the nodes of ``value`` (breadth first, at most ``limit``)."""
    out: list[Path] = []
    queue: list[tuple[Path, Any]] = [((), value)]
    while queue and len(out) < limit:
        path, item = queue.pop(0)
        out.append(path)
        if isinstance(item, dict):
            queue.extend(((*path, k), item[k]) for k in sorted(item, key=repr))
        elif isinstance(item, list):
            queue.extend(((*path, i), v) for i, v in enumerate(item))
    return out


def get_at(value: Any, path: Path) -> Any:
    for step in path:
        value = value[step]
    return value


def replace_at(value: Any, path: Path, new: Any) -> Any:
    """A copy of ``value`` with the node at ``path`` replaced (copies along the path)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replace_at(value[head], rest, new)}
    copy = list(value)
    copy[head] = replace_at(copy[head], rest, new)
    return copy


def _map_mutations(draw: st.DrawFn, node: dict[Any, Any]) -> Any:
    pairs = [(k, node[k]) for k in sorted(node, key=_key_order)]
    kind = draw(st.sampled_from(["drop", "add", "dup", "swap", "int_key", "count", "huge"]))
    if kind == "drop" and pairs:
        del pairs[draw(st.integers(0, len(pairs) - 1))]
        return dict(pairs)
    if kind == "add":
        key = draw(st.sampled_from(["", "t", "v", "zz", "extra", "sig", "payload"]))
        return RawMap((*pairs, (key, draw(st.sampled_from(ODD_SCALARS)))))
    if kind == "dup" and pairs:
        i = draw(st.integers(0, len(pairs) - 1))
        dup = (pairs[i][0], draw(st.sampled_from([pairs[i][1], *ODD_SCALARS[:8]])))
        return RawMap((*pairs[: i + 1], dup, *pairs[i + 1 :]))
    if kind == "swap" and len(pairs) >= 2:
        return RawMap(tuple(reversed(pairs)))
    if kind == "int_key":
        return RawMap(((draw(st.sampled_from([0, b"k", None])), 1), *pairs))
    if kind == "count":
        return RawMap(tuple(pairs), declared=len(pairs) + draw(st.sampled_from([-1, 1, 2])))
    if kind == "huge":
        return RawMap(tuple(pairs), declared=draw(st.sampled_from(HUGE_COUNTS)))
    return RawMap(tuple(pairs))


def _list_mutations(draw: st.DrawFn, node: list[Any]) -> Any:
    kind = draw(st.sampled_from(["drop", "dup", "reverse", "count", "huge", "many", "pair"]))
    items = list(node)
    if kind == "drop" and items:
        del items[draw(st.integers(0, len(items) - 1))]
        return items
    if kind == "dup" and items:
        i = draw(st.integers(0, len(items) - 1))
        return [*items[: i + 1], items[i], *items[i + 1 :]]
    if kind == "reverse" and len(items) >= 2:
        return list(reversed(items))
    if kind == "count":
        declared = max(0, len(items) + draw(st.sampled_from([-1, 1, 2])))
        return RawArray(tuple(items), declared=declared)
    if kind == "huge":
        return RawArray(tuple(items), declared=draw(st.sampled_from(HUGE_COUNTS)))
    if kind == "many":  # over every count limit of the protocol (4096 CIDs, 64 parents)
        small = [x for x in items if len(encode_raw(x)) <= 64]
        filler = small[0] if small else draw(st.sampled_from(ODD_CIDS))
        return [filler] * draw(st.sampled_from([65, 4097, 20_000]))
    return [items, items]


def _scalar_mutations(draw: st.DrawFn, node: Any) -> Any:
    if isinstance(node, Cid):
        return draw(st.sampled_from([*ODD_CIDS, *BAD_LINKS, bytes(node), str(node)]))
    if isinstance(node, bool):
        return draw(st.sampled_from([not node, int(node), None]))
    if isinstance(node, int):
        return draw(st.sampled_from([node + 1, node - 1, -node, float(node), str(node), 2**53]))
    if isinstance(node, str):
        return draw(
            st.sampled_from([node[:-1], node + "x", node.upper(), node.encode(), "x" * 70_000])
        )
    if isinstance(node, bytes):
        return draw(
            st.sampled_from([node[:-1], node + b"\x00", b"", node.hex(), b"\x00" * 600_000])
        )
    return draw(st.sampled_from(ODD_SCALARS))


@st.composite
def mutated_values(draw: st.DrawFn, value: Any, max_mutations: int = 3) -> Any:
    """``value`` with 1 to ``max_mutations`` nodes replaced (see the module docstring).
    The result may hold Raw* nodes: write it with :func:`encode_raw`."""
    for _ in range(draw(st.integers(1, max_mutations))):
        candidates = paths(value)
        path = draw(st.sampled_from(candidates))
        try:
            node = get_at(value, path)
        except (KeyError, IndexError, TypeError):
            continue  # a Raw* node took the path's place
        kind = draw(st.sampled_from(["shape", "retype", "nest"]))
        if kind == "retype":
            new = draw(st.sampled_from(ODD_SCALARS))
        elif kind == "nest":
            depth = draw(st.sampled_from(DEPTHS))
            new = nest(node, depth, kind=draw(st.sampled_from(["list", "map"])))
        elif isinstance(node, dict):
            new = _map_mutations(draw, node)
        elif isinstance(node, list):
            new = _list_mutations(draw, node)
        else:
            new = _scalar_mutations(draw, node)
        value = replace_at(value, path, new)
    return value


# --- byte-level mutation ----------------------------------------------------------------

_HUGE_HEADERS: Final = (b"\x9b" + b"\xff" * 8, b"\x5a\xff\xff\xff\xff", b"\xbb" + b"\x7f" * 8)


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes, max_mutations: int = 4) -> bytes:
    """``data`` with 1 to ``max_mutations`` byte edits."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, max_mutations))):
        i = draw(st.integers(0, max(len(out) - 1, 0)))
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "dup", "hdr"]))
        if kind == "flip" and out:
            out[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and out:
            out[i] = draw(st.sampled_from([0x00, 0x17, 0x18, 0x1F, 0x7F, 0x80, 0x9F, 0xBF, 0xFF]))
        elif kind == "insert":
            out[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete" and out:
            del out[i : i + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del out[i:]
        elif kind == "dup":
            out[i:i] = out[i : i + draw(st.integers(1, 40))]
        else:
            out[i:i] = draw(st.sampled_from(_HUGE_HEADERS))
    return bytes(out)


@st.composite
def mutated_encodings(draw: st.DrawFn, value: Any) -> bytes:
    """The encoding of ``value``, mutated at the value level, the byte level, or both."""
    level = draw(st.sampled_from(["value", "bytes", "both"]))
    if level == "bytes":
        return draw(mutated_bytes(encode_raw(value)))
    data = encode_raw(draw(mutated_values(value)))
    return draw(mutated_bytes(data)) if level == "both" else data


# --- entries ----------------------------------------------------------------------------


def signed_chain(identity: Identity, db: Cid, length: int, *, start: int = 0) -> list[Entry]:
    """``length`` valid entries by ``identity``, each on the previous one."""
    out: list[Entry] = []
    for i in range(length):
        out.append(
            Entry.create(
                identity,
                db=db,
                clock=i + 1,
                next=[out[-1].cid] if out else [],
                payload={"op": "add", "value": start + i, "tags": ["a", b"b"]},
            )
        )
    return out


def entry_fields(entry: Entry) -> dict[str, Any]:
    fields = codec.decode(entry.block)
    assert isinstance(fields, dict)
    return fields


def sign_raw(value: Any, signer: Identity) -> bytes:
    """Encode ``value`` (any shape) with ``sig`` replaced by ``signer``'s signature over
    the encoding without it, when ``value`` is a map; as it is otherwise."""
    if not isinstance(value, dict):
        return encode_raw(value)
    unsigned = {k: v for k, v in value.items() if k != "sig"}
    return encode_raw({**unsigned, "sig": signer.sign(encode_raw(unsigned))})


@st.composite
def mutated_entry_blocks(
    draw: st.DrawFn, seeds: Sequence[Entry], signer: Identity
) -> tuple[Cid, bytes]:
    """``(cid, block)`` from a mutated seed entry: a byte edit, a value edit, or a value
    edit re-signed by ``signer``; the CID is the block's own, now and then another one."""
    seed = draw(st.sampled_from(list(seeds)))
    level = draw(st.sampled_from(["bytes", "value", "signed", "signed", "signed"]))
    if level == "bytes":
        block = draw(mutated_bytes(seed.block))
    else:
        value = draw(mutated_values(entry_fields(seed)))
        block = sign_raw(value, signer) if level == "signed" else encode_raw(value)
    cid = Cid.for_block(block)
    if draw(st.integers(0, 9)) == 0:
        cid = draw(st.sampled_from([seed.cid, *ODD_CIDS, Cid.for_block(block, 0x55)]))
    return cid, block


# --- sync frames, announcements, manifests ----------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def frame(body: Any) -> bytes:
    """A frame of ``body`` (any value, written with :func:`encode_raw`)."""
    data = encode_raw(body)
    return varint(len(data)) + data


@st.composite
def mutated_frames(draw: st.DrawFn, bodies: Sequence[Any]) -> bytes:
    """One frame (``varint length ‖ body``) from a mutated frame body map, sometimes with
    a lying or malformed length prefix."""
    body = draw(mutated_encodings(draw(st.sampled_from(list(bodies)))))
    prefix = draw(
        st.sampled_from(["true", "true", "true", "short", "long", "huge", "nonminimal", "zero"])
    )
    if prefix == "short":
        return varint(max(len(body) - 1, 1)) + body
    if prefix == "long":
        return varint(len(body) + 1) + body
    if prefix == "huge":
        return varint(2**27 + 5) + body
    if prefix == "nonminimal":  # the same length with a needless 0x00 continuation byte
        return varint(len(body))[:-1] + bytes([varint(len(body))[-1] | 0x80, 0]) + body
    if prefix == "zero":
        return b"\x00" + body
    return varint(len(body)) + body


def frame_bodies(db: Cid, entries: Sequence[Entry], manifest_block: bytes) -> list[Any]:
    """One valid body map of every sync message type, about ``db`` and ``entries``."""
    cids = [e.cid for e in entries]
    return [
        {"t": "hello", "v": 1, "db": db, "heads": cids[-1:], "have": cids[:2]},
        {"t": "entries", "blocks": [[e.cid, e.block] for e in entries]},
        {"t": "want", "cids": cids},
        {"t": "want", "cids": []},
        {"t": "done"},
        {"t": "error", "code": "protocol", "message": "bye"},
        {"t": "get_manifest", "v": 1, "db": db},
        {"t": "manifest", "db": db, "block": manifest_block},
        {"t": "not_found", "db": db},
        {"t": "challenge", "v": 1, "db": db, "nonce": bytes(range(32))},
        {
            "t": "proof",
            "db": db,
            "id": entries[0].writer if entries else "did:key:z6Mk",
            "nonce": bytes(range(1, 33)),
            "sig": bytes(64),
        },
    ]


def announcement(db: Cid, heads: Sequence[Cid], entries: Sequence[Entry]) -> dict[str, Any]:
    """An announcement as ``Replication`` gossips it: ``{db, heads, entries}``."""
    return {"db": db, "heads": sorted(heads), "entries": [[e.cid, e.block] for e in entries]}


def manifest_value(name: str, type_: str, writers: Sequence[str]) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "access": {"type": "static", "write": sorted(writers)},
        "meta": {"indexes": ["a"], "n": 1},
    }


# --- UnixFS attachments -------------------------------------------------------------------


@st.composite
def unixfs_files(draw: st.DrawFn) -> tuple[Cid, dict[Cid, bytes]]:
    """A small valid UnixFS file: its root CID and blocks (random layout, so deep and
    wide trees both occur)."""
    data = draw(st.binary(max_size=3000))
    layout = FileLayout(chunk_size=draw(st.integers(1, 400)), max_links=draw(st.integers(2, 5)))
    root, blocks = build_file(data, layout)
    return root, dict(blocks)


def _lying_node(draw: st.DrawFn, node: PBNode) -> PBNode:
    """``node`` with its UnixFS fields or links changed the way a hostile peer would."""
    fs = decode_unixfs(node.data or b"")
    big = st.sampled_from([0, 1, 2**31, 2**40, 2**64 - 1])
    kind = draw(st.sampled_from(["sizes", "filesize", "type", "dup", "drop", "data"]))
    links = list(node.links)
    if kind == "sizes":
        fs = replace(fs, blocksizes=tuple(draw(st.lists(big, max_size=len(links) + 2))))
    elif kind == "filesize":
        fs = replace(fs, filesize=draw(big))
    elif kind == "type":
        fs = replace(fs, type=draw(st.integers(0, 9)))
    elif kind == "dup" and links:
        links = links + links * draw(st.integers(1, 50))
        fs = replace(fs, blocksizes=fs.blocksizes * (len(links) // max(len(fs.blocksizes), 1)))
    elif kind == "drop" and links:
        links = links[1:]
    else:
        fs = replace(fs, data=draw(st.binary(max_size=20)))
    return PBNode(links=tuple(links), data=encode_unixfs(fs))


@st.composite
def mutated_unixfs_files(draw: st.DrawFn) -> tuple[Cid, dict[Cid, bytes]]:
    """A valid file with one block broken: bytes edited (kept under its CID, or
    re-addressed as the root so the decoders see it), or the root's fields made to lie."""
    root, blocks = draw(unixfs_files())
    if root.codec == DAG_PB and draw(st.booleans()):
        bad = encode_node(_lying_node(draw, decode_node(blocks[root])))
    else:
        target = draw(st.sampled_from(sorted(blocks)))
        bad = draw(mutated_bytes(blocks[target]))
        if target != root and draw(st.booleans()):
            blocks[target] = bad  # under its old CID: the hash check must catch it
            return root, blocks
    root = Cid.for_block(bad, draw(st.sampled_from([DAG_PB, RAW])))
    blocks[root] = bad
    return root, blocks
