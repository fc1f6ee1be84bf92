"""One identity on two devices: two operations are two entries, whatever the timing.

Two devices holding one key, on the same heads, making the same operation with the same
``ts`` (timestamps off, or one millisecond) used to build byte-identical entries: one
CID, so one of the two operations vanished when they exchanged blocks. Every entry a
node writes now carries a random nonce (field ``n``), so nothing is lost.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import orbitstore
from orbitstore.core import codec
from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import NONCE_LENGTH, Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.errors import InvalidEntryError, InvalidValueError
from orbitstore.node.counter import Counter
from orbitstore.node.feed import Feed
from orbitstore.storage.memory import MemoryStore

ME = Identity(bytes([9]) * 32)
ACCESS = StaticAccess.of([ME.id])
DB = Manifest(name="devices", type="log", access=ACCESS).to_block()[0]
TS = 1_700_000_000_000
INCREMENT = {"op": "increment", "by": 1}
HI = "hi"


def urandom_nonce() -> bytes:
    return os.urandom(NONCE_LENGTH)


def device(nonce_source: Callable[[], bytes] | None = urandom_nonce) -> OpLog:
    store = MemoryStore()
    return OpLog(
        db=DB, access=ACCESS, store=store.log_store(DB), identity=ME, nonce_source=nonce_source
    )


def send(src: OpLog, dst: OpLog) -> None:
    """Hand every block of ``src`` to ``dst`` (total order: parents first)."""
    result = dst.receive(list(src.iter_blocks()))
    assert not result.rejected and not result.needed


def payloads(log: OpLog) -> list[Any]:
    return [e.payload for e in log.traverse()]


def test_without_a_nonce_twin_operations_are_one_entry() -> None:
    # The bug, reproduced: no nonce, same heads, same payload, same ts -> one CID.
    a, b = device(None), device(None)
    assert a.append(INCREMENT, ts=TS).cid == b.append(INCREMENT, ts=TS).cid


@pytest.mark.parametrize("ts", [None, TS])
def test_twin_operations_on_two_devices_are_both_kept(ts: int | None) -> None:
    a, b = device(), device()
    ea, eb = a.append(INCREMENT, ts=ts), b.append(INCREMENT, ts=ts)
    assert ea.cid != eb.cid and ea.nonce != eb.nonce
    send(a, b)
    send(b, a)
    assert payloads(a) == payloads(b) == [INCREMENT, INCREMENT]
    assert a.heads == b.heads == {ea.cid, eb.cid}


Step = tuple[str, int, Any]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 1), st.sampled_from([INCREMENT, HI])),
        st.tuples(st.just("send"), st.integers(0, 1), st.none()),
    ),
    max_size=30,
)


@settings(max_examples=100, deadline=None)
@given(steps, st.sampled_from([None, TS]))
def test_any_interleaving_of_writes_and_exchanges_loses_nothing(
    script: list[Step], ts: int | None
) -> None:
    devices = [device(), device()]
    written = {INCREMENT["op"]: 0, HI: 0}
    for kind, i, payload in script:
        if kind == "write":
            devices[i].append(payload, ts=ts)
            written[INCREMENT["op"] if payload == INCREMENT else HI] += 1
        else:
            send(devices[i], devices[1 - i])
    send(devices[0], devices[1])
    send(devices[1], devices[0])
    for log in devices:
        got = payloads(log)
        assert sum(1 for p in got if p == INCREMENT) == written[INCREMENT["op"]]  # counter
        assert sum(1 for p in got if p == HI) == written[HI]  # feed length
    assert devices[0].heads == devices[1].heads
    assert [e.cid for e in devices[0].traverse()] == [e.cid for e in devices[1].traverse()]


async def test_two_real_nodes_with_one_identity(tmp_path: Path) -> None:
    config = orbitstore.NodeConfig(timestamps=False)  # the worst case: ts is absent
    async with (
        orbitstore.open_node(tmp_path / "phone", config=config, identity=ME) as phone,
        orbitstore.open_node(tmp_path / "laptop", config=config, identity=ME) as laptop,
    ):
        opened: dict[str, tuple[Any, Any]] = {}
        for name, type in (("hits", "counter"), ("chat", "feed")):
            here = await phone.open(name, type=type)
            manifest = phone.store.blocks.get(here.cid)
            assert manifest is not None
            laptop.store.blocks.put(here.cid, manifest)
            opened[type] = (here, await laptop.open(here.address, type=type))
        c1, c2 = opened["counter"]
        f1, f2 = opened["feed"]
        assert isinstance(c1, Counter) and isinstance(c2, Counter)
        assert isinstance(f1, Feed) and isinstance(f2, Feed)
        await c1.increment(1)
        await c2.increment(1)
        await f1.add(HI)
        await f2.add(HI)
        for src, dst in ((c1, c2), (c2, c1), (f1, f2), (f2, f1)):
            result = await dst.receive([(e.cid, e.block) for e in src.entries()])
            assert not result.rejected
        assert c1.value == c2.value == 2
        assert f1.count() == f2.count() == 2
        assert all(e.nonce is not None for e in c1.entries())


# --- the field itself ------------------------------------------------------------------


def test_create_validates_the_nonce() -> None:
    for bad in (b"", b"x" * 15, b"x" * 17, bytearray(16), "x" * 16, 16):
        with pytest.raises(InvalidValueError):
            Entry.create(ME, db=DB, clock=1, next=[], payload=1, nonce=bad)  # type: ignore[arg-type]
    entry = Entry.create(ME, db=DB, clock=1, next=[], payload=1, nonce=bytes(16))
    assert Entry.from_block(entry.cid, entry.block).nonce == bytes(16)
    assert Entry.create(ME, db=DB, clock=1, next=[], payload=1).nonce is None


@pytest.mark.parametrize("bad", [b"", b"x" * 15, b"x" * 17, "x" * 16, 16, None, [b"x" * 16]])
def test_decode_refuses_a_bad_nonce(bad: object) -> None:
    fields: dict[str, Any] = {
        "n": bad,
        "v": 1,
        "db": DB,
        "next": [],
        "clock": 1,
        "writer": ME.id,
        "payload": 1,
    }
    fields["sig"] = ME.sign(codec.encode(fields))
    block = codec.encode(fields)
    with pytest.raises(InvalidEntryError, match="'n'"):
        Entry.from_block(Cid.for_block(block), block)


def test_append_many_draws_a_fresh_nonce_per_entry() -> None:
    log = device()
    entries = log.append_many([INCREMENT] * 50, ts=TS)
    assert len({e.nonce for e in entries}) == 50
