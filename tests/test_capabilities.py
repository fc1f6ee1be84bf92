"""The capabilities rule: worked examples and a Hypothesis reference model.

The reference (`reference_eval`) is written from the rule as the module docstring of
``orbitstore.core.capabilities`` states it, over explicit sets of ancestors of a whole
DAG (brute force, no bit sets, no caches, no incremental state). The evaluator is fed
the same history in random causal arrival orders and must agree with it every time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orbitstore.core.capabilities import (
    AccessGraph,
    AclOp,
    Authorized,
    Denied,
    covers,
    parse_acl_payload,
)
from orbitstore.core.cid import Cid
from orbitstore.core.identity import Identity
from orbitstore.errors import InvalidAclOpError, InvalidDataError

IDS = {name: Identity(bytes([i + 1]) * 32).id for i, name in enumerate("OABCIJ")}
OWNER = IDS["O"]


@dataclass(frozen=True)
class Node:
    n: int
    parents: tuple[int, ...]
    author: str
    acl: AclOp | None
    keys: tuple[str, ...] | None = None

    @property
    def cid(self) -> Cid:
        return Cid.for_block(b"node-%d" % self.n)


class History:
    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.clock: dict[int, int] = {}
        self.past: dict[int, set[int]] = {}
        self.real: dict[int, Cid] = {}  # node -> CID of a real entry, if it stands for one

    def add(
        self,
        author: str,
        parents: tuple[int, ...] = (),
        acl: AclOp | None = None,
        keys: tuple[str, ...] | None = None,
    ) -> int:
        n = len(self.nodes)
        self.nodes.append(Node(n, parents, IDS.get(author, author), acl, keys))
        self.clock[n] = max((self.clock[p] for p in parents), default=0) + 1
        past: set[int] = set()
        for p in parents:
            past |= self.past[p] | {p}
        self.past[n] = past
        return n

    def order(self, n: int) -> tuple[int, str, bytes]:
        node = self.nodes[n]
        return (self.clock[n], node.author, bytes(self.real.get(n, node.cid)))

    def head(self) -> tuple[int, ...]:
        return (len(self.nodes) - 1,)


def op(kind: str, to: str, right: str = "write", scope: str | None = None) -> AclOp:
    return AclOp(op=kind, to=IDS.get(to, to), right=right, scope=scope)


# -- the reference: the rule, brute force over the whole DAG ----------------------------


def reference_eval(h: History) -> tuple[set[int], set[int]]:
    """(valid ACL ops, visible writes) of the whole history."""
    acl = [n.n for n in h.nodes if n.acl is not None]
    past = h.past

    def gkey(g: int) -> tuple[str, str, str | None]:
        a = h.nodes[g].acl
        assert a is not None
        return (a.to, "write", a.scope) if a.op == "redeem" else (a.to, a.right, a.scope)

    def is_grant(g: int) -> bool:
        a = h.nodes[g].acl
        return a is not None and a.op in ("grant", "redeem")

    def is_revoke(v: int) -> bool:
        a = h.nodes[v].acl
        return a is not None and a.op == "revoke"

    def kills(v: int, g: int) -> bool:
        return is_revoke(v) and gkey(v) == gkey(g) and v not in past[g]

    def held(s: set[int], key: tuple[str, str, str | None]) -> set[int]:
        return {
            g
            for g in s
            if is_grant(g) and gkey(g) == key and not any(kills(v, g) for v in s if is_revoke(v))
        }

    valid: set[int] = set()

    def retracted(x: int, grants: set[int]) -> bool:
        return all(any(kills(v, g) and x not in past[v] for v in valid) for g in grants)

    def decide(a: int, right: str) -> bool:
        node = h.nodes[a]
        o = node.acl
        assert o is not None
        if node.author == OWNER:
            return not (o.op == "revoke" and o.to == OWNER)
        if o.to == OWNER or (o.op == "revoke" and o.right == "admin"):
            return False
        scope = o.scope if right == "invite" else None
        grants = held(valid & past[a], (node.author, right, scope))
        return bool(grants) and not retracted(a, grants)

    ordered = sorted(acl, key=h.order)
    valid |= {a for a in ordered if h.nodes[a].author == OWNER and decide(a, "admin")}
    for a in ordered:
        acl_a = h.nodes[a].acl
        assert acl_a is not None
        if h.nodes[a].author != OWNER and acl_a.op != "redeem" and decide(a, "admin"):
            valid.add(a)
    used: set[str] = set()
    for a in ordered:
        acl_a = h.nodes[a].acl
        assert acl_a is not None
        if h.nodes[a].author == OWNER or acl_a.op != "redeem":
            continue
        if decide(a, "invite") and h.nodes[a].author not in used:
            used.add(h.nodes[a].author)
            valid.add(a)

    visible: set[int] = set()
    for node in h.nodes:
        if node.acl is not None:
            continue
        if node.author == OWNER:
            visible.add(node.n)
            continue
        s = valid & past[node.n]
        ok = True
        for k in [None] if node.keys is None else list(node.keys) or [None]:
            grants = held(s, (node.author, "admin", None))
            for key in {gkey(g) for g in s if is_grant(g)}:
                mine = key[0] == node.author and key[1] == "write"
                if mine and (key[2] is None or (k is not None and k.startswith(key[2]))):
                    grants |= held(s, key)
            if not grants or retracted(node.n, grants):
                ok = False
        if ok:
            visible.add(node.n)
    return valid, visible


# -- the evaluator, fed in an arrival order -------------------------------------------


def evaluate(h: History, arrival: list[int]) -> tuple[set[int], set[int], AccessGraph]:
    graph = AccessGraph(OWNER)
    for n in arrival:
        node = h.nodes[n]
        if node.acl is not None:
            frontier = [h.nodes[p].cid for p in h.past[n] if h.nodes[p].acl is not None]
            graph.add(
                cid=node.cid,
                order=h.order(n),
                author=node.author,
                op=node.acl,
                past=graph.closure(frontier),
            )
    valid = {n.n for n in h.nodes if n.acl is not None and graph.is_valid(n.cid)}
    visible: set[int] = set()
    for node in h.nodes:
        if node.acl is not None:
            continue
        frontier = [h.nodes[p].cid for p in h.past[node.n] if h.nodes[p].acl is not None]
        past = graph.closure(frontier)
        assert graph.closure(graph.frontier(past)) == past
        verdict = graph.authorize(node.author, node.keys, past)
        if isinstance(verdict, Denied):
            continue

        def in_past_of(v: int, n: int = node.n) -> bool:
            cid = graph.cid_of(v)
            idx = next(x.n for x in h.nodes if x.cid == cid)
            return n in h.past[idx]

        if not graph.retracted(verdict, in_past_of):
            visible.add(node.n)
    return valid, visible, graph


def causal_orders(h: History, rnd: random.Random, count: int) -> list[list[int]]:
    out = []
    for _ in range(count):
        done: set[int] = set()
        order: list[int] = []
        while len(order) < len(h.nodes):
            ready = [n.n for n in h.nodes if n.n not in done and all(p in done for p in n.parents)]
            pick = rnd.choice(ready)
            done.add(pick)
            order.append(pick)
        out.append(order)
    return out


def check(h: History, seed: int = 0) -> tuple[set[int], set[int]]:
    expected = reference_eval(h)
    for arrival in causal_orders(h, random.Random(seed), 3):
        valid, visible, _ = evaluate(h, arrival)
        assert (valid, visible) == expected
    return expected


# -- worked examples ------------------------------------------------------------------


def test_owner_grants_then_writer_writes() -> None:
    h = History()
    g = h.add("O", acl=op("grant", "A"))
    w = h.add("A", (g,))
    stray = h.add("B", (g,))
    valid, visible = check(h)
    assert valid == {g} and visible == {w}
    assert stray not in visible


def test_backdating_after_revocation_is_retracted() -> None:
    h = History()
    g = h.add("O", acl=op("grant", "A"))
    before = h.add("A", (g,))
    v = h.add("O", (before,), acl=op("revoke", "A"))
    backdated = h.add("A", (g,))  # on old parents, after the revocation
    valid, visible = check(h)
    assert valid == {g, v}
    assert visible == {before}
    assert backdated not in visible


def test_regrant_after_revoke_restores() -> None:
    h = History()
    g = h.add("O", acl=op("grant", "A"))
    v = h.add("O", (g,), acl=op("revoke", "A"))
    g2 = h.add("O", (v,), acl=op("grant", "A"))
    w = h.add("A", (g2,))
    assert check(h) == ({g, v, g2}, {w})


def test_revoke_wins_over_concurrent_grant() -> None:
    h = History()
    adm = h.add("O", acl=op("grant", "B", "admin"))
    g = h.add("B", (adm,), acl=op("grant", "A"))  # B grants A
    v = h.add("O", (adm,), acl=op("revoke", "A"))  # concurrently, O revokes A
    w = h.add("A", (g,))
    valid, visible = check(h)
    assert valid == {adm, g, v}
    assert w not in visible


def test_revoked_admin_cannot_backdate_grants() -> None:
    h = History()
    adm = h.add("O", acl=op("grant", "B", "admin"))
    note = h.add("O", (adm,))
    v = h.add("O", (note,), acl=op("revoke", "B", "admin"))
    sock = h.add("B", (adm,), acl=op("grant", "C"))  # backdated: sorts before v
    w = h.add("C", (sock,))
    assert h.order(sock) < h.order(v)
    valid, visible = check(h)
    assert sock not in valid and w not in visible


def test_only_the_owner_revokes_admins() -> None:
    h = History()
    a = h.add("O", acl=op("grant", "A", "admin"))
    b = h.add("O", (a,), acl=op("grant", "B", "admin"))
    mutual1 = h.add("A", (b,), acl=op("revoke", "B", "admin"))
    mutual2 = h.add("B", (b,), acl=op("revoke", "A", "admin"))
    valid, _ = check(h)
    assert valid == {a, b}
    graph = evaluate(h, list(range(len(h.nodes))))[2]
    assert graph.reason(h.nodes[mutual1].cid) == "only the owner revokes the admin right"
    assert mutual2 not in valid


def test_admin_revokes_writer_and_is_revoked_concurrently() -> None:
    h = History()
    b = h.add("O", acl=op("grant", "B", "admin"))
    g = h.add("O", (b,), acl=op("grant", "A"))
    v = h.add("B", (g,), acl=op("revoke", "A"))  # B revokes A ...
    r = h.add("O", (g,), acl=op("revoke", "B", "admin"))  # ... while O removes B
    w = h.add("A", (r,))
    valid, visible = check(h)
    assert v not in valid  # B's revoke is concurrent with B's removal: void
    assert valid == {b, g, r} and w in visible


def test_scoped_write() -> None:
    h = History()
    g = h.add("O", acl=op("grant", "A", scope="todo/"))
    ok = h.add("A", (g,), keys=("todo/1",))
    out = h.add("A", (g,), keys=("secret",))
    whole = h.add("A", (g,), keys=None)
    _, visible = check(h)
    assert visible == {ok}
    assert out not in visible and whole not in visible


def test_invite_redeemed_twice_grants_once() -> None:
    h = History()
    inv = h.add("O", acl=op("grant", "I", "invite"))
    r1 = h.add("I", (inv,), acl=op("redeem", "A"))
    r2 = h.add("I", (inv,), acl=op("redeem", "B"))
    wa = h.add("A", (r1,))
    wb = h.add("B", (r2,))
    valid, visible = check(h)
    first = min(r1, r2, key=h.order)
    assert valid == {inv, first}
    assert visible == ({wa} if first == r1 else {wb})


def test_revoked_invite_grants_nothing() -> None:
    h = History()
    inv = h.add("O", acl=op("grant", "I", "invite", scope="p/"))
    v = h.add("O", (inv,), acl=op("revoke", "I", "invite", scope="p/"))
    late = h.add("I", (v,), acl=op("redeem", "A", scope="p/"))
    concurrent = h.add("I", (inv,), acl=op("redeem", "B", scope="p/"))
    wa = h.add("A", (late,), keys=("p/x",))
    wb = h.add("B", (concurrent,), keys=("p/x",))
    valid, visible = check(h)
    assert valid == {inv, v} and visible == set()
    assert wa not in visible and wb not in visible


def test_denied_says_who_what_and_why() -> None:
    graph = AccessGraph(OWNER)
    verdict = graph.authorize(IDS["A"], ("k",), 0)
    assert isinstance(verdict, Denied)
    assert verdict.writer == IDS["A"] and verdict.right == "write"
    assert IDS["A"] in verdict.message() and "causal past" in verdict.message()
    assert isinstance(graph.authorize(OWNER, None, 0), Authorized)


def test_payload_shape() -> None:
    a = op("grant", "A", "write", "x")
    assert parse_acl_payload(a.to_payload()) == a
    assert parse_acl_payload({"op": "put", "key": "acl"}) is None
    assert parse_acl_payload("acl") is None
    bad = [
        {"acl": a.to_payload()["acl"], "extra": 1},
        {"acl": {"op": "grant", "to": IDS["A"], "right": "write"}},
        {"acl": {"op": "steal", "to": IDS["A"], "right": "write", "scope": None}},
        {"acl": {"op": "grant", "to": "nobody", "right": "write", "scope": None}},
        {"acl": {"op": "grant", "to": IDS["A"], "right": "admin", "scope": "x"}},
        {"acl": {"op": "redeem", "to": IDS["A"], "right": "admin", "scope": None}},
        {"acl": {"op": "grant", "to": IDS["A"], "right": "write", "scope": ""}},
        {"acl": [1, 2]},
    ]
    for payload in bad:
        with pytest.raises(InvalidAclOpError) as info:
            parse_acl_payload(payload)
        assert isinstance(info.value, InvalidDataError)


def test_covers() -> None:
    assert covers(None, None) and covers(None, ["x"])
    assert covers("a", ["ab", "ac"]) and not covers("a", ["ab", "b"]) and not covers("a", None)


# -- the property ---------------------------------------------------------------------

PEOPLE = ["A", "B", "C"]
SCOPES = [None, "a", "b"]


@st.composite
def histories(draw: st.DrawFn) -> History:
    h = History()
    steps = draw(st.integers(min_value=1, max_value=22))
    for _ in range(steps):
        existing = len(h.nodes)
        parents: tuple[int, ...] = ()
        if existing:
            chosen = draw(
                st.lists(st.integers(0, existing - 1), min_size=0, max_size=2, unique=True)
            )
            parents = tuple(sorted(chosen))
        kind = draw(st.sampled_from(["grant", "revoke", "redeem", "write", "write"]))
        author = draw(st.sampled_from(["O", "O", "A", "B", "C", "I", "J"]))
        if kind == "write":
            keys = draw(st.sampled_from([None, ("a1",), ("b1",), ("a1", "b2")]))
            h.add(author, parents, keys=keys)
            continue
        to = draw(st.sampled_from([*PEOPLE, "I", "J", "O"]))
        if kind == "redeem":
            acl = op("redeem", to, "write", draw(st.sampled_from(SCOPES)))
        else:
            right = draw(st.sampled_from(["write", "write", "admin", "invite"]))
            scope = None if right == "admin" else draw(st.sampled_from(SCOPES))
            acl = op(kind, to, right, scope)
        h.add(author, parents, acl=acl)
    return h


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.integers(0, 2**32))
def test_any_arrival_order_matches_the_reference(h: History, seed: int) -> None:
    check(h, seed)


def test_a_batch_over_two_scopes_needs_both() -> None:
    h = History()
    ga = h.add("O", acl=op("grant", "A", scope="a"))
    gb = h.add("O", (ga,), acl=op("grant", "A", scope="b"))
    both = h.add("A", (gb,), keys=("a1", "b2"))
    half = h.add("A", (ga,), keys=("a1", "b2"))
    _, visible = check(h)
    assert both in visible and half not in visible
