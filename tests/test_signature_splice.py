"""The signed bytes cut out of a block equal the re-encoded map without ``sig``.

``Entry.from_block`` verifies the signature over ``unsigned_bytes(block, fields)``: the
block with its ``sig`` pair spliced out, instead of a second canonical encode. This
holds it to the encode path, for every shape of entry.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.entry import NONCE_LENGTH, Entry, signed_bytes, unsigned_bytes
from orbitstore.core.identity import Identity
from orbitstore.errors import InvalidDataError
from orbitstore.testing.strategies import cids, payloads

WRITER = Identity(bytes([4]) * 32)
DB = Cid.for_block(b"splice manifest")
_TS_EDGES = [0, 23, 24, 255, 256, 2**16 - 1, 2**16, 2**32 - 1, 2**32, 2**53 - 1]


def reencoded(fields: dict[str, Any]) -> bytes:
    return codec.encode({k: v for k, v in fields.items() if k != "sig"})


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    parents = draw(st.lists(cids(codecs=(0x71,)), max_size=4, unique=True))
    refs = draw(st.lists(cids(codecs=(0x71,)), max_size=3, unique=True))
    return Entry.create(
        WRITER,
        db=DB,
        clock=draw(st.integers(2, 2**53 - 1)) if parents else 1,
        next=parents,
        refs=[r for r in refs if r not in parents],
        payload=draw(payloads()),
        ts=draw(st.one_of(st.none(), st.sampled_from(_TS_EDGES), st.integers(0, 2**53 - 1))),
        nonce=draw(st.one_of(st.none(), st.binary(min_size=NONCE_LENGTH, max_size=NONCE_LENGTH))),
    )


@settings(max_examples=150, deadline=None)
@given(entries())
def test_splice_equals_reencode(entry: Entry) -> None:
    fields = codec.decode(entry.block)
    assert unsigned_bytes(entry.block, fields) == reencoded(fields)
    assert Entry.from_block(entry.cid, entry.block) == entry


@settings(max_examples=100, deadline=None)
@given(entries(), st.binary(max_size=80))
def test_any_sig_value_gives_the_reencoded_bytes(entry: Entry, sig: bytes) -> None:
    fields = codec.decode(entry.block)
    fields["sig"] = sig
    block = codec.encode(fields)
    assert unsigned_bytes(block, fields) == reencoded(fields)
    try:
        Entry.from_block(Cid.for_block(block), block)
    except InvalidDataError:
        return
    assert sig == entry.sig  # only the real signature verifies


@settings(max_examples=30, deadline=None)
@given(entries())
def test_verifying_a_real_entry_takes_the_splice(entry: Entry) -> None:
    def no_encode(value: Any) -> bytes:
        raise AssertionError("from_block re-encoded the entry")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(codec, "encode_checked", no_encode)
        assert Entry.from_block(entry.cid, entry.block) == entry


@settings(max_examples=150, deadline=None)
@given(entries())
def test_create_splices_the_sig_in_as_the_encoder_would(entry: Entry) -> None:
    fields = codec.decode(entry.block)
    assert entry.block == codec.encode(fields)  # canonical: what encoding the map gives
    assert signed_bytes(reencoded(fields), fields, entry.sig) == entry.block


@settings(max_examples=60, deadline=None)
@given(entries(), st.binary(max_size=80))
def test_any_sig_value_splices_in_as_encoded(entry: Entry, sig: bytes) -> None:
    fields = codec.decode(entry.block)
    fields["sig"] = sig
    assert signed_bytes(reencoded(fields), fields, sig) == codec.encode(fields)
