"""UnixFS files (orbitstore.core.unixfs, orbitstore.core.dagpb): CIDs equal to IPFS tooling,
round trips, and every hostile DAG refused with a typed error.

The golden CIDs were produced by Helia's importer (``ipfs-unixfs-importer``, what
``@helia/unixfs`` ``addBytes`` runs) with kubo's classic layout (``--cid-version=1
--raw-leaves --chunker=size-262144``, 174 links): ``tests/interop_ipfs/cids.mjs``.
``tests/test_attachments_ipfs.py`` checks the same against a live Helia when Node.js is
installed.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orbitstore.core.cid import DAG_CBOR, DAG_PB, RAW, Cid
from orbitstore.core.dagpb import (
    UNIXFS_DIRECTORY,
    UNIXFS_FILE,
    UNIXFS_RAW,
    PBLink,
    PBNode,
    UnixfsData,
    decode_node,
    decode_unixfs,
    encode_node,
    encode_unixfs,
)
from orbitstore.core.unixfs import (
    AttachmentLimits,
    FileBuilder,
    FileLayout,
    FileReader,
    build_file,
    read_all,
)
from orbitstore.errors import (
    AttachmentLimitError,
    AttachmentTooLargeError,
    HashMismatchError,
    InvalidAttachmentError,
    InvalidValueError,
)

_PERIOD = bytes((7 * i + 3) % 251 for i in range(251))


def pattern(n: int) -> bytes:
    """Byte i is (7 i + 3) mod 251: what tests/interop_ipfs/helia_node.mjs serves."""
    return (_PERIOD * (n // 251 + 1))[:n]


CHUNK = 262144
GOLDEN = [
    (0, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    (1, "bafkreiaij7wqrolyv5gx2glkordkq22yacpgg23bdwyweenwlknk37zjyu"),
    (CHUNK, "bafkreid3ofkvqtwnytdm4cxy3aidkhcqq6i2nv5w3nvyvfwmkuonkyqeai"),
    (CHUNK + 1, "bafybeigrosvbbw24eykfaduzjk4rkdmyo7khbhw2ybhqz3g23oa5nsc4cm"),
    (1_000_000, "bafybeiflo6lcktdnsijv77i6wgglbpktd5yqkavhbvompld2jbcat7hnq4"),
    (174 * CHUNK, "bafybeianbozj5ck6khnl6h7uyn4aqb7jg7im4b2o5njwn3v27geb35gfaa"),
    (174 * CHUNK + 1, "bafybeidvj3j26q7akdsouiav6qbnojd5jmzmcd7wkboreingl3guktmi7e"),
]
SMALL = FileLayout(chunk_size=1024, max_links=3)
SMALL_GOLDEN = (30_000, "bafybeihoppvtst4ge43frwwaeynjpo5xzv2gwoarmjj4hxahowuwswj54e")


@pytest.mark.parametrize(("size", "expected"), GOLDEN, ids=[str(s) for s, _ in GOLDEN])
def test_cids_equal_helias_importer_with_kubos_layout(size: int, expected: str) -> None:
    root, blocks = build_file(pattern(size))
    assert str(root) == expected
    assert read_all(root, dict(blocks)) == pattern(size)


def test_a_deep_tree_equals_helias_too() -> None:
    size, expected = SMALL_GOLDEN
    root, blocks = build_file(pattern(size), SMALL)  # 30 leaves, 3 links: depth 4
    assert str(root) == expected
    assert read_all(root, dict(blocks)) == pattern(size)


def test_the_balanced_layout_one_past_a_full_node() -> None:
    # 175 leaves: the root links the full 174-leaf node and a node with one leaf.
    root, blocks = build_file(pattern(174 * CHUNK + 1))
    store = dict(blocks)
    top = decode_node(store[root])
    assert [decode_unixfs(top.data or b"").blocksizes] == [(174 * CHUNK, 1)]
    first, second = (decode_node(store[link.cid]) for link in top.links)
    assert len(first.links) == 174 and len(second.links) == 1
    assert all(link.cid.codec == RAW and link.name == "" for link in first.links)
    assert top.links[0].tsize == len(store[top.links[0].cid]) + 174 * CHUNK


@settings(max_examples=60, deadline=None)
@given(
    st.binary(max_size=5000),
    st.integers(1, 700),
    st.integers(2, 6),
    st.lists(st.integers(1, 900), max_size=8),
)
def test_round_trip_whatever_the_layout_and_the_feeding(
    data: bytes, chunk: int, links: int, cuts: list[int]
) -> None:
    layout = FileLayout(chunk_size=chunk, max_links=links)
    root, blocks = build_file(data, layout)
    builder = FileBuilder(layout)
    streamed, pos = [], 0
    for cut in cuts:
        streamed += builder.feed(data[pos : pos + cut])
        pos += cut
    streamed += builder.feed(data[pos:])
    root2, rest = builder.finish()
    assert (root2, streamed + rest) == (root, blocks)
    assert read_all(root, dict(blocks)) == data
    for cid, block in blocks:
        assert Cid.for_block(block, cid.codec) == cid


def test_progress_knows_the_total_from_the_root() -> None:
    root, blocks = build_file(pattern(10_000), SMALL)
    store = dict(blocks)
    reader = FileReader(root)
    assert reader.progress().total_bytes is None
    seen = []
    while not reader.done:
        for cid in reader.wants(2):
            reader.receive(cid, store[cid])
        reader.read()
        seen.append(reader.progress())
    assert seen[0].total_bytes == 10_000
    assert seen[-1].bytes_read == 10_000
    assert seen[-1].blocks_received == len(set(store))


def test_reads_kubo_style_files_too_cidv0_links_and_dag_pb_leaves() -> None:
    # `ipfs add` without --raw-leaves: dag-pb leaves (UnixFS Raw/File with Data), CIDv0.
    leaves = [pattern(300), pattern(200)]
    leaf_blocks = [
        encode_node(
            PBNode(data=encode_unixfs(UnixfsData(type=kind, data=leaf, filesize=len(leaf))))
        )
        for kind, leaf in zip((UNIXFS_RAW, UNIXFS_FILE), leaves, strict=True)
    ]
    v0 = [Cid(b"\x12\x20" + hashlib.sha256(b).digest()) for b in leaf_blocks]
    root_block = encode_node(
        PBNode(
            links=tuple(PBLink(cid=c, tsize=len(b)) for c, b in zip(v0, leaf_blocks, strict=True)),
            data=encode_unixfs(UnixfsData(type=UNIXFS_FILE, filesize=500, blocksizes=(300, 200))),
        )
    )
    root = Cid(b"\x12\x20" + hashlib.sha256(root_block).digest())
    blocks = {c.to_v1(): b for c, b in zip(v0, leaf_blocks, strict=True)}
    blocks[root.to_v1()] = root_block
    assert read_all(root, blocks) == leaves[0] + leaves[1]


def test_layout_and_limits_validate() -> None:
    for bad in ({"chunk_size": 0}, {"chunk_size": 2 * 1024 * 1024}, {"max_links": 1}):
        with pytest.raises(InvalidValueError):
            FileLayout(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError):
        AttachmentLimits(max_depth=0)
    builder = FileBuilder()
    builder.finish()
    with pytest.raises(InvalidValueError):
        builder.feed(b"x")


# --- hostile DAGs ---------------------------------------------------------------------------


def _node(
    links: list[tuple[Cid, int]], *, data: bytes | None = None, filesize: int | None = None
) -> tuple[Cid, bytes]:
    sizes = tuple(size for _cid, size in links)
    fs = UnixfsData(
        type=UNIXFS_FILE,
        data=data,
        filesize=filesize if filesize is not None else len(data or b"") + sum(sizes),
        blocksizes=sizes,
    )
    block = encode_node(
        PBNode(links=tuple(PBLink(cid=c, tsize=s) for c, s in links), data=encode_unixfs(fs))
    )
    return Cid.for_block(block, DAG_PB), block


def _read(root: Cid, blocks: dict[Cid, bytes], limits: AttachmentLimits | None = None) -> bytes:
    return read_all(root, blocks, limits)


def test_a_block_that_does_not_hash_to_its_cid_is_refused() -> None:
    root, blocks = build_file(pattern(5000), SMALL)
    store = dict(blocks)
    leaf = next(cid for cid in store if cid.codec == RAW)
    store[leaf] = b"\x00" + store[leaf][1:]
    with pytest.raises(HashMismatchError):
        _read(root, store)


def test_a_block_over_the_size_limit_is_refused_before_hashing() -> None:
    root, _blocks = build_file(pattern(5000), SMALL)
    reader = FileReader(root, AttachmentLimits(max_block_size=100))
    with pytest.raises(AttachmentLimitError, match="limit 100"):
        reader.receive(root, b"x" * 101)  # it would not even hash to the root


def test_a_root_declaring_more_than_max_size_is_refused_before_any_child() -> None:
    leaf = Cid.for_block(b"x", RAW)
    root, block = _node([(leaf, 2**40)])
    reader = FileReader(root)
    reader.receive(root, block)
    with pytest.raises(AttachmentTooLargeError, match="1099511627776 bytes"):
        reader.read()
    assert not reader.wants(10) or reader.wants(10) == [root]


def test_too_many_links_and_too_deep_are_refused() -> None:
    leaf = Cid.for_block(b"x", RAW)
    wide, wide_block = _node([(leaf, 1)] * 5)
    with pytest.raises(AttachmentLimitError, match="5 links"):
        _read(wide, {wide: wide_block, leaf: b"x"}, AttachmentLimits(max_links=4))
    chain: dict[Cid, bytes] = {leaf: b"x"}
    top = leaf
    for _ in range(8):
        top, block = _node([(top, 1)])
        chain[top] = block
    assert _read(top, chain) == b"x"  # 8 levels of links: the default limit
    with pytest.raises(AttachmentLimitError, match="deeper than 7"):
        _read(top, chain, AttachmentLimits(max_depth=7))


def test_sizes_that_lie_are_refused() -> None:
    leaf = Cid.for_block(b"abc", RAW)
    says_more, block = _node([(leaf, 4)])
    with pytest.raises(InvalidAttachmentError, match="its parent said 4"):
        _read(says_more, {says_more: block, leaf: b"abc"})
    wrong_total, block = _node([(leaf, 3)], filesize=9)
    with pytest.raises(InvalidAttachmentError, match="filesize 9"):
        _read(wrong_total, {wrong_total: block, leaf: b"abc"})
    empty_child, block = _node([(leaf, 0)], data=b"z")
    with pytest.raises(InvalidAttachmentError, match="empty child"):
        _read(empty_child, {empty_child: block, leaf: b"abc"})
    fewer_sizes = encode_node(
        PBNode(
            links=(PBLink(cid=leaf, tsize=3),),
            data=encode_unixfs(UnixfsData(type=UNIXFS_FILE, filesize=0)),
        )
    )
    cid = Cid.for_block(fewer_sizes, DAG_PB)
    with pytest.raises(InvalidAttachmentError, match="1 links but 0 blocksizes"):
        _read(cid, {cid: fewer_sizes})


def test_the_same_child_many_times_is_read_and_bounded_by_filesize() -> None:
    # No cycle can be built with hashes; a DAG that links one subtree many times reads
    # as the repeated bytes, never more than the root's filesize.
    leaf = Cid.for_block(b"ab", RAW)
    mid, mid_block = _node([(leaf, 2)] * 4)
    top, top_block = _node([(mid, 8)] * 4)
    blocks = {leaf: b"ab", mid: mid_block, top: top_block}
    assert _read(top, blocks) == b"ab" * 16
    with pytest.raises(AttachmentTooLargeError):
        _read(top, blocks, AttachmentLimits(max_size=31))


def test_directories_symlinks_and_other_codecs_are_not_files() -> None:
    directory = encode_node(PBNode(data=encode_unixfs(UnixfsData(type=UNIXFS_DIRECTORY))))
    cid = Cid.for_block(directory, DAG_PB)
    with pytest.raises(InvalidAttachmentError, match="directory, not a file"):
        _read(cid, {cid: directory})
    no_data = encode_node(PBNode())
    cid = Cid.for_block(no_data, DAG_PB)
    with pytest.raises(InvalidAttachmentError, match="no UnixFS data"):
        _read(cid, {cid: no_data})
    with pytest.raises(InvalidAttachmentError, match="dag-cbor"):
        FileReader(Cid.for_block(b"\xa0", DAG_CBOR))
    sha512 = Cid(b"\x01\x55\x13\x40" + bytes(64))
    with pytest.raises(InvalidAttachmentError, match="unsupported"):
        FileReader(sha512)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x0a\x01x\x12\x00",  # Data before Links
        b"\x0a\x00\x0a\x00",  # Data twice
        b"\x1a\x00",  # field 3
        b"\x12\x02\x12\x00",  # a link without a Hash
        b"\x12\x04\x0a\x02\x01\x55",  # a link with a malformed CID
        b"\x12",  # truncated
        b"\x12\x80\x00",  # non-minimal varint
        b"\x0d\x00\x00\x00\x00",  # fixed32 wire type
        b"\x12\x03\x12\x01\xff",  # a name that is not UTF-8 (and no hash)
    ],
    ids=lambda raw: raw.hex(),
)
def test_malformed_dag_pb_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidAttachmentError):
        decode_node(raw)


def test_dag_pb_encoding_round_trips_and_unixfs_skips_unknown_fields() -> None:
    link = PBLink(cid=Cid.for_block(b"x", RAW), name="a", tsize=1)
    node = PBNode(links=(link, PBLink(cid=link.cid, name=None, tsize=None)), data=b"d")
    assert decode_node(encode_node(node)) == node
    fs = UnixfsData(type=UNIXFS_FILE, data=b"hi", filesize=2)
    with_mode = encode_unixfs(fs) + b"\x38\xa4\x03"  # mode 0o644 (field 7)
    assert decode_unixfs(with_mode) == fs
    packed = b"\x08\x02\x18\x03\x22\x02\x01\x02"  # blocksizes written packed
    assert decode_unixfs(packed).blocksizes == (1, 2)
    with pytest.raises(InvalidAttachmentError, match="without a Type"):
        decode_unixfs(b"\x18\x01")
