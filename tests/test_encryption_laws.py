"""Laws of encrypted databases (Hypothesis): whatever order a member or a blind replica
receives the entries in, it ends with the owner's keys and view; hostile payloads in any
reserved shape are counted and skipped, never raised or folded."""

from __future__ import annotations

import random
from typing import Any

import trio
from hypothesis import example, given, settings
from hypothesis import strategies as st

from orbitstore.core import encryption as enc
from orbitstore.core.identity import Identity
from orbitstore.node import NodeConfig, open_node
from orbitstore.node.keyvalue import KeyValue
from orbitstore.testing.strategies import cids, values

ALICE, BOB, CAROL = (Identity(bytes([i]) * 32) for i in (1, 2, 3))
CONFIG = NodeConfig(timestamps=False)

# One step of the owner's history: a put, or a new epoch for a subset of {Bob, Carol}.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from("abc"), st.integers(0, 9)),
        st.tuples(st.just("members"), st.sets(st.sampled_from(["bob", "carol"]))),
    ),
    max_size=8,
)


def _model(history: list[tuple[Any, ...]], reader: str) -> dict[str, int]:
    """What ``reader`` reads: the puts sealed under epochs up to the last one it is in
    (an epoch carries the keys of the earlier ones)."""
    epochs = [m for step in history if step[0] == "members" for m in [step[1]]]
    last = max((i + 1 for i, m in enumerate(epochs) if reader in m), default=-1)
    view: dict[str, int] = {}
    epoch = 0  # the owner's first epoch: index 0; the i-th set_readers: index i + 1
    for step in history:
        if step[0] == "members":
            epoch += 1
        elif epoch <= last:
            view[step[1]] = step[2]
    return view


async def _converge(history: list[tuple[Any, ...]], seed: int, reader: Identity) -> None:
    async with (
        open_node(identity=ALICE, config=CONFIG) as alice,
        open_node(identity=reader, config=CONFIG) as other,
    ):
        a = await alice.open("kv", type="keyvalue", write=[ALICE.id], encrypted=True)
        assert isinstance(a, KeyValue)
        await a.announce_key(enc.announcement(BOB, a.cid))
        await a.announce_key(enc.announcement(CAROL, a.cid))
        who = {"bob": BOB.id, "carol": CAROL.id}
        for step in history:
            if step[0] == "put":
                await a.put(step[1], step[2])
            else:
                await a.set_readers([ALICE.id, *(who[m] for m in sorted(step[1]))])
        manifest = alice.store.blocks.get(a.cid)
        assert manifest is not None
        other.store.blocks.put(a.cid, manifest)
        b = await other.open(a.address, type="keyvalue")
        assert isinstance(b, KeyValue)
        blocks = list(a.log.iter_blocks())
        random.Random(seed).shuffle(blocks)
        for i in range(0, len(blocks), 3):  # children before parents, in small frames
            await b.receive(blocks[i : i + 3])
        assert b.heads == a.heads
        assert dict(b.items()) == _model(history, "bob" if reader == BOB else "carol")
        stats = b.statistics().encryption
        assert stats.readers == tuple(sorted(a.readers)) and stats.invalid == 0


@settings(max_examples=25)
@given(steps, st.integers(0, 2**16), st.sampled_from([BOB, CAROL]))
def test_any_delivery_order_gives_the_owners_view(
    history: list[tuple[Any, ...]], seed: int, reader: Identity
) -> None:
    trio.run(_converge, history, seed, reader)


hostile_bodies = st.one_of(
    values(max_leaves=6),
    st.fixed_dictionaries(
        {"c": st.binary(max_size=40), "e": cids(), "n": st.binary(min_size=24, max_size=24)}
    ),
    st.fixed_dictionaries(
        {
            "keys": st.dictionaries(
                st.sampled_from([ALICE.id, BOB.id, "x"]),
                st.one_of(st.binary(max_size=90), st.binary(min_size=80, max_size=80)),
                max_size=3,
            ),
            "prior": st.one_of(
                st.none(), st.fixed_dictionaries({"c": st.binary(), "n": st.binary()})
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "member": st.just(ALICE.id),
            "sig": st.binary(max_size=64),
            "x25519": st.binary(max_size=33),
        }
    ),
)


async def _hostile(shape: str, body: Any) -> None:
    async with open_node(identity=ALICE, config=CONFIG) as node:
        db = await node.open("kv", type="keyvalue", encrypted=True)
        assert isinstance(db, KeyValue)
        await db.put("k", 1)
        # A writer appends a payload of a reserved shape, bypassing sealing.
        await db._writer.append([{shape: body}], None)
        await db.put("k2", 2)
        assert dict(db.items()) == {"k": 1, "k2": 2}
        assert db.is_reader and db.readers == {ALICE.id}


@settings(max_examples=60)
@given(st.sampled_from([enc.SEALED, enc.ANNOUNCE, enc.EPOCH]), hostile_bodies)
# An epoch by the owner that leaves the owner out became current: nobody could write.
@example(enc.EPOCH, {"keys": {BOB.id: b"\0" * 80}, "prior": None})
def test_hostile_reserved_payloads_are_skipped_never_raised(shape: str, body: Any) -> None:
    trio.run(_hostile, shape, body)
