"""The fast write path of encrypted databases: DataSealer and the per-call nonce pool.

Both are optimisations of what tests/test_encryption.py checks (seal_payload, aad,
random nonces): these tests hold them to those, byte for byte.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core import codec
from orbitstore.core import encryption as enc
from orbitstore.core.cid import Cid
from orbitstore.core.identity import Identity
from orbitstore.core.nonce_pool import NONCES_PER_DRAW, NoncePool
from orbitstore.errors import InvalidValueError
from orbitstore.node import open_node
from orbitstore.testing.strategies import payloads

ALICE = Identity(bytes([1]) * 32)
DB = Cid.for_block(codec.encode({"name": "db"}))
EPOCH = Cid.for_block(codec.encode({"epoch": 1}))
KEY = bytes(range(32))
CIDS = st.builds(lambda i: Cid.for_block(codec.encode({"parent": i})), st.integers(0, 50))


@given(
    payloads(),
    st.lists(CIDS, min_size=0, max_size=4),
    st.integers(1, 2**53),
    st.one_of(st.none(), st.binary(min_size=16, max_size=16)),
    st.binary(min_size=24, max_size=24),
)
def test_data_sealer_is_seal_payload(
    payload: Any, next: list[Cid], clock: int, entry_nonce: bytes | None, nonce: bytes
) -> None:
    sealer = enc.DataSealer(KEY, db=DB, epoch=EPOCH, writer=ALICE.id)
    fields: dict[str, Any] = {"clock": clock, "next": next, "entry_nonce": entry_nonce}
    fast = sealer.seal(payload, nonce=nonce, **fields)
    assert fast == enc.seal_payload(
        KEY, payload, nonce=nonce, db=DB, epoch=EPOCH, writer=ALICE.id, **fields
    )
    assert sealer.seal(payload, nonce=nonce, **fields) == fast  # the reused buffer
    opened = enc.open_payload(
        KEY, enc.parse_sealed(fast[enc.SEALED]), db=DB, writer=ALICE.id, **fields
    )
    assert opened == payload


@given(
    st.one_of(payloads(), st.binary(max_size=70_000)),
    st.binary(min_size=24, max_size=24),
    st.sampled_from([EPOCH, Cid.parse("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n")]),
)
def test_the_hand_encoded_sealed_payload_is_its_canonical_encoding(
    payload: Any, nonce: bytes, epoch: Cid
) -> None:
    sealer = enc.DataSealer(KEY, db=DB, epoch=epoch, writer=ALICE.id)
    got = sealer.seal_encoded(payload, nonce=nonce, clock=3, next=[EPOCH], entry_nonce=None)
    assert got.value == sealer.seal(payload, nonce=nonce, clock=3, next=[EPOCH], entry_nonce=None)
    assert got.data == codec.encode(got.value)  # byte for byte what cbrrr would write


async def test_an_encrypted_append_stores_the_entry_a_plain_encoding_would() -> None:
    async with open_node(identity=ALICE) as node:
        db = await node.open("sealed", type="feed", encrypted=True)
        [entry] = await db.append_many([{"n": 1, "text": "hi"}])
        stored = db.log.get(entry.cid)
        assert stored is not None and stored.block == entry.block
        again = type(entry).from_block(entry.cid, entry.block)  # decodes and verifies
        assert again.payload == entry.payload and codec.encode(again.payload) in entry.block


def test_data_sealer_buffer_grows_and_shrinking_payloads_stay_exact() -> None:
    sealer = enc.DataSealer(KEY, db=DB, epoch=EPOCH, writer=ALICE.id)
    nonce = os.urandom(24)
    for size in (10, 5000, 3, 70_000, 0):
        body = sealer.seal(b"x" * size, nonce=nonce, clock=1, next=[], entry_nonce=None)
        ct = body[enc.SEALED]["c"]
        assert type(ct) is bytes and len(ct) == len(codec.encode(b"x" * size)) + 16
        sealed = enc.parse_sealed(body[enc.SEALED])
        assert (
            enc.open_payload(KEY, sealed, db=DB, writer=ALICE.id, clock=1, next=[]) == b"x" * size
        )


def test_data_sealer_refuses_bad_keys_nonces_and_values() -> None:
    with pytest.raises(InvalidValueError):
        enc.DataSealer(bytes(31), db=DB, epoch=EPOCH, writer=ALICE.id)
    sealer = enc.DataSealer(KEY, db=DB, epoch=EPOCH, writer=ALICE.id)
    with pytest.raises(InvalidValueError):
        sealer.seal({}, nonce=bytes(23), clock=1, next=[], entry_nonce=None)
    deep: list[Any] = []
    deep.append(deep)  # cyclic: never handed to cbrrr
    with pytest.raises(InvalidValueError):
        sealer.seal(deep, nonce=bytes(24), clock=1, next=[], entry_nonce=None)


def test_the_nonce_pool_hands_out_each_drawn_byte_once() -> None:
    draws: list[bytes] = []

    def source(n: int) -> bytes:
        draws.append(os.urandom(n))
        return draws[-1]

    pool = NoncePool(source, enc.NONCE_BYTES)
    nonces = [pool.take() for _ in range(1000)]
    assert all(len(n) == enc.NONCE_BYTES for n in nonces)
    drawn = b"".join(draws)  # each byte handed out once, in order; the rest dropped
    assert drawn.startswith(b"".join(nonces)) and len(drawn) - 24 * 1000 < len(draws[-1])
    assert len(set(nonces)) == 1000
    sizes = [len(d) // enc.NONCE_BYTES for d in draws]
    assert sizes[:3] == [1, 2, 4] and max(sizes) == NONCES_PER_DRAW


async def test_nonces_of_an_append_call_are_distinct_and_unrelated_across_calls() -> None:
    async with open_node() as node:
        db = await node.open("enc", type="feed", encrypted=True)
        first = await db.append_many([{"i": i} for i in range(300)])
        second = await db.append_many([{"i": i} for i in range(300)])
        single = [await db.append({"i": i}) for i in range(5)]
        nonces = [e.payload[enc.SEALED]["n"] for e in [*first, *second, *single]]
        assert len(set(nonces)) == len(nonces) == 605
        assert [e.payload for e in db.entries()][-3:] == [{"i": 2}, {"i": 3}, {"i": 4}]
        assert all(db.open_entry(e) == {"i": i % 300} for i, e in enumerate([*first, *second]))
