"""Capabilities: rights granted and revoked by entries in the database's own log.

How it works
============

A database with ``access: {"type": "capabilities", "owner": <did>}`` keeps its access
list in its log. An *ACL op* is an entry whose payload is exactly
``{"acl": {"op": ..., "to": <did>, "right": ..., "scope": <str or None>}}``; any other
payload is data, and a payload with the ``"acl"`` key that is not exactly that shape is
invalid (so an ACL op can never be smuggled in as data, nor data mistaken for one).
Views never see ACL ops.

Rights are keyed ``(did, right, scope)``:

- ``write``, optionally scoped by a key/id prefix (``scope``);
- ``admin`` (never scoped): may grant ``write``/``admin``, revoke ``write``, and create
  and revoke invites. An admin may also write (anything). Only the owner revokes
  ``admin``; the owner holds every right and cannot be revoked;
- ``invite`` (held by a one-time invite key, scoped like ``write``): its holder may sign
  one ``redeem`` op that grants ``write`` (with the invite's scope) to the ``to`` did.

The rule (``past(x)`` = strict ancestors of ``x``; ``<`` = the total order):

1. *State.* In a set S of valid ACL ops, the right k is held iff some grant g of k in S
   is not *killed* by a revoke v of k in S, where v kills g iff v is not in past(g)
   (so a revoke wins over a concurrent grant; a grant after a revoke re-grants). A valid
   redeem counts as a grant of the right it redeems.
2. *Authorization.* An op (or a write) is authorized iff its author holds the right it
   needs in the state of the valid ACL ops in its past. Its *authorizing grants* are the
   grants that make that right held there.
3. *Retraction.* It is retracted iff every authorizing grant is killed by a valid revoke
   that does not have it in its past (it is concurrent with the revocation: the
   backdating attack, appending on old parents after being revoked, gains nothing).
4. *Validity.* The owner's ops are valid. Other ACL ops are valid iff authorized and not
   retracted; a redeem is also void if an earlier (``<``) valid redeem signed by the same
   invite key exists (an invite is used once). A write is *visible* iff authorized and
   not retracted.

No cycle: an admin op depends on the ops in its past and on the owner's revocations
(always valid); a redeem (write only) additionally on revocations of its invite, which
are admin ops. So validity is computed in total order, admin ops first, redeems second.

The evaluator below keeps the ACL ops as a DAG of their own: each op knows its *ACL
frontier* (the maximal ACL ops in its causal past) and its ACL past as a bit set, so
"g in past(x)" is one bit test. It does no I/O; the op-log feeds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from orbitstore.core.cid import Cid
from orbitstore.core.identity import public_key_from_did
from orbitstore.core.order import OrderKey
from orbitstore.errors import InvalidAclOpError, InvalidDataError, InvalidValueError

ACL_KEY: Final = "acl"
OPS: Final = frozenset({"grant", "revoke", "redeem"})
RIGHTS: Final = frozenset({"write", "admin", "invite"})
MAX_SCOPE: Final = 256

RightKey = tuple[str, str, "str | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AclOp:
    """One access operation (the ``acl`` part of an ACL entry's payload)."""

    op: str
    to: str
    right: str
    scope: str | None = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise InvalidValueError(f"an ACL op is one of {sorted(OPS)}, not {self.op!r:.40}")
        if self.right not in RIGHTS:
            raise InvalidValueError(f"a right is one of {sorted(RIGHTS)}, not {self.right!r:.40}")
        if not isinstance(self.to, str):
            raise InvalidValueError("an ACL op's 'to' is a did:key string")
        try:
            public_key_from_did(self.to)
        except InvalidDataError as exc:
            raise InvalidValueError(f"not a did:key: {self.to!r:.80}") from exc
        if self.scope is not None and (
            not isinstance(self.scope, str) or not 0 < len(self.scope) <= MAX_SCOPE
        ):
            raise InvalidValueError(f"a scope is a key prefix of 1-{MAX_SCOPE} characters")
        if self.right == "admin" and self.scope is not None:
            raise InvalidValueError("the admin right is not scoped")
        if self.op == "redeem" and self.right != "write":
            raise InvalidValueError("an invite redeems the write right")

    @property
    def key(self) -> RightKey:
        return (self.to, self.right, self.scope)

    def to_payload(self) -> dict[str, Any]:
        return {ACL_KEY: {"op": self.op, "to": self.to, "right": self.right, "scope": self.scope}}


def is_acl_payload(payload: object) -> bool:
    """Whether a payload claims to be an ACL op (a map whose keys include ``acl``)."""
    return isinstance(payload, dict) and ACL_KEY in payload


def parse_acl_payload(payload: object) -> AclOp | None:
    """The ACL op of a payload; None for data; InvalidAclOpError if it claims to be one
    (it has the ``acl`` key) but is not exactly the shape."""
    if not is_acl_payload(payload):
        return None
    assert isinstance(payload, dict)
    body = payload[ACL_KEY]
    if len(payload) != 1 or not isinstance(body, dict):
        raise InvalidAclOpError("an ACL payload is exactly {'acl': {op, to, right, scope}}")
    if set(body) != {"op", "to", "right", "scope"}:
        raise InvalidAclOpError("an ACL op has exactly the fields op, to, right and scope")
    try:
        return AclOp(op=body["op"], to=body["to"], right=body["right"], scope=body["scope"])
    except InvalidValueError as exc:
        raise InvalidAclOpError(f"invalid ACL op: {exc}") from exc


def covers(scope: str | None, keys: Sequence[str] | None) -> bool:
    """Whether a write right with ``scope`` covers writing ``keys`` (None: unscoped)."""
    if scope is None:
        return True
    return keys is not None and all(k.startswith(scope) for k in keys)


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


@dataclass(slots=True)
class _Op:
    idx: int
    cid: Cid
    order: OrderKey
    author: str
    op: AclOp
    past: int  # bit set of the ACL ops in its causal past


@dataclass(slots=True)
class _Eval:
    valid: int = 0
    reasons: dict[int, str] = field(default_factory=dict)


class AccessGraph:
    """The ACL ops of one log and the rights they give (see the module docstring)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._ops: list[_Op] = []
        self._by_cid: dict[Cid, _Op] = {}
        self._grants: dict[RightKey, list[int]] = {}
        self._revokes: dict[RightKey, list[int]] = {}
        self._eval: _Eval | None = None
        self._cache: dict[int, dict[tuple[str, tuple[str, ...] | None], object]] = {}
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

    def add(self, *, cid: Cid, order: OrderKey, author: str, op: AclOp, past: int) -> None:
        """Add an ACL op whose ACL past (a :meth:`closure`) is known."""
        if cid in self._by_cid:
            return
        node = _Op(len(self._ops), cid, order, author, op, past)
        self._ops.append(node)
        self._by_cid[cid] = node
        target = self._grants if op.op in ("grant", "redeem") else self._revokes
        key = (op.to, "write", op.scope) if op.op == "redeem" else op.key
        target.setdefault(key, []).append(node.idx)
        self._eval = None
        self._cache.clear()
        self._names.clear()
        self._killers.clear()

    def index(self, cid: Cid) -> int:
        return self._by_cid[cid].idx

    def cid_of(self, idx: int) -> Cid:
        return self._ops[idx].cid

    def _members(self, mask: int) -> Iterable[_Op]:
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
        for node in ordered:  # the owner's ops are valid whatever else exists
            if node.author == self.owner:
                self._decide(ev, node, "admin")
        for node in ordered:  # then the admins' ops, in total order
            if node.op.op != "redeem" and node.author != self.owner:
                self._decide(ev, node, "admin")
        used: set[str] = set()
        for node in ordered:  # then redeems: they only depend on admin ops
            if node.op.op == "redeem" and node.author != self.owner:
                self._decide(ev, node, "invite", used)
        return ev

    def _decide(self, ev: _Eval, node: _Op, right: str, used: set[str] | None = None) -> None:
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

    def _check_op(self, ev: _Eval, node: _Op, right: str) -> str | None:
        op = node.op
        if node.author == self.owner:
            if op.to == self.owner and op.op == "revoke":
                return "the owner cannot be revoked"
            return None
        if op.to == self.owner:
            return "the owner's rights cannot be changed"
        if op.op == "revoke" and op.right == "admin":
            return "only the owner revokes the admin right"
        scope = op.scope if right == "invite" else None
        groups = self._held(ev.valid & node.past, node.author, right, scope)
        if not groups:
            return f"{node.author} did not hold the {right} right in the op's causal past"
        if self._retracted(ev.valid, groups, lambda v: bool(self._ops[v].past >> node.idx & 1)):
            return f"{node.author}'s {right} right was revoked concurrently"
        return None

    def _held(self, mask: int, did: str, right: str, scope: str | None) -> frozenset[int]:
        """The grants in ``mask`` that make (did, right, scope) held (empty: not held)."""
        held = [g for g in self._grants.get((did, right, scope), ()) if mask >> g & 1]
        revokes = [v for v in self._revokes.get((did, right, scope), ()) if mask >> v & 1]
        return frozenset(
            g for g in held if not any(not self._ops[g].past >> v & 1 for v in revokes)
        )

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

    def check_new_op(self, author: str, op: AclOp, past: int) -> str | None:
        """Why ``author`` may not append ``op`` on a past (None: it may)."""
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

    def authorize(self, writer: str, keys: Sequence[str] | None, past: int) -> Authorized | Denied:
        """Whether ``writer`` may write ``keys`` (None: the whole database) given the
        ACL ops ``past`` in its causal past. Cached per (past, writer, keys)."""
        per = self._cache.setdefault(past, {})
        ck = (writer, None if keys is None else tuple(keys))
        got = per.get(ck)
        if got is None:
            got = self._authorize(writer, keys, past)
            per[ck] = got
        assert isinstance(got, Authorized | Denied)
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
        return any(self._retracted(valid, g, in_past_of) for g in verdict.groups)

    def op(self, idx: int) -> AclOp:
        return self._ops[idx].op

    def names(self, did: str, past: int) -> bool:
        """Whether some grant or redeem in ``past`` (valid or not) names ``did``: if none
        does, no state of that past can authorize ``did``."""
        ck = (past, did)
        got = self._names.get(ck)
        if got is None:
            got = any(
                to == did and any(past >> g & 1 for g in grants)
                for (to, _, _), grants in self._grants.items()
            )
            self._names[ck] = got
        return got

    def oldest_grant_clock(self, did: str) -> int:
        """The smallest clock of a grant naming ``did`` (0 if none)."""
        clocks = [
            self._ops[g].order[0]
            for (to, _, _), grants in self._grants.items()
            if to == did
            for g in grants
        ]
        return min(clocks, default=1) - 1

    def killers(self, verdict: Authorized) -> frozenset[int]:
        """The valid revokes that kill some authorizing grant of ``verdict`` (only they
        can retract it). Cached per verdict."""
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
            got = self._killers[verdict] = frozenset(found)
        return got

    def revokes(self) -> Iterable[tuple[int, AclOp]]:
        """Valid revocations, as (index, op)."""
        valid = self._evaluated().valid
        for node in self._ops:
            if node.op.op == "revoke" and valid >> node.idx & 1:
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
