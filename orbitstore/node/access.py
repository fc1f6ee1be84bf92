"""Membership on database handles: grant, revoke, invite, redeem, and who holds what.

:class:`Membership` is the node's membership service: the node builds one and passes it
to each database handle it opens (``Database(members=...)``), whose methods
(``db.grant``, ``db.members``, ...) delegate to it; it knows the node's delegation when
the node is a linked device. What it reads is pure (:mod:`orbitstore.core.membership`);
what it writes are ACL entries in the database's log.

Only databases opened with ``access="capabilities"`` have members; on a static database
these methods raise UsageError. The rule they rely on is in
:mod:`orbitstore.core.capabilities` and docs/security-model.md.

Rebuilding: when an ACL op arrives that may change the visibility of entries already
stored (a revocation that retracts concurrent entries, or one that becomes void), the
database's view is rebuilt from the visible entries in the same transaction, and
subscribers receive one ``Change(kind="rebuild")``: re-read what you display (see
:mod:`orbitstore.node.folding`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from orbitstore.core import membership as rules
from orbitstore.core.capabilities import AclOp
from orbitstore.core.capability_log import CapabilityLog
from orbitstore.core.devices import Delegation, Unlink
from orbitstore.core.entry import NONCE_LENGTH, Entry
from orbitstore.core.identity import Identity, b58encode
from orbitstore.core.manifest import parse_address
from orbitstore.core.membership import INVITE_MARK, Right, parse_invite, parse_link
from orbitstore.core.order import next_clock
from orbitstore.errors import UsageError

if TYPE_CHECKING:
    from orbitstore.node.database import Database

__all__ = [
    "INVITE_MARK",
    "Membership",
    "Right",
    "parse_invite",
    "parse_link",
    "principal_of",
    "writers_of",
]


def _caps(db: Database) -> CapabilityLog:
    caps = db.log.capabilities
    if caps is None:
        raise UsageError(f"database {db.name!r} has static access: it has no members")
    return caps


def _no_delegation() -> Delegation | None:
    return None


class Membership:
    """The membership methods of database handles (grant, revoke, invite, redeem, link,
    and who holds what), for the databases of one node.

    ``delegation`` returns this node's delegation when it is a linked device (read at
    each use: pairing may change it while databases are open); None otherwise.
    """

    def __init__(self, delegation: Callable[[], Delegation | None] = _no_delegation) -> None:
        self._delegation = delegation

    @property
    def delegation(self) -> Delegation | None:
        """This node's delegation (docs/identity.md), if it is a linked device."""
        return self._delegation()

    async def grant(
        self, db: Database, did: str, right: str = "write", scope: str | None = None
    ) -> Entry:
        _caps(db)
        return await db.append(AclOp(op="grant", to=did, right=right, scope=scope).to_payload())

    async def revoke(
        self, db: Database, did: str, right: str = "write", scope: str | None = None
    ) -> Entry:
        caps = _caps(db)
        entry = await db.append(AclOp(op="revoke", to=did, right=right, scope=scope).to_payload())
        if db.encrypted and scope is None:
            for reader in sorted({did, *caps.graph.devices_of(did)}):
                await db._encryption._rotate_without(reader)  # later entries under a key it lacks
        return entry

    async def invite(self, db: Database, scope: str | None = None) -> str:
        _caps(db)
        key = Identity(os.urandom(32))
        await db.append(AclOp(op="grant", to=key.id, right="invite", scope=scope).to_payload())
        return f"{db.address}{INVITE_MARK}{b58encode(key.seed)}"

    async def revoke_invite(self, db: Database, link: str) -> Entry:
        address, key = parse_invite(link)
        if parse_address(address) != db.cid:
            raise UsageError("this invite is for another database")
        scope = rules.invite_scope(_caps(db), key)
        return await db.revoke(key.id, "invite", scope)

    async def redeem(self, db: Database, link: str, did: str | None = None) -> Entry:
        caps = _caps(db)
        address, key = parse_invite(link)
        if parse_address(address) != db.cid:
            raise UsageError("this invite is for another database")
        if did is None:
            if db.log.identity is None:
                raise UsageError("this node has no identity to redeem the invite for")
            delegation = self.delegation
            did = db.log.identity.id if delegation is None else delegation.user
        payload = rules.redeem_payload(caps, key, did)
        heads = db.log.head_clocks
        why = caps.check_write(key.id, payload, heads)
        if why is not None:
            raise UsageError(f"the invite cannot be redeemed: {why}")
        entry = Entry.create(
            key,
            db=db.cid,
            clock=next_clock(heads.values()),
            next=list(heads),
            payload=payload,
            nonce=os.urandom(NONCE_LENGTH),
            limits=db.log.limits,
        )
        result = await db.receive_entries([entry])
        if result.rejected:
            raise UsageError(f"the invite was refused: {result.rejected[0].error}")
        return entry

    def can_redeem(self, db: Database, link: str) -> bool:
        _, key = parse_invite(link)
        return rules.can_redeem(db.log.capabilities, key, db.log.heads)

    def members(self, db: Database) -> dict[str, list[Right]]:
        return rules.members(_caps(db))

    def writers(self, db: Database) -> list[dict[str, Any]]:
        return rules.writers(_caps(db))

    def devices(self, db: Database) -> dict[str, list[str]]:
        return {u: sorted(d) for u, d in _caps(db).graph.linked().items()}

    def user_of(self, db: Database, writer: str) -> str:
        caps = _caps(db)
        return caps.graph.acting_as(writer, caps.graph.valid_mask())[0]

    def is_member(self, db: Database, did: str) -> bool:
        return _caps(db).graph.is_member(did)

    async def link_device(self, db: Database, delegation: Delegation | None = None) -> Entry:
        _caps(db)
        delegation = delegation or self.delegation
        if delegation is None:
            raise UsageError("this node is not a linked device (orbitstore devices ...)")
        return (await db._writer.append([AclOp.link(delegation).to_payload()], None))[0]

    async def unlink_device(self, db: Database, statement: Unlink) -> Entry:
        _caps(db)
        entry = await db.append(AclOp.unlink(statement).to_payload())
        if db.encrypted:
            await db._encryption._rotate_without(statement.device)
        return entry

    def access_state(self, db: Database) -> dict[str, Any]:
        return rules.access_state(_caps(db))

    def link_payloads(self, db: Database, payloads: Iterable[Any]) -> Iterable[Any]:
        """``payloads``, preceded by this device's link op when the database needs it:
        this node is a linked device, the database has capabilities access, the
        delegation covers it, its user is admitted there, and no link op of this
        delegation is in the log yet."""
        delegation = self.delegation
        caps = db.log.capabilities
        if delegation is None or caps is None or not delegation.covers(db.cid):
            return payloads
        graph = caps.graph
        past = caps.mask(caps._frontier_of(db.log.heads))
        if graph.acting_as(delegation.device, past)[1]:
            return payloads  # linked already
        payloads = list(payloads)
        op = AclOp.link(delegation)
        if any(isinstance(p, dict) and parse_link(p) is not None for p in payloads):
            return payloads  # the caller links explicitly
        if any(graph.op(i) == op for i in range(len(graph))):
            return payloads  # posted before and no longer linking: posting again changes nothing
        if not graph.admissible(delegation.device, past, op) or graph.check_new_op(
            delegation.device, op, past
        ):
            return payloads  # the user is no member (yet): the write is refused as usual
        return [op.to_payload(), *payloads]


def writers_of(db: Database) -> list[dict[str, Any]]:
    """Who may write ``db``, as users with their devices: ``db.writers()`` under
    capabilities access; a static database's writers, each a user with no devices."""
    if db.log.capabilities is not None:
        return rules.writers(db.log.capabilities)
    write = db.manifest.access.to_manifest().get("write", [])
    return [
        {"user": did, "rights": [{"right": "write", "scope": None}], "devices": []}
        for did in sorted(write)
    ]


def principal_of(db: Database, writer: str) -> dict[str, str]:
    """``{"user": ..., "device": ...}`` for a writer that is (or was) a linked device
    of a user in ``db``; ``{"user": writer}`` for any other writer (sync status names
    who a refused write or identity belongs to)."""
    return rules.principal(db.log.capabilities, writer)
