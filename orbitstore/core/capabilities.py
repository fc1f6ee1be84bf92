"""Capabilities: rights granted and revoked by entries in the database's own log.

How it works
============

A database with ``access: {"type": "capabilities", "owner": <did>}`` keeps its access
list in its log, as *ACL ops* (their payload shapes: :mod:`orbitstore.core.acl_ops`).
Views never see ACL ops.

Rights are keyed ``(did, right, scope)``:

- ``write``, optionally scoped by a key/id prefix (``scope``);
- ``admin`` (never scoped): may grant ``write``/``admin``/``replica``, revoke
  ``write``/``replica``, and create
  and revoke invites. An admin may also write (anything). Only the owner revokes
  ``admin``; the owner holds every right and cannot be revoked;
- ``invite`` (held by a one-time invite key, scoped like ``write``): its holder may sign
  one ``redeem`` op that grants ``write`` (with the invite's scope) to the ``to`` did;
- ``replica`` (never scoped; granted and revoked by admins like ``write``): its holder
  may hold and serve a private database (:mod:`orbitstore.node.privacy`) without writing
  it, like a replica its manifest names; it gives no key epoch (a blind replica).

*Users and devices* (docs/identity.md). A ``link`` op carries a delegation signed by a
user's root key naming a device; it is posted by that device (its entry is signed by the
device key: the device consents). An ``unlink`` op carries an unlinking signed by the
root key; anyone admitted may post it. An unlink v *kills* a link l of the same (device,
user) iff l's delegation was issued no later than v (both times are signed by the root
key, so a stolen device cannot re-link itself by posting its old delegation again; only a
new delegation re-links). A device's *links* in a set S are its valid link ops in S not
killed by an unlink in S. A writer whose links in an entry's past are not empty (and not
expired at the entry's ``ts``) *acts as the user*: its rights are the user's rights (its
own grants, if any, are not used), and if the user is the owner it is the owner. Link ops
are valid iff signed (checked when parsed) and no earlier (``<``) link op of the same
device names another user (one device, one user); unlink ops are always valid. Neither
depends on any other op, so they are decided first.

The rule (``past(x)`` = strict ancestors of ``x``; ``<`` = the total order):

1. *State.* In a set S of valid ACL ops, the right k is held iff some grant g of k in S
   is not *killed* by a revoke v of k in S, where v kills g iff v is not in past(g)
   (so a revoke wins over a concurrent grant; a grant after a revoke re-grants). A valid
   redeem counts as a grant of the right it redeems.
2. *Authorization.* An op (or a write) is authorized iff its author (or the user its
   links in its past make it act for) holds the right it needs in the state of the valid
   ACL ops in its past. Its *authorizing grants* are the grants that make that right held
   there; its *authorizing links* are those links.
3. *Retraction.* It is retracted iff every authorizing grant (of some touched key) is
   killed by a valid revoke that does not have it in its past, or every authorizing link
   is killed by an unlink that does not have it in its past (it is concurrent with the
   revocation or the unlinking: the backdating attack, appending on old parents after
   being revoked or unlinked, gains nothing).
4. *Validity.* The owner's ops are valid (an owner's device's ops: unless retracted by
   an unlinking). Other ACL ops are valid iff authorized and not retracted; a redeem is
   also void if an earlier (``<``) valid redeem signed by the same invite key exists (an
   invite is used once). A write is *visible* iff authorized and not retracted.

No cycle: link and unlink ops depend on nothing; an admin op depends on the ops in its
past and on the owner's revocations (valid unless the owner's posting device was
unlinked concurrently, which depends on unlinks only); a redeem (write only)
additionally on revocations of its invite, which are admin ops. So validity is computed
in total order: device ops, the owner's ops, admin ops, redeems.

The evaluator below keeps the ACL ops as a DAG of their own: each op knows its *ACL
frontier* (the maximal ACL ops in its causal past) and its ACL past as a bit set, so
"g in past(x)" is one bit test. It does no I/O; the op-log feeds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from orbitstore.core.acl_ops import (
    ACL_KEY,
    DEVICE_OPS,
    MAX_SCOPE,
    OPS,
    RIGHTS,
    AclOp,
    RightKey,
    covers,
    is_acl_payload,
    parse_acl_payload,
)
from orbitstore.core.cid import Cid
from orbitstore.core.device_links import NO_LINKS, SELF, DeviceLinks, DeviceState, OpNode
from orbitstore.core.devices import Delegation
from orbitstore.core.order import OrderKey

__all__ = [
    "ACL_KEY",
    "MAX_SCOPE",
    "OPS",
    "RIGHTS",
    "AccessGraph",
    "AclOp",
    "Authorized",
    "Denied",
    "covers",
    "is_acl_payload",
    "parse_acl_payload",
]


def _covers_some(scope: str | None, keys: Sequence[str] | None) -> bool:
    return scope is None or (keys is not None and any(k.startswith(scope) for k in keys))


@dataclass(frozen=True, slots=True)
class Denied:
    """Why an op or write is not authorized: who, which right, why."""

    writer: str
    right: str
    scope: str | None
    reason: str

    def message(self) -> str:
        where = "" if self.scope is None else f" on {self.scope!r}"
        return f"{self.writer} lacks the {self.right} right{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Authorized:
    """An authorized write: per touched key (one group if unscoped), its grants."""

    groups: tuple[frozenset[int], ...]
    """Indices of authorizing grants; empty tuple for the owner (never retracted)."""
    links: frozenset[int] = NO_LINKS
    """Indices of the authorizing links of a device acting for its user (else empty)."""


@dataclass(slots=True)
class _Eval:
    valid: int = 0
    reasons: dict[int, str] = field(default_factory=dict)


class AccessGraph:
    """The ACL ops of one log and the rights they give (see the module docstring)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._ops: list[OpNode] = []
        self._by_cid: dict[Cid, OpNode] = {}
        self._grants: dict[RightKey, list[int]] = {}
        self._revokes: dict[RightKey, list[int]] = {}
        self._devices = DeviceLinks(self._ops)
        self._eval: _Eval | None = None
        self._cache: dict[int, dict[tuple[object, ...], object]] = {}
        self._names: dict[tuple[int, str], bool] = {}
        self._killers: dict[Authorized, frozenset[int]] = {}

    # -- building ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ops)

    def __contains__(self, cid: object) -> bool:
        return cid in self._by_cid

    def closure(self, frontier: Iterable[Cid]) -> int:
        """The bit set of ACL ops in the down-closure of ``frontier``."""
        mask = 0
        for cid in frontier:
            op = self._by_cid[cid]
            mask |= op.past | (1 << op.idx)
        return mask

    def frontier(self, mask: int) -> tuple[Cid, ...]:
        """The maximal ops of a down-closed set, sorted by CID bytes (its canonical name)."""
        inner = 0
        for op in self._members(mask):
            inner |= op.past
        return tuple(sorted((op.cid for op in self._members(mask & ~inner)), key=bytes))

    def add(
        self,
        *,
        cid: Cid,
        order: OrderKey,
        author: str,
        op: AclOp,
        past: int,
        ts: int | None = None,
    ) -> None:
        """Add an ACL op whose ACL past (a :meth:`closure`) is known."""
        if cid in self._by_cid:
            return
        node = OpNode(len(self._ops), cid, order, author, op, past, ts)
        self._ops.append(node)
        self._by_cid[cid] = node
        if op.op in DEVICE_OPS:
            self._devices.add(node)
        else:
            target = self._grants if op.op in ("grant", "redeem") else self._revokes
            key = (op.to, "write", op.scope) if op.op == "redeem" else op.key
            target.setdefault(key, []).append(node.idx)
        self._eval = None
        self._cache.clear()
        self._devices.clear()
        self._names.clear()
        self._killers.clear()

    def index(self, cid: Cid) -> int:
        return self._by_cid[cid].idx

    def cid_of(self, idx: int) -> Cid:
        return self._ops[idx].cid

    def _members(self, mask: int) -> Iterable[OpNode]:
        while mask:
            low = mask & -mask
            yield self._ops[low.bit_length() - 1]
            mask ^= low

    # -- evaluating ----------------------------------------------------------------------

    def _evaluated(self) -> _Eval:
        if self._eval is None:
            self._eval = self._evaluate()
        return self._eval

    def _evaluate(self) -> _Eval:
        ev = _Eval()
        ordered = sorted(self._ops, key=lambda o: o.order)
        ev.valid, ev.reasons = self._devices.decide(ordered)
        rest = [n for n in ordered if n.op.op not in DEVICE_OPS]
        owners = set()
        for node in rest:  # the owner's ops (and its devices') depend on device ops only
            if node.author == self.owner or self._acts_for_owner(ev, node):
                owners.add(node.idx)
                self._decide(ev, node, "admin")
        for node in rest:  # then the admins' ops, in total order
            if node.op.op != "redeem" and node.idx not in owners:
                self._decide(ev, node, "admin")
        used: set[str] = set()
        for node in rest:  # then redeems: they only depend on admin ops
            if node.op.op == "redeem" and node.idx not in owners:
                self._decide(ev, node, "invite", used)
        return ev

    def _acts_for_owner(self, ev: _Eval, node: OpNode) -> bool:
        if node.op.op == "redeem" or not self._devices.is_device(node.author):
            return False
        return (
            self._devices.acting_in(ev.valid, node.past, node.author, node.ts).principal
            == self.owner
        )

    def _decide(self, ev: _Eval, node: OpNode, right: str, used: set[str] | None = None) -> None:
        reason = self._check_op(ev, node, right)
        if reason is None and used is not None:
            if node.author in used:
                reason = "this invite was already redeemed"
            else:
                used.add(node.author)
        if reason is None:
            ev.valid |= 1 << node.idx
        else:
            ev.reasons[node.idx] = reason

    def _check_op(self, ev: _Eval, node: OpNode, right: str) -> str | None:
        op = node.op
        acting = SELF
        author = node.author
        if op.op != "redeem" and author != self.owner:
            acting = self._devices.acting_in(ev.valid, node.past, author, node.ts)
            author = acting.principal or author
            if acting.links and self._devices.retracted(
                ev.valid, acting.links, lambda v: bool(self._ops[v].past >> node.idx & 1)
            ):
                return f"{node.author} was unlinked from {author} concurrently"
        if author == self.owner:
            if op.to == self.owner and op.op == "revoke":
                return "the owner cannot be revoked"
            return None
        if op.to == self.owner:
            return "the owner's rights cannot be changed"
        if op.op == "revoke" and op.right == "admin":
            return "only the owner revokes the admin right"
        scope = op.scope if right == "invite" else None
        groups = self._held(ev.valid & node.past, author, right, scope)
        if not groups:
            return f"{author} did not hold the {right} right in the op's causal past"
        if self._retracted(ev.valid, groups, lambda v: bool(self._ops[v].past >> node.idx & 1)):
            return f"{author}'s {right} right was revoked concurrently"
        return None

    def _held(self, mask: int, did: str, right: str, scope: str | None) -> frozenset[int]:
        """The grants in ``mask`` that make (did, right, scope) held (empty: not held)."""
        held = [g for g in self._grants.get((did, right, scope), ()) if mask >> g & 1]
        revokes = [v for v in self._revokes.get((did, right, scope), ()) if mask >> v & 1]
        return frozenset(
            g for g in held if not any(not self._ops[g].past >> v & 1 for v in revokes)
        )

    # -- devices -------------------------------------------------------------------------

    def acting_as(
        self, writer: str, past: int, ts: int | None = None
    ) -> tuple[str, frozenset[int]]:
        """``(principal, links)``: the user ``writer`` acts for in ``past`` (itself, with
        no links, if it is no linked device there)."""
        if writer == self.owner:
            return writer, NO_LINKS
        acting = self._devices.acting_in(self._evaluated().valid, past, writer, ts)
        return acting.principal or writer, acting.links

    def devices_of(self, user: str) -> frozenset[str]:
        """Every device some link op (valid or not) names for ``user``."""
        return self._devices.devices_of(user)

    def linked(self, past: int | None = None) -> dict[str, dict[str, frozenset[Cid]]]:
        """``{user: {device: link CIDs}}`` of the devices linked now (or in ``past``),
        ignoring expiry."""
        valid = self._evaluated().valid
        return self._devices.linked(valid, valid if past is None else past)

    def device_states(self, past: int | None = None) -> dict[str, dict[str, DeviceState]]:
        """``{user: {device: state}}``: every device linked to a user now (or in
        ``past``), linked still or unlinked, and since when (ignoring expiry)."""
        valid = self._evaluated().valid
        return self._devices.states(valid, valid if past is None else past)

    def _retracted(
        self, valid: int, groups: frozenset[int], in_past_of: Callable[[int], bool]
    ) -> bool:
        """Whether every grant in ``groups`` is killed by a valid revoke that does not
        have the entry in its past (``in_past_of(v)``: the entry is in past(v))."""
        for g in groups:
            grant = self._ops[g]
            key = (
                (grant.op.to, "write", grant.op.scope) if grant.op.op == "redeem" else grant.op.key
            )
            if not any(
                valid >> v & 1 and not grant.past >> v & 1 and not in_past_of(v)
                for v in self._revokes.get(key, ())
            ):
                return False
        return True

    # -- answers -------------------------------------------------------------------------

    def check_new_op(self, author: str, op: AclOp, past: int, ts: int | None = None) -> str | None:
        """Why ``author`` may not append ``op`` on a past (None: it may)."""
        if op.op == "link":
            if op.to != author:
                return "a device links itself: its link op is signed by the device key"
            first = self._devices.first_user(op.to)
            if first is not None and first != op.user:
                return f"this device is linked to {first}"
            return None
        if op.op == "unlink":
            return None
        if author != self.owner and op.op != "redeem":
            author = self.acting_as(author, past, ts)[0]
        if author == self.owner:
            return "the owner cannot be revoked" if op.op == "revoke" and op.to == author else None
        if op.to == self.owner:
            return "the owner's rights cannot be changed"
        if op.op == "revoke" and op.right == "admin":
            return "only the owner revokes the admin right"
        right, scope = ("invite", op.scope) if op.op == "redeem" else ("admin", None)
        valid = self._evaluated().valid
        if not self._held(valid & past, author, right, scope):
            where = "" if scope is None else f" on {scope!r}"
            return f"{author} does not hold the {right} right{where}"
        if op.op == "redeem" and any(
            n.author == author and n.op.op == "redeem" and valid >> n.idx & 1 for n in self._ops
        ):
            return "this invite was already redeemed"
        return None

    def is_valid(self, cid: Cid) -> bool:
        node = self._by_cid[cid]
        return bool(self._evaluated().valid >> node.idx & 1)

    def reason(self, cid: Cid) -> str | None:
        """Why an ACL op is void (None if it is valid)."""
        return self._evaluated().reasons.get(self._by_cid[cid].idx)

    def valid_mask(self) -> int:
        return self._evaluated().valid

    def authorize(
        self, writer: str, keys: Sequence[str] | None, past: int, ts: int | None = None
    ) -> Authorized | Denied:
        """Whether ``writer`` may write ``keys`` (None: the whole database) given the
        ACL ops ``past`` in its causal past (and, for a device whose delegation expires,
        the entry's ``ts``). Cached per (past, writer, keys)."""
        per = self._cache.setdefault(past, {})
        ck: tuple[object, ...] = (writer, None if keys is None else tuple(keys))
        got = per.get(ck)
        if got is None:
            links = NO_LINKS
            principal = writer
            if writer != self.owner and self._devices.is_device(writer):
                acting = self._devices.acting_in(self._evaluated().valid, past, writer, ts)
                if acting.expiring:  # the answer depends on ts: do not cache it
                    return self._verdict(acting.principal or writer, keys, past, acting.links)
                principal, links = acting.principal or writer, acting.links
            got = per[ck] = self._verdict(principal, keys, past, links)
        assert isinstance(got, Authorized | Denied)
        return got

    def _verdict(
        self, principal: str, keys: Sequence[str] | None, past: int, links: frozenset[int]
    ) -> Authorized | Denied:
        got = self._authorize(principal, keys, past)
        if links and isinstance(got, Authorized):
            return Authorized(got.groups, links)
        return got

    def _authorize(self, writer: str, keys: Sequence[str] | None, past: int) -> Authorized | Denied:
        if writer == self.owner:
            return Authorized(())
        mask = self._evaluated().valid & past
        admin = self._held(mask, writer, "admin", None)
        writes: dict[str | None, frozenset[int]] = {}
        for did, right, scope in self._grants:
            if did == writer and right == "write" and _covers_some(scope, keys):
                got = self._held(mask, writer, "write", scope)
                if got:
                    writes[scope] = got
        targets: Sequence[str | None] = [None] if keys is None else list(keys) or [None]
        groups: list[frozenset[int]] = []
        for k in targets:
            group = admin.union(
                *(g for s, g in writes.items() if s is None or (k is not None and k.startswith(s)))
            )
            if not group:
                return Denied(
                    writer,
                    "write",
                    k,
                    "no grant of it in the entry's causal past"
                    if not any(d == writer for d, _, _ in self._grants)
                    else "it was not held (revoked or out of scope) in the entry's causal past",
                )
            groups.append(group)
        return Authorized(tuple(groups))

    def retracted(self, verdict: Authorized, in_past_of: Callable[[int], bool]) -> bool:
        """Whether an authorized write is retracted; ``in_past_of(v)`` says whether the
        write is in the causal past of the ACL op with index v."""
        valid = self._evaluated().valid
        if verdict.links and self._devices.retracted(valid, verdict.links, in_past_of):
            return True
        return any(self._retracted(valid, g, in_past_of) for g in verdict.groups)

    def op(self, idx: int) -> AclOp:
        return self._ops[idx].op

    def names(self, did: str, past: int) -> bool:
        """Whether some grant or redeem in ``past`` (valid or not) names ``did``, or
        ``did`` is the owner: if not, no state of that past can authorize ``did``."""
        ck = (past, did)
        got = self._names.get(ck)
        if got is None:
            got = did == self.owner or any(
                to == did and any(past >> g & 1 for g in grants)
                for (to, _, _), grants in self._grants.items()
            )
            self._names[ck] = got
        return got

    def admissible(self, writer: str, past: int, op: AclOp | None) -> bool:
        """Whether an entry by ``writer`` on ``past`` can ever be authorized: ``writer``
        is named (:meth:`names`), or it is a device with a link op in ``past`` (or this
        link op) naming a user who is named. Decided by ``past`` alone (final)."""
        if self.names(writer, past):
            return True
        if op is not None and op.op == "link" and op.to == writer:
            assert op.user is not None
            if self.names(op.user, past):
                return True
        for li in self._devices.links_of(writer):
            if past >> li & 1:
                user = self._ops[li].op.user
                assert user is not None
                if self.names(user, past):
                    return True
        return False

    def oldest_grant_clock(self, did: str) -> int:
        """The smallest clock of a grant naming ``did`` (0 if none), or for a device, of
        a link op naming it."""
        clocks = [
            self._ops[g].order[0]
            for (to, _, _), grants in self._grants.items()
            if to == did
            for g in grants
        ]
        clocks.extend(self._devices.link_clocks(did))
        return min(clocks, default=1) - 1

    def killers(self, verdict: Authorized) -> frozenset[int]:
        """The valid revokes and unlinks that kill some authorizing grant or link of
        ``verdict`` (only they can retract it). Cached per verdict."""
        got = self._killers.get(verdict)
        if got is None:
            valid = self._evaluated().valid
            found: set[int] = set()
            for group in verdict.groups:
                for g in group:
                    grant = self._ops[g]
                    op = grant.op
                    key = (op.to, "write", op.scope) if op.op == "redeem" else op.key
                    found.update(
                        v
                        for v in self._revokes.get(key, ())
                        if valid >> v & 1 and not grant.past >> v & 1
                    )
            found.update(self._devices.killers(valid, verdict.links))
            got = self._killers[verdict] = frozenset(found)
        return got

    def revokes(self) -> Iterable[tuple[int, AclOp]]:
        """Valid revocations and unlinkings, as (index, op)."""
        valid = self._evaluated().valid
        for node in self._ops:
            if node.op.op in ("revoke", "unlink") and valid >> node.idx & 1:
                yield node.idx, node.op

    def state(self, past: int | None = None) -> Mapping[RightKey, frozenset[Cid]]:
        """The rights held in the state of the valid ops in ``past`` (default: all), with
        the grants that give them. The owner's implicit admin is not listed."""
        mask = self._evaluated().valid if past is None else self._evaluated().valid & past
        out: dict[RightKey, frozenset[Cid]] = {}
        for key in self._grants:
            held = self._held(mask, *key)
            if held:
                out[key] = frozenset(self._ops[g].cid for g in held)
        return out

    def principal_for(
        self, did: str, delegation: Delegation | None = None, now: int | None = None
    ) -> str:
        """The user ``did`` reads for now: the user of its current links in the log
        (expiry checked against ``now``, ms, if given), else the user of a
        ``delegation`` it presented (:meth:`DeviceLinks.presented`), else itself."""
        if did == self.owner:
            return did
        valid = self._evaluated().valid
        if self._devices.is_device(did):
            if now is None:
                acting = self._devices.acting_as(valid, valid, did)
            else:
                acting = self._devices.acting_in(valid, valid, did, now)
            return acting.principal or did
        if delegation is not None and delegation.device == did:
            return self._devices.presented(valid, delegation, now) or did
        return did

    def rights_of(self, did: str) -> frozenset[str]:
        """The rights ``did`` holds now, in any scope (the owner's implicit ones not
        listed)."""
        return frozenset(right for d, right, _ in self.state() if d == did)

    def is_member(self, did: str, ts: int | None = None) -> bool:
        """Whether ``did`` holds some right now: the owner, a holder of a grant, or a
        device currently linked to one of them (expiry checked against ``ts`` if given).
        Read control (:mod:`orbitstore.node.privacy`) asks which rights, through
        :meth:`principal_for` and :meth:`rights_of`."""
        principal = self.principal_for(did, None, ts)
        if principal == self.owner:
            return True
        return any(d == principal for d, _, _ in self.state())
