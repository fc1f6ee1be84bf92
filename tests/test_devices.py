"""Hypothesis: several users with several devices each — random linking, unlinking,
grants, revocations and writes, signed for real — delivered to keyvalue replicas in
random causal orders, chunks and partitions. Every replica's view equals last-writer-wins
over the entries that a reference evaluation, written here from docs/identity.md and
docs/security-model.md (brute force over explicit ancestor sets, no bit sets, no caches),
says are visible: at a partition's partial state and once everything is delivered.

Plus worked examples of the rule: a stolen device, one device one user, expiry.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orbitstore.core.access import CapabilitiesAccess
from orbitstore.core.capabilities import AclOp, parse_acl_payload
from orbitstore.core.devices import Delegation, Unlink
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.errors import InvalidAclOpError
from orbitstore.node import open_node
from orbitstore.node.keyvalue import KeyValue
from orbitstore.storage.memory import MemoryStore
from orbitstore.testing.entries import entry_after

# Roots: O (the owner, a user with devices), U and V. Devices: O1 O2, U1 U2 U3, V1 V2.
KEYS = {
    name: Identity(bytes([i + 1]) * 32)
    for i, name in enumerate(["O", "U", "V", "O1", "O2", "U1", "U2", "U3", "V1", "V2", "X"])
}
ID = {name: key.id for name, key in KEYS.items()}
NAME = {did: name for name, did in ID.items()}
USER_OF = {"O1": "O", "O2": "O", "U1": "U", "U2": "U", "U3": "U", "V1": "V", "V2": "V"}
DEVICES = sorted(USER_OF)
OWNER = ID["O"]


@dataclass(frozen=True)
class Step:
    author: str
    parents: tuple[int, ...]
    kind: str  # link, unlink, grant, revoke, put
    to: str = ""  # did (grant/revoke), device name (link/unlink)
    user: str = ""  # root name (link/unlink)
    right: str = "write"
    scope: str | None = None
    issued: int = 0
    key: str = ""


@st.composite
def plans(draw: st.DrawFn) -> list[Step]:
    out = [
        Step("O1", (), "link", to="O1", user="O", issued=1),  # the owner's first device
        Step("O1", (0,), "grant", to=ID["U"], right="write"),
        Step("O1", (1,), "grant", to=ID["V"], right="write", scope="a/"),
        Step("U1", (2,), "link", to="U1", user="U", issued=draw(st.integers(1, 6))),
        Step("V1", (2,), "link", to="V1", user="V", issued=draw(st.integers(1, 6))),
    ]
    stored = set(range(len(out)))  # parents are drawn mostly among admitted steps
    for n in range(len(out), len(out) + draw(st.integers(1, 18))):
        pool = sorted(stored) if draw(st.integers(0, 9)) else list(range(n))
        recent = pool[-5:]
        parents = tuple(
            sorted(draw(st.lists(st.sampled_from(recent), min_size=1, max_size=2, unique=True)))
        )
        kind = draw(
            st.sampled_from(
                ["link", "link", "unlink", "unlink", "grant", "revoke", "put", "put", "put", "put"]
            )
        )
        if kind == "link":
            device = draw(st.sampled_from(DEVICES))
            # Mostly its own user; sometimes another user's delegation (it consents to it).
            user = USER_OF[device] if draw(st.integers(0, 4)) else draw(st.sampled_from("OUV"))
            step = Step(
                device, parents, "link", to=device, user=user, issued=draw(st.integers(1, 6))
            )
        elif kind == "unlink":
            device = draw(st.sampled_from(DEVICES))
            poster = draw(st.sampled_from(["O", "O1", "U1", "V1", device]))
            step = Step(
                poster,
                parents,
                "unlink",
                to=device,
                user=USER_OF[device],
                issued=draw(st.integers(1, 6)),
            )
        elif kind in ("grant", "revoke"):
            author = draw(st.sampled_from(["O", "O1", "O2", "U1", "U2", "V1"]))
            to = draw(st.sampled_from(["U", "V", "U2", "V1", "O"]))
            right = draw(st.sampled_from(["write", "write", "admin"]))
            scope = None if right == "admin" else draw(st.sampled_from([None, "a/"]))
            step = Step(author, parents, kind, to=ID[to], right=right, scope=scope)
        else:
            author = draw(st.sampled_from(["O1", "O2", "U1", "U2", "U3", "V1", "V2", "O"]))
            # Mostly a key of its own (the view then shows every visible write), sometimes
            # a shared one (last writer wins among visible writes).
            prefix = draw(st.sampled_from(["a/", "b/"]))
            key = prefix + (str(n) if draw(st.integers(0, 3)) else "shared")
            step = Step(author, parents, "put", key=key)
        out.append(step)
        if n in Reference(out, None, set(range(len(out)))).stored:
            stored.add(n)
    return out


def payload_of(step: Step, n: int) -> Any:
    if step.kind == "link":
        d = Delegation.create(KEYS[step.user], ID[step.to], issued=step.issued)
        return AclOp.link(d).to_payload()
    if step.kind == "unlink":
        u = Unlink.create(KEYS[step.user], ID[step.to], issued=step.issued)
        return AclOp.unlink(u).to_payload()
    if step.kind in ("grant", "revoke"):
        return AclOp(op=step.kind, to=step.to, right=step.right, scope=step.scope).to_payload()
    return {"op": "put", "key": step.key, "value": n}


def build(plan: list[Step]) -> tuple[Manifest, list[Entry]]:
    manifest = Manifest(name="d", type="keyvalue", access=CapabilitiesAccess.of(OWNER), meta={})
    entries: list[Entry] = []
    for n, step in enumerate(plan):
        entries.append(
            Entry.create(
                KEYS[step.author],
                db=manifest.cid,
                clock=max((entries[p].clock for p in step.parents), default=0) + 1,
                next=sorted((entries[p].cid for p in step.parents), key=bytes),
                payload=payload_of(step, n),
            )
        )
    return manifest, entries


# -- the reference ------------------------------------------------------------------------


class Reference:
    """The rule of docs/identity.md over a down-closed set of plan steps, brute force."""

    def __init__(self, plan: list[Step], entries: list[Entry] | None, subset: set[int]) -> None:
        self.plan = plan
        self.entries = entries or []
        self.past: dict[int, set[int]] = {}
        for n, step in enumerate(plan):
            self.past[n] = set().union(*({p} | self.past[p] for p in step.parents))
        self.stored = self._admitted(subset)
        if entries is not None:
            self.order = sorted(self.stored, key=lambda n: entries[n].order_key)

    def writer(self, n: int) -> str:
        return ID[self.plan[n].author]

    def _named(self, did: str, past: set[int]) -> bool:
        return did == OWNER or any(
            self.plan[p].kind == "grant" and self.plan[p].to == did for p in past
        )

    def _admitted(self, subset: set[int]) -> set[int]:
        stored: set[int] = set()
        for n in sorted(subset):
            step = self.plan[n]
            if not all(p in stored for p in step.parents):
                continue
            w, past = self.writer(n), self.past[n]
            ok = self._named(w, past)
            if step.kind == "link":
                ok = ok or self._named(ID[step.user], past)
            ok = ok or any(
                self.plan[p].kind == "link"
                and ID[self.plan[p].to] == w
                and self._named(ID[self.plan[p].user], past)
                for p in past
            )
            if ok:
                stored.add(n)
        return stored

    def evaluate(self) -> tuple[set[int], set[int]]:
        plan = self.plan
        valid: set[int] = set()
        first_user: dict[str, str] = {}
        for n in self.order:  # device ops
            if plan[n].kind == "unlink" or (
                plan[n].kind == "link"
                and first_user.setdefault(plan[n].to, plan[n].user) == plan[n].user
            ):
                valid.add(n)
        acl = [n for n in self.order if plan[n].kind in ("grant", "revoke")]
        owners = [n for n in acl if self.acting(n, valid)[0] == OWNER]
        for n in owners:
            _, links = self.acting(n, valid)
            if self.links_retracted(n, links, valid):
                continue
            if plan[n].kind == "revoke" and plan[n].to == OWNER:
                continue
            valid.add(n)
        for n in acl:
            if n in owners:
                continue
            who, links = self.acting(n, valid)
            step = plan[n]
            if step.to == OWNER or (step.kind == "revoke" and step.right == "admin"):
                continue
            grants = self.held(self.past[n] & valid, (who, "admin", None))
            if not grants or self.grants_retracted(n, grants, valid):
                continue
            if self.links_retracted(n, links, valid):
                continue
            valid.add(n)
        visible = set()
        for n in self.order:
            if plan[n].kind == "put" and self.visible(n, valid):
                visible.add(n)
        return valid, visible

    def kills_link(self, v: int, link: int) -> bool:
        a, b = self.plan[v], self.plan[link]
        return a.kind == "unlink" and (a.to, a.user) == (b.to, b.user) and b.issued <= a.issued

    def acting(self, n: int, valid: set[int]) -> tuple[str, set[int]]:
        w = self.writer(n)
        if w == OWNER:
            return OWNER, set()
        s = self.past[n] & valid
        links = {
            p
            for p in s
            if self.plan[p].kind == "link"
            and ID[self.plan[p].to] == w
            and not any(self.kills_link(v, p) for v in s)
        }
        if not links:
            return w, set()
        return ID[self.plan[next(iter(links))].user], links

    def links_retracted(self, n: int, links: set[int], valid: set[int]) -> bool:
        return bool(links) and all(
            any(self.kills_link(v, link) and n not in self.past[v] for v in valid) for link in links
        )

    def gkey(self, g: int) -> tuple[str, str, str | None]:
        s = self.plan[g]
        return (s.to, s.right, s.scope)

    def held(self, s: set[int], key: tuple[str, str, str | None]) -> set[int]:
        return {
            g
            for g in s
            if self.plan[g].kind == "grant"
            and self.gkey(g) == key
            and not any(
                self.plan[v].kind == "revoke" and self.gkey(v) == key and v not in self.past[g]
                for v in s
            )
        }

    def grants_retracted(self, n: int, grants: set[int], valid: set[int]) -> bool:
        return all(
            any(
                self.plan[v].kind == "revoke"
                and self.gkey(v) == self.gkey(g)
                and v not in self.past[g]
                and n not in self.past[v]
                for v in valid
            )
            for g in grants
        )

    def visible(self, n: int, valid: set[int]) -> bool:
        who, links = self.acting(n, valid)
        if self.links_retracted(n, links, valid):
            return False
        if who == OWNER:
            return True
        key = self.plan[n].key
        s = self.past[n] & valid
        group = self.held(s, (who, "admin", None))
        for scope in (None, "a/"):
            if scope is None or key.startswith(scope):
                group |= self.held(s, (who, "write", scope))
        return bool(group) and not self.grants_retracted(n, group, valid)

    def view(self) -> dict[str, Any]:
        _, visible = self.evaluate()
        latest: dict[str, Entry] = {}
        for n in visible:
            e = self.entries[n]
            k = e.payload["key"]
            if k not in latest or e.order_key > latest[k].order_key:
                latest[k] = e
        return {k: e.payload["value"] for k, e in latest.items()}


# -- replicas ---------------------------------------------------------------------------


def causal_order(plan: list[Step], subset: set[int], rnd: random.Random) -> list[int]:
    done: set[int] = set()
    order: list[int] = []
    todo = set(subset)
    while todo:
        ready = sorted(n for n in todo if all(p in done for p in plan[n].parents))
        pick = rnd.choice(ready)
        todo.discard(pick)
        done.add(pick)
        order.append(pick)
    return order


def down_closed(plan: list[Step], rnd: random.Random) -> set[int]:
    """A random partition's share: a random set closed under ancestry."""
    keep: set[int] = set()
    for n, step in enumerate(plan):
        if all(p in keep for p in step.parents) and rnd.random() < 0.7:
            keep.add(n)
    return keep


async def replica(
    manifest: Manifest,
    entries: list[Entry],
    phases: list[list[int]],
    rnd: random.Random,
) -> list[dict[str, Any]]:
    store = MemoryStore()
    cid, block = manifest.to_block()
    store.blocks.put(cid, block)
    views = []
    async with open_node(store=store, identity=KEYS["X"]) as node:
        db = await node.open(manifest.address, type="keyvalue")
        assert isinstance(db, KeyValue)
        for order in phases:
            i = 0
            while i < len(order):
                size = rnd.randint(1, 4)
                await db.receive_entries([entries[n] for n in order[i : i + size]])
                i += size
            views.append(dict(db.items()))
    return views


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans(), st.integers(0, 2**32))
def test_replicas_with_devices_agree_with_the_reference(plan: list[Step], seed: int) -> None:
    manifest, entries = build(plan)
    rnd = random.Random(seed)
    everything = set(range(len(plan)))
    want = Reference(plan, entries, everything).view()
    for _ in range(3):
        part = down_closed(plan, rnd)
        first = causal_order(plan, part, rnd)
        rest = [n for n in causal_order(plan, everything, rnd) if n not in part]
        partial, final = trio.run(replica, manifest, entries, [first, rest], rnd)
        assert partial == Reference(plan, entries, part).view()
        assert final == want


# -- worked examples --------------------------------------------------------------------


def test_a_link_op_must_carry_a_signature_by_the_user_it_names() -> None:
    d = Delegation.create(KEYS["U"], ID["U1"], issued=5)
    forged = d.to_value() | {"user": ID["V"]}
    with pytest.raises(InvalidAclOpError, match="not signed"):
        parse_acl_payload({"acl": {"op": "link", "delegation": forged}})
    with pytest.raises(InvalidAclOpError):
        parse_acl_payload({"acl": {"op": "link", "delegation": d.to_value(), "x": 1}})
    assert parse_acl_payload(AclOp.link(d).to_payload()) == AclOp.link(d)
    assert Delegation.from_text(d.to_text()) == d


async def test_expired_delegations_stop_authorizing_at_the_entry_ts() -> None:
    store = MemoryStore()
    async with open_node(store=store, identity=KEYS["O1"]) as node:
        db = await node.open("e", type="keyvalue", access="capabilities")
        assert isinstance(db, KeyValue)
        await db.grant(ID["U"], "write")
        heads = [db.get_entry(h) for h in db.heads]
        d = Delegation.create(KEYS["U"], ID["U1"], issued=1, expires=1000)

        def make(payload: Any, parents: list[Any], ts: int | None) -> Entry:
            return entry_after(KEYS["U1"], db.cid, payload, parents, ts=ts)

        link = make(AclOp.link(d).to_payload(), heads, 10)
        inside = make({"op": "put", "key": "in", "value": 1}, [link], 999)
        after = make({"op": "put", "key": "out", "value": 1}, [inside], 1000)
        unstamped = make({"op": "put", "key": "none", "value": 1}, [after], None)
        await db.receive_entries([link, inside, after, unstamped])
        assert dict(db.items()) == {"in": 1}


async def test_one_device_one_user_the_first_link_wins() -> None:
    async with open_node(store=MemoryStore(), identity=KEYS["O1"]) as node:
        db = await node.open("f", type="keyvalue", access="capabilities")
        assert isinstance(db, KeyValue)
        await db.grant(ID["U"], "write")
        await db.grant(ID["V"], "write", scope="v/")
        base = [db.get_entry(h) for h in db.heads]

        def make(payload: Any, parents: list[Any]) -> Entry:
            return entry_after(KEYS["U1"], db.cid, payload, parents)

        to_u = make(AclOp.link(Delegation.create(KEYS["U"], ID["U1"], issued=1)).to_payload(), base)
        to_v = make(
            AclOp.link(Delegation.create(KEYS["V"], ID["U1"], issued=1)).to_payload(), [to_u]
        )
        put = make({"op": "put", "key": "x", "value": 1}, [to_v])
        await db.receive_entries([to_u, to_v, put])
        assert db.get("x") == 1  # acts for U (unscoped), not V (v/ only)
        assert db.user_of(ID["U1"]) == ID["U"]
        state = {op["cid"]: op for op in db.access_state()["ops"]}
        assert state[str(to_v.cid)]["valid"] is False
        assert "linked to" in state[str(to_v.cid)]["reason"]


# -- decoders never raise anything but our errors -----------------------------------------

_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["type", "user", "device", "issued", "expires", "purpose", "sig"]),
    _VALUES,
    st.booleans(),
)
def test_a_mangled_link_op_is_refused_with_our_error(field: str, value: Any, unlink: bool) -> None:
    if unlink:
        body = Unlink.create(KEYS["U"], ID["U1"], issued=3).to_value()
        field = field if field in body else "sig"
    else:
        body = Delegation.create(KEYS["U"], ID["U1"], issued=3).to_value()
    body[field] = value
    payload = {
        "acl": {"op": "unlink" if unlink else "link", ("unlink" if unlink else "delegation"): body}
    }
    try:
        got = parse_acl_payload(payload)
    except InvalidAclOpError:
        return
    assert got is not None and got.statement is not None  # only an unchanged value passes


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_pairing_messages_from_anyone_are_refused_with_our_error(data: bytes) -> None:
    from orbitstore.core import codec, pairing
    from orbitstore.errors import InvalidDataError

    desk = pairing.PairingDesk(peer="12D3KooWpeer")
    desk.open(b"\x01" * 5, 0.0)
    for blob in (
        data,
        codec.encode({"t": "pair", "v": 1, "device": ID["U1"], "proof": data, "sig": data}),
    ):
        answer = desk.answer(blob, now=1.0, root=KEYS["U"], issued=1)
        with pytest.raises(InvalidDataError):
            pairing.parse_answer(answer, ID["U1"])
        with pytest.raises(InvalidDataError):
            pairing.parse_answer(blob, ID["U1"])
    from orbitstore.errors import InvalidDelegationError

    with pytest.raises(InvalidDelegationError):
        Delegation.from_text("odl" + data.decode("latin-1"))
