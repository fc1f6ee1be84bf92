"""Payloads link any well-formed CID; entry links stay CIDv1 dag-cbor sha2-256.

A chat message must be able to link an IPFS image: ``Qm…`` (CIDv0), ``bafybei…``
(dag-pb), raw, other hash functions. ``db``, ``next`` and ``refs``, sync messages and
addresses keep to the one form entries have, and say "unsupported" for the others.
"""

from __future__ import annotations

from typing import Any

import multiformats
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core import codec, dagjson
from orbitstore.core.access import StaticAccess
from orbitstore.core.car import CarReader, encode_header, encode_section
from orbitstore.core.cid import DAG_PB, RAW, Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest, parse_address
from orbitstore.errors import (
    InvalidAddressError,
    InvalidCidError,
    InvalidDataError,
    InvalidEntryError,
    InvalidParentsError,
    InvalidValueError,
    ProtocolError,
)
from orbitstore.net._libp2p_bitswap import from_libp2p_cid
from orbitstore.storage.memory import MemoryStore
from orbitstore.sync.frames import FrameDecoder, Hello, encode_varint

ME = Identity(bytes([5]) * 32)
DB = Manifest(name="links", type="log", access=StaticAccess.of([ME.id])).to_block()[0]

# Known IPFS CIDs, with the fields multiformats gives for them.
KNOWN = [
    # The go-ipfs "readme" directory: CIDv0 and its CIDv1 form.
    ("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", 0, DAG_PB, 0x12),
    ("bafybeie5nqv6kd3qnfjupgvz34woh3oksc3iau6abmyajn7qvtf6d2ho34", 1, DAG_PB, 0x12),
    # The empty UnixFS directory.
    ("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn", 0, DAG_PB, 0x12),
    ("bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354", 1, DAG_PB, 0x12),
    # Empty raw block: sha2-256, and inline (identity multihash).
    ("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", 1, RAW, 0x12),
    ("bafkqaaa", 1, RAW, 0x00),
]


@pytest.mark.parametrize(("text", "version", "codec_", "hash_function"), KNOWN)
def test_known_ipfs_cids(text: str, version: int, codec_: int, hash_function: int) -> None:
    cid = Cid.parse(text)
    assert str(cid) == text
    assert (cid.version, cid.codec, cid.hash_function) == (version, codec_, hash_function)
    assert bytes(cid) == bytes(multiformats.CID.decode(text))
    assert Cid(bytes(cid)) == cid and hash(Cid(bytes(cid))) == hash(cid)
    assert not cid.is_entry_link
    # CIDv1 sha2-256 raw and dag-pb (attachments) are stored and served; v0 is not.
    assert cid.is_block_cid == (text in (KNOWN[1][0], KNOWN[3][0], KNOWN[4][0]))
    if not cid.is_block_cid:
        with pytest.raises(InvalidCidError, match="unsupported"):
            from_libp2p_cid(bytes(cid))


def test_known_raw_sha256_is_what_for_block_makes() -> None:
    assert Cid.for_block(b"", RAW) == Cid.parse(KNOWN[4][0])
    assert Cid.for_block(b"").is_entry_link and not Cid.for_block(b"", RAW).is_entry_link
    assert Cid.for_block(b"", DAG_PB) == Cid(b"\x01\x70\x12\x20" + Cid.for_block(b"").digest)
    assert Cid.parse(KNOWN[0][0]).to_v1() == Cid.parse(KNOWN[1][0])
    with pytest.raises(InvalidCidError, match="unsupported codec"):
        Cid.for_block(b"", 0x0129)


_HASHES = {"sha2-256": 32, "sha2-512": 64, "sha3-256": 32, "blake2b-256": 32}


@st.composite
def any_cids(draw: st.DrawFn) -> multiformats.CID:
    """Reference CIDs (multiformats) of every version, several codecs and hashes."""
    if draw(st.booleans()):
        return multiformats.CID("base58btc", 0, "dag-pb", ("sha2-256", draw(_digest(32))))
    codec_name = draw(st.sampled_from(["raw", "dag-pb", "dag-cbor", "dag-json", "libp2p-key"]))
    if draw(st.booleans()):
        digest: bytes = draw(st.binary(max_size=64))
        return multiformats.CID("base32", 1, codec_name, ("identity", digest))
    hash_name = draw(st.sampled_from(sorted(_HASHES)))
    return multiformats.CID("base32", 1, codec_name, (hash_name, draw(_digest(_HASHES[hash_name]))))


def _digest(size: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=size, max_size=size)


@given(any_cids())
def test_any_cid_round_trips_like_the_reference(ref: multiformats.CID) -> None:
    cid = Cid(bytes(ref))
    assert bytes(cid) == bytes(ref)
    assert str(cid) == str(ref)  # base58btc for v0, base32 for v1
    assert Cid.parse(str(cid)) == cid
    assert cid.version == ref.version and cid.codec == ref.codec.code
    assert cid.hash_function == ref.hashfun.code and cid.digest == ref.raw_digest
    assert codec.decode(codec.encode({"link": cid})) == {"link": cid}
    assert dagjson.from_json(dagjson.to_json([cid])) == [cid]
    assert cid.is_entry_link == (
        ref.version == 1 and ref.codec.name == "dag-cbor" and ref.hashfun.name == "sha2-256"
    )


@given(st.lists(any_cids(), min_size=2, max_size=6))
def test_cids_of_any_form_order_and_hash_by_bytes(refs: list[multiformats.CID]) -> None:
    cids = [Cid(bytes(r)) for r in refs]
    assert [bytes(c) for c in sorted(cids)] == sorted(bytes(c) for c in cids)
    assert len(set(cids)) == len({bytes(c) for c in cids})


@given(st.lists(any_cids(), min_size=1, max_size=4))
def test_payloads_link_any_cid(refs: list[multiformats.CID]) -> None:
    links = [Cid(bytes(r)) for r in refs]
    entry = Entry.create(ME, db=DB, clock=1, next=[], payload={"image": links})
    again = Entry.from_block(entry.cid, entry.block)
    assert again.payload == {"image": links}
    assert [str(c) for c in again.payload["image"]] == [str(r) for r in refs]


V0 = Cid.parse(KNOWN[0][0])
DAG_PB_V1 = Cid.parse(KNOWN[1][0])
RAW_V1 = Cid.parse(KNOWN[4][0])
SHA512_DAG_CBOR = Cid(b"\x01\x71\x13\x40" + bytes(64))


def _signed(**fields: Any) -> tuple[Cid, bytes]:
    base: dict[str, Any] = {"v": 1, "db": DB, "next": [], "clock": 1, "writer": ME.id}
    base.update(payload=None, **fields)
    base["sig"] = ME.sign(codec.encode(base))
    block = codec.encode(base)
    return Cid.for_block(block), block


@pytest.mark.parametrize("link", [V0, DAG_PB_V1, RAW_V1, SHA512_DAG_CBOR], ids=str)
@pytest.mark.parametrize("field", ["next", "refs"])
def test_parents_must_be_entry_links(field: str, link: Cid) -> None:
    changes: dict[str, Any] = {field: [link]}
    if field == "next":
        changes["clock"] = 2
    with pytest.raises(InvalidParentsError, match=r"unsupported link \(CIDv"):
        Entry.from_block(*_signed(**changes))
    with pytest.raises(InvalidValueError):
        Entry.create(ME, db=DB, clock=2, next=[link], payload=None)


@pytest.mark.parametrize("link", [V0, RAW_V1, SHA512_DAG_CBOR], ids=str)
def test_db_must_be_an_entry_link(link: Cid) -> None:
    with pytest.raises(InvalidEntryError, match="unsupported link"):
        Entry.from_block(*_signed(db=link))
    with pytest.raises(InvalidValueError):
        Entry.create(ME, db=link, clock=1, next=[], payload=None)


@pytest.mark.parametrize("link", [V0, DAG_PB_V1, SHA512_DAG_CBOR], ids=str)
def test_sync_messages_and_addresses_take_only_entry_links(link: Cid) -> None:
    for body in (
        {"t": "hello", "v": 1, "db": DB, "heads": [link], "have": []},
        {"t": "hello", "v": 1, "db": link, "heads": [], "have": []},
        {"t": "want", "cids": [link]},
        {"t": "entries", "blocks": [[link, b"x"]]},
    ):
        data = codec.encode(body)
        with pytest.raises(ProtocolError, match="sha2-256"):
            FrameDecoder().feed(encode_varint(len(data)) + data)
    with pytest.raises(InvalidValueError):
        Hello(db=DB, heads=(link,))
    with pytest.raises(InvalidAddressError, match="unsupported"):
        parse_address(f"/orbitstore/{link}")


def test_storage_keeps_only_blocks_it_can_hash() -> None:
    store = MemoryStore()
    for link in (V0, DAG_PB_V1, SHA512_DAG_CBOR):
        with pytest.raises(InvalidDataError):
            store.blocks.put(link, b"")


@pytest.mark.parametrize(
    "raw",
    [
        b"\x12\x20" + bytes(31),  # CIDv0 one byte short
        b"\x00\x71\x12\x20" + bytes(32),  # explicit version 0
        b"\x03\x71\x12\x20" + bytes(32),  # version 3
        b"\x01\x71\x12\x21" + bytes(32),  # length says 33
        b"\x01\x71\x00\x81\x01" + bytes(129),  # identity digest over 128 bytes
        b"\x01\xff",  # truncated codec varint
        b"\x01\x80\x00\x12\x20" + bytes(32),  # non-minimal codec varint
    ],
    ids=lambda raw: raw[:6].hex(),
)
def test_malformed_cids_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidCidError):
        Cid(raw)
    data = b"\xd8\x2a" + codec.encode(b"\x00" + raw)
    with pytest.raises(InvalidDataError, match="malformed CID link"):
        codec.decode(data)


def test_kind_names_the_form() -> None:
    assert V0.kind == "CIDv0 dag-pb sha2-256"
    assert Cid.for_block(b"").kind == "CIDv1 dag-cbor sha2-256"
    assert Cid(b"\x01\xa9\x02\x13\x40" + bytes(64)).kind == "CIDv1 dag-json sha2-512"
    assert Cid(b"\x01\x99\x01\x99\x01\x00").kind == "CIDv1 codec 0x99 hash 0x99"


def test_car_reader_skips_blocks_of_other_cid_forms() -> None:
    good = Cid.for_block(b"\xa0")  # an empty map
    node = Cid.for_block(b"x", DAG_PB)  # attachments' dag-pb nodes are read
    data = encode_header([good]) + b"".join(
        encode_section(cid, block)
        for cid, block in [(V0, b"dag-pb bytes"), (node, b"x"), (good, b"\xa0")]
    )
    data += encode_section(SHA512_DAG_CBOR, b"y")
    reader = CarReader()
    assert list(reader.feed(data)) == [(node, b"x"), (good, b"\xa0")]
    reader.finish()
    assert reader.skipped == 2
