"""Hypothesis: random signed histories of grants, revocations, invites and writes,
delivered to fresh keyvalue replicas in random causal orders and chunks — every replica
ends with the same view, equal to last-writer-wins over the entries that the reference
rule (tests/test_capabilities.py, brute force) says are visible."""

from __future__ import annotations

import random
from typing import Any

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_capabilities import IDS, History, reference_eval

from orbitstore.core.capabilities import AclOp
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.node import open_node
from orbitstore.node.keyvalue import KeyValue
from orbitstore.storage.memory import MemoryStore

KEYS = {n: Identity(bytes([i + 1]) * 32) for i, n in enumerate("OABCIJ")}
OWNER = KEYS["O"]


@st.composite
def plans(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    steps = draw(st.integers(min_value=1, max_value=18))
    # A common start, so that most histories have members to revoke and retract.
    out: list[tuple[Any, ...]] = [
        ("O", (), AclOp(op="grant", to=IDS["A"], right="write"), None),
        ("O", (0,), AclOp(op="grant", to=IDS["B"], right="admin"), None),
        ("O", (1,), AclOp(op="grant", to=IDS["I"], right="invite", scope="a"), None),
    ]
    for n in range(3, 3 + steps):
        parents = tuple(
            sorted(
                draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=2, unique=True))
                if n
                else []
            )
        )
        author = draw(st.sampled_from(["O", "A", "A", "B", "I"]))
        kind = draw(st.sampled_from(["grant", "revoke", "revoke", "redeem", "put", "put", "put"]))
        if kind == "put":
            out.append((author, parents, None, draw(st.sampled_from(["a1", "b1"]))))
            continue
        to = draw(st.sampled_from(["A", "B", "I"]))
        right = "write" if kind == "redeem" else draw(st.sampled_from(["write", "admin", "invite"]))
        scope = None if right == "admin" else draw(st.sampled_from([None, "a"]))
        out.append((author, parents, AclOp(op=kind, to=IDS[to], right=right, scope=scope), None))
    return out


def build(plan: list[tuple[Any, ...]]) -> tuple[History, list[Entry], Any]:
    from orbitstore.core.access import CapabilitiesAccess
    from orbitstore.core.manifest import Manifest

    manifest = Manifest(name="p", type="keyvalue", access=CapabilitiesAccess.of(OWNER.id), meta={})
    h = History()
    entries: list[Entry] = []
    for n, (author, parents, acl, key) in enumerate(plan):
        payload = acl.to_payload() if acl is not None else {"op": "put", "key": key, "value": n}
        entry = Entry.create(
            KEYS[author],
            db=manifest.cid,
            clock=max((entries[p].clock for p in parents), default=0) + 1,
            next=sorted((entries[p].cid for p in parents), key=bytes),
            payload=payload,
        )
        entries.append(entry)
        h.add(author, parents, acl=acl, keys=None if key is None else (key,))
    return h, entries, manifest


def expected_view(h: History, entries: list[Entry]) -> dict[str, Any]:
    _, visible = reference_eval(h)
    # The reference History names nodes by a synthetic CID; order by the real entries.
    latest: dict[str, Entry] = {}
    for n in visible:
        e = entries[n]
        key = e.payload["key"]
        if key not in latest or e.order_key > latest[key].order_key:
            latest[key] = e
    return {k: e.payload["value"] for k, e in latest.items()}


def admitted(h: History, n: int) -> bool:
    """Stored at all: the writer is the owner or named by some grant in its past."""
    node = h.nodes[n]
    if node.author == IDS["O"]:
        return True
    return any(
        (a := h.nodes[p].acl) is not None and a.op in ("grant", "redeem") and a.to == node.author
        for p in h.past[n]
    )


async def replay(
    manifest: Any, entries: list[Entry], order: list[int], rnd: random.Random
) -> dict[str, Any]:
    store = MemoryStore()
    cid, block = manifest.to_block()
    store.blocks.put(cid, block)
    async with open_node(store=store, identity=KEYS["C"]) as node:
        db = await node.open(manifest.address, type="keyvalue")
        assert isinstance(db, KeyValue)
        i = 0
        while i < len(order):
            size = rnd.randint(1, 4)
            await db.receive_entries([entries[n] for n in order[i : i + size]])
            i += size
        return dict(db.items())


def causal_order(h: History, rnd: random.Random) -> list[int]:
    done: set[int] = set()
    order: list[int] = []
    while len(order) < len(h.nodes):
        ready = [n.n for n in h.nodes if n.n not in done and all(p in done for p in n.parents)]
        pick = rnd.choice(ready)
        done.add(pick)
        order.append(pick)
    return order


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans(), st.integers(0, 2**32))
def test_replicas_agree_with_the_reference(plan: list[tuple[Any, ...]], seed: int) -> None:
    h, entries, manifest = build(plan)
    # Entries below a refused one are refused too: the reference sees only stored ones.
    stored: set[int] = set()
    for n in range(len(h.nodes)):
        if admitted(h, n) and all(p in stored for p in h.nodes[n].parents):
            stored.add(n)
    kept = History()
    index: dict[int, int] = {}
    for n in sorted(stored):
        node = h.nodes[n]
        index[n] = kept.add(
            node.author, tuple(index[p] for p in node.parents), acl=node.acl, keys=node.keys
        )
        kept.real[index[n]] = entries[n].cid  # the total order of the real entries
    want = expected_view(kept, [entries[n] for n in sorted(stored)])
    rnd = random.Random(seed)
    for _ in range(2):
        got = trio.run(replay, manifest, entries, causal_order(h, rnd), rnd)
        assert got == want
