"""Which user a device acts for in a causal past: the link and unlink ops of one access
graph (the rule is in :mod:`orbitstore.core.capabilities` and docs/identity.md).

:class:`DeviceLinks` indexes the link ops by device and the unlink ops by (device, user),
over the op records of the graph it belongs to (shared, never copied), and answers "in
the valid ops of this past, whom does this writer act for, through which links" with a
cache per (past, writer). It does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from orbitstore.core.acl_ops import AclOp
from orbitstore.core.cid import Cid
from orbitstore.core.devices import Delegation
from orbitstore.core.order import OrderKey

NO_LINKS: Final[frozenset[int]] = frozenset()


@dataclass(slots=True)
class OpNode:
    """One ACL op of an access graph."""

    idx: int
    cid: Cid
    order: OrderKey
    author: str
    op: AclOp
    past: int  # bit set of the ACL ops in its causal past
    ts: int | None = None


@dataclass(frozen=True, slots=True)
class Acting:
    """Whom a writer acts as in a past: itself (no links) or the user of its links."""

    principal: str
    links: frozenset[int]
    expiring: bool  # some link has an expiry: the answer depends on the entry's ts


SELF: Final = Acting("", NO_LINKS, False)


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A device of a user in some past: linked (through ``ops``, its link ops) or
    unlinked (``ops``: the unlinkings that killed its links); ``since``: the issue time
    (ms, signed by the root) of its earliest live delegation, or of its last unlinking."""

    linked: bool
    since: int
    ops: frozenset[Cid]


class DeviceLinks:
    """The link and unlink ops of one access graph (see the module docstring)."""

    def __init__(self, ops: list[OpNode]) -> None:
        self._ops = ops
        self._links: dict[str, list[int]] = {}  # device -> link ops
        self._unlinks: dict[tuple[str, str], list[int]] = {}  # (device, user) -> unlinks
        self._devices_of: dict[str, set[str]] = {}  # user -> devices named by link ops
        self._acting: dict[tuple[int, str], Acting] = {}

    def add(self, node: OpNode) -> None:
        op = node.op
        assert op.user is not None
        if op.op == "link":
            self._links.setdefault(op.to, []).append(node.idx)
            self._devices_of.setdefault(op.user, set()).add(op.to)
        else:
            self._unlinks.setdefault((op.to, op.user), []).append(node.idx)
        self._acting.clear()

    def clear(self) -> None:
        self._acting.clear()

    def is_device(self, writer: str) -> bool:
        """Whether some link op (valid or not) names ``writer`` as a device."""
        return writer in self._links

    def links_of(self, device: str) -> list[int]:
        return self._links.get(device, [])

    def devices_of(self, user: str) -> frozenset[str]:
        return frozenset(self._devices_of.get(user, ()))

    def decide(self, ordered: list[OpNode]) -> tuple[int, dict[int, str]]:
        """The valid device ops among ``ordered`` (total order) as a bit set, and why
        the others are void: one device, one user (the first link wins)."""
        valid = 0
        reasons: dict[int, str] = {}
        first_user: dict[str, str] = {}
        for node in ordered:
            op = node.op
            if op.op == "unlink":
                valid |= 1 << node.idx
            elif op.op == "link":
                assert op.user is not None
                user = first_user.setdefault(op.to, op.user)
                if user != op.user:
                    reasons[node.idx] = f"this device was linked to {user} first"
                else:
                    valid |= 1 << node.idx
        return valid, reasons

    def presented(self, valid: int, delegation: Delegation, now: int | None) -> str | None:
        """The user a delegation shown outside the log (in a reader proof) makes its
        device read for, or None. The log decides for a device some link op names (one
        device, one user); otherwise the delegation holds unless it expired at ``now``
        (ms) or a valid unlinking of the same device and user, issued no earlier, is
        known."""
        device, user = delegation.device, delegation.user
        if device in self._links or (now is not None and not delegation.valid_at(now)):
            return None
        for v in self._unlinks.get((device, user), ()):
            unlink = self._ops[v].op.statement
            assert unlink is not None
            if valid >> v & 1 and delegation.issued <= unlink.issued:
                return None
        return user

    def first_user(self, device: str) -> str | None:
        links = self._links.get(device)
        if not links:
            return None
        return min((self._ops[li] for li in links), key=lambda n: n.order).op.user

    def acting_in(self, valid: int, past: int, writer: str, ts: int | None) -> Acting:
        """Whom ``writer`` acts as in the valid ops of ``past``, for an entry at ``ts``."""
        acting = self.acting_as(valid, past, writer)
        if acting.expiring:
            links = frozenset(li for li in acting.links if self._ops[li].op.delegation.valid_at(ts))
            if not links:
                return SELF
            acting = Acting(acting.principal, links, True)
        return acting

    def acting_as(self, valid: int, past: int, writer: str) -> Acting:
        """:meth:`acting_in` ignoring expiry (cached per (past, writer))."""
        links = self._links.get(writer)
        if not links:
            return SELF
        ck = (past, writer)
        got = self._acting.get(ck)
        if got is None:
            got = self._acting[ck] = self._compute(valid & past, writer, links)
        return got

    def _compute(self, mask: int, device: str, links: list[int]) -> Acting:
        held = [li for li in links if mask >> li & 1]
        if not held:
            return SELF
        user = self._ops[held[0]].op.user
        assert user is not None
        unlinks = [v for v in self._unlinks.get((device, user), ()) if mask >> v & 1]
        kept = frozenset(li for li in held if not any(self.kills(v, li) for v in unlinks))
        if not kept:
            return SELF
        expiring = any(self._ops[li].op.delegation.expires is not None for li in kept)
        return Acting(user, kept, expiring)

    def kills(self, v: int, li: int) -> bool:
        """Whether unlink ``v`` kills link ``li`` (same device and user, known to hold):
        the delegation was issued no later than the unlinking."""
        unlink = self._ops[v].op.statement
        assert unlink is not None
        return self._ops[li].op.delegation.issued <= unlink.issued

    def _unlinks_of(self, li: int) -> list[int]:
        op = self._ops[li].op
        return self._unlinks.get((op.to, op.user or ""), [])

    def retracted(
        self, valid: int, links: frozenset[int], in_past_of: Callable[[int], bool]
    ) -> bool:
        """Whether every link in ``links`` is killed by a valid unlink that does not have
        the entry in its past (``in_past_of(v)``: the entry is in past(v))."""
        return all(
            any(
                valid >> v & 1 and self.kills(v, li) and not in_past_of(v)
                for v in self._unlinks_of(li)
            )
            for li in links
        )

    def killers(self, valid: int, links: frozenset[int]) -> set[int]:
        """The valid unlinks that kill some of ``links``."""
        return {
            v for li in links for v in self._unlinks_of(li) if valid >> v & 1 and self.kills(v, li)
        }

    def linked(self, valid: int, mask: int) -> dict[str, dict[str, frozenset[Cid]]]:
        """``{user: {device: link CIDs}}`` of the devices linked in ``mask``."""
        out: dict[str, dict[str, frozenset[Cid]]] = {}
        for device, links in self._links.items():
            acting = self._compute(valid & mask, device, links)
            if acting.links:
                out.setdefault(acting.principal, {})[device] = frozenset(
                    self._ops[li].cid for li in acting.links
                )
        return out

    def states(self, valid: int, mask: int) -> dict[str, dict[str, DeviceState]]:
        """``{user: {device: state}}`` of every device a valid link op in ``mask`` links:
        linked now, or unlinked (every link killed), with since when (root-signed ms)."""
        out: dict[str, dict[str, DeviceState]] = {}
        for device, links in self._links.items():
            held = [li for li in links if (valid & mask) >> li & 1]
            if not held:
                continue
            acting = self._compute(valid & mask, device, links)
            user = self._ops[held[0]].op.user
            assert user is not None
            if acting.links:
                since = min(self._ops[li].op.delegation.issued for li in acting.links)
                state = DeviceState(
                    True, since, frozenset(self._ops[li].cid for li in acting.links)
                )
            else:
                killers = self.killers(valid & mask, frozenset(held))
                since = max(self._unlink_issued(v) for v in killers)
                state = DeviceState(False, since, frozenset(self._ops[v].cid for v in killers))
            out.setdefault(user, {})[device] = state
        return out

    def _unlink_issued(self, v: int) -> int:
        statement = self._ops[v].op.statement
        assert statement is not None
        return statement.issued

    def link_clocks(self, device: str) -> list[int]:
        return [self._ops[li].order[0] for li in self._links.get(device, ())]
