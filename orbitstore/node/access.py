"""Membership on database handles: grant, revoke, invite, redeem, and who holds what.

Only databases opened with ``access="capabilities"`` have members; on a static database
these methods raise UsageError. The rule they rely on is in
:mod:`orbitstore.core.capabilities` and docs/security-model.md.

Rebuilding: when an ACL op arrives that may change the visibility of entries already
stored (a revocation that retracts concurrent entries, or one that becomes void), the
database's view is rebuilt from the visible entries in the same transaction, and
subscribers receive one ``Change(kind="rebuild")``: re-read what you display.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from orbitstore.core.capabilities import AclOp, parse_acl_payload
from orbitstore.core.capability_log import CapabilityLog
from orbitstore.core.device_links import DeviceState
from orbitstore.core.devices import Delegation, Unlink
from orbitstore.core.entry import NONCE_LENGTH, Entry
from orbitstore.core.identity import Identity, b58decode, b58encode
from orbitstore.core.manifest import parse_address
from orbitstore.core.order import next_clock
from orbitstore.errors import InvalidDataError, InvalidValueError, UsageError
from orbitstore.views.base import Change, SnapshotView, change_for

if TYPE_CHECKING:
    from orbitstore.node.database import Database

INVITE_MARK = "#invite="


@dataclass(frozen=True, slots=True)
class Right:
    """A right held by a member: ``right`` is ``write``, ``admin`` or ``invite``."""

    did: str
    right: str
    scope: str | None


def parse_invite(link: str) -> tuple[str, Identity]:
    """``(address, invite identity)`` of an invite link; InvalidValueError if malformed."""
    if not isinstance(link, str) or INVITE_MARK not in link:
        raise InvalidValueError("an invite link is /orbitstore/<cid>#invite=<secret>")
    address, _, secret = link.partition(INVITE_MARK)
    try:
        parse_address(address)
        seed = b58decode(secret)
    except (InvalidDataError, UsageError) as exc:
        raise InvalidValueError(f"not an invite link: {exc}") from exc
    if len(seed) != 32:
        raise InvalidValueError("an invite secret is 32 bytes")
    return address, Identity(seed)


def _caps(db: Database) -> CapabilityLog:
    caps = db.log.capabilities
    if caps is None:
        raise UsageError(f"database {db.name!r} has static access: it has no members")
    return caps


async def _grant(db: Database, did: str, right: str = "write", scope: str | None = None) -> Entry:
    """Grant ``right`` (``write`` or ``admin``) to ``did``, for keys/ids starting
    with ``scope`` (write only). Needs the admin right."""
    _caps(db)
    return await db.append(AclOp(op="grant", to=did, right=right, scope=scope).to_payload())


async def _revoke(db: Database, did: str, right: str = "write", scope: str | None = None) -> Entry:
    """Revoke ``right`` from ``did``: its entries concurrent with this revocation are
    retracted once it is known. Admin rights are revoked by the owner only."""
    _caps(db)
    entry = await db.append(AclOp(op="revoke", to=did, right=right, scope=scope).to_payload())
    if db.encrypted and scope is None:
        caps = _caps(db)
        for reader in sorted({did, *caps.graph.devices_of(did)}):
            await db._rotate_without(reader)  # later entries under a key it lacks
    return entry


async def _invite(db: Database, scope: str | None = None) -> str:
    """A one-time invite link granting ``write`` (within ``scope``) to whoever
    redeems it first. Revoke it with :meth:`revoke_invite`."""
    _caps(db)
    key = Identity(os.urandom(32))
    await db.append(AclOp(op="grant", to=key.id, right="invite", scope=scope).to_payload())
    return f"{db.address}{INVITE_MARK}{b58encode(key.seed)}"


async def _revoke_invite(db: Database, link: str) -> Entry:
    address, key = parse_invite(link)
    if parse_address(address) != db.cid:
        raise UsageError("this invite is for another database")
    scope = _invite_scope(db, key)
    return await db.revoke(key.id, "invite", scope)


async def _redeem(db: Database, link: str, did: str | None = None) -> Entry:
    """Use an invite: an entry signed by the invite key grants ``write`` to ``did``
    (default: this node). The invite's grant must have reached this node."""
    caps = _caps(db)
    address, key = parse_invite(link)
    if parse_address(address) != db.cid:
        raise UsageError("this invite is for another database")
    if did is None:
        if db.log.identity is None:
            raise UsageError("this node has no identity to redeem the invite for")
        did = db.log.identity.id if db._delegation is None else db._delegation.user
    scope = _invite_scope(db, key)
    payload = AclOp(op="redeem", to=did, right="write", scope=scope).to_payload()
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


def _members(db: Database) -> dict[str, list[Right]]:
    """Who holds which rights now (the owner holds every right)."""
    caps = _caps(db)
    out: dict[str, list[Right]] = {caps.owner: [Right(caps.owner, "owner", None)]}
    for did, right, scope in caps.graph.state():
        out.setdefault(did, []).append(Right(did, right, scope))
    return out


def _writers(db: Database) -> list[dict[str, Any]]:
    """Members as users with their devices: ``[{user, rights, devices: [...]}]``, each
    device ``{device, linked, since, links, unlinks}`` (see :meth:`writers`)."""
    caps = _caps(db)
    graph = caps.graph
    rights: dict[str, list[dict[str, Any]]] = {caps.owner: [{"right": "owner", "scope": None}]}
    for did, right, scope in graph.state():
        if right != "invite":
            rights.setdefault(did, []).append({"right": right, "scope": scope})
    states = graph.device_states()
    out = []
    for user in sorted(set(rights) | set(states)):
        devices = states.get(user, {})
        out.append(
            {
                "user": user,
                "rights": rights.get(user, []),
                "devices": [_device_json(d, state) for d, state in sorted(devices.items())],
            }
        )
    return out


def writers_of(db: Database) -> list[dict[str, Any]]:
    """Who may write ``db``, as users with their devices: ``db.writers()`` under
    capabilities access; a static database's writers, each a user with no devices."""
    if db.log.capabilities is not None:
        return _writers(db)
    write = db.manifest.access.to_manifest().get("write", [])
    return [
        {"user": did, "rights": [{"right": "write", "scope": None}], "devices": []}
        for did in sorted(write)
    ]


def principal_of(db: Database, writer: str) -> dict[str, str]:
    """``{"user": ..., "device": ...}`` for a writer that is (or was) a linked device
    of a user in ``db``; ``{"user": writer}`` for any other writer (sync status names
    who a refused write or identity belongs to)."""
    caps = db.log.capabilities
    if caps is not None:
        for user, devices in caps.graph.device_states().items():
            if writer in devices:
                return {"user": user, "device": writer}
    return {"user": writer}


def _device_json(device: str, state: DeviceState) -> dict[str, Any]:
    ops = sorted(map(str, state.ops))
    return {
        "device": device,
        "linked": state.linked,
        "since": state.since,
        "links": ops if state.linked else [],
        "unlinks": [] if state.linked else ops,
    }


def _link_payloads(db: Database, payloads: Iterable[Any]) -> Iterable[Any]:
    """``payloads``, preceded by this device's link op when the database needs it: this
    node is a linked device, the database has capabilities access, the delegation covers
    it, its user is admitted there, and no link op of this delegation is in the log yet."""
    delegation = db._delegation
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


def parse_link(payload: dict[str, Any]) -> AclOp | None:
    acl = payload.get("acl")
    if not isinstance(acl, dict) or acl.get("op") != "link":
        return None
    try:
        return parse_acl_payload(payload)
    except InvalidDataError:
        return None


async def _unlink_device(db: Database, statement: Unlink) -> Entry:
    """Post an unlinking signed by the user's root key."""
    _caps(db)
    entry = await db.append(AclOp.unlink(statement).to_payload())
    if db.encrypted:
        await db._rotate_without(statement.device)
    return entry


def _access_state(db: Database) -> dict[str, Any]:
    """A JSON-friendly description: owner, rights with the grants giving them,
    and every ACL op with whether it is valid and, if not, why."""
    caps = _caps(db)
    graph = caps.graph
    ops = []
    for idx in range(len(graph)):
        cid = graph.cid_of(idx)
        op = graph.op(idx)
        ops.append(
            {
                "cid": str(cid),
                "op": op.op,
                "to": op.to,
                "right": op.right,
                "scope": op.scope,
                **({} if op.user is None else {"user": op.user}),
                "valid": graph.is_valid(cid),
                "reason": graph.reason(cid),
            }
        )
    return {
        "owner": caps.owner,
        "rights": [
            {"did": d, "right": r, "scope": s, "grants": sorted(map(str, g))}
            for (d, r, s), g in graph.state().items()
        ],
        "ops": ops,
        "devices": {u: sorted(d) for u, d in graph.linked().items()},
    }


def visible_changes(db: Database, entries: list[Entry], *, local: bool) -> list[Change] | None:
    """Under capabilities: the changes of applying ``entries`` (rebuilding the view
    if access changed). None for a static database (the caller applies as usual)."""
    caps = db.log.capabilities
    if caps is None:
        return None
    acl = [
        change_for(e, "access", key=str(e.cid), value=e.payload, local=local)
        for e in entries
        if caps.is_acl(e.cid)
    ]
    if caps.take_change():
        _rebuild_view(db, caps)
        if not entries:  # the log changed outside a database write: nothing to name
            return acl
        trigger = next((e for e in reversed(entries) if caps.is_acl(e.cid)), entries[-1])
        return [*acl, change_for(trigger, "rebuild", local=local)]
    visible = [e for e in entries if caps.visible(e)]
    if db._view is None:
        return [
            *acl,
            *(change_for(e, "append", key=e.cid, value=e.payload, local=local) for e in visible),
        ]
    return [*acl, *db._view.apply(visible, local=local)]


def _rebuild_view(db: Database, caps: CapabilityLog) -> None:
    """Rebuild the view from the visible entries (inside the caller's transaction)."""
    from orbitstore.storage.memory import MemoryStore
    from orbitstore.storage.sqlite import SqliteStore
    from orbitstore.storage.views import reset_view_rows

    if db._view is None or db._view_factory is None:
        return
    store = db._store
    if isinstance(store, SqliteStore):
        reset_view_rows(store, store.log_store(db.cid).log_id)
    elif isinstance(store, MemoryStore):
        store.view_states.pop((db.manifest.type, db.cid), None)
    view = db._view_factory(store, db.cid, db.manifest)
    db._view = view
    db._snapshots = view if isinstance(view, SnapshotView) else None
    log_store = store.log_store(db.cid)
    batch: list[Entry] = []
    for _, cid, block in log_store.iter_since(0):
        entry = Entry.from_trusted_block(cid, block)
        if caps.visible(entry):
            batch.append(entry)
        if len(batch) >= 1000:
            view.apply(db.view_entries(batch), local=False)
            batch = []
    if batch:
        view.apply(db.view_entries(batch), local=False)
    if isinstance(view, SnapshotView):  # its stored snapshot holds retracted updates
        view.save(log_store.last_seq(), force=True)


class AccessMethods:
    """Membership methods, mixed into :class:`~orbitstore.node.database.Database`."""

    #: This node's delegation (set by the node when it is a linked device).
    _delegation: Delegation | None = None

    def _db(self) -> Database:
        return cast("Database", self)

    async def grant(self, did: str, right: str = "write", scope: str | None = None) -> Entry:
        """Grant ``right`` (``write`` or ``admin``) to ``did``, for keys/ids starting
        with ``scope`` (write only). Needs the admin right."""
        return await _grant(self._db(), did, right, scope)

    async def revoke(self, did: str, right: str = "write", scope: str | None = None) -> Entry:
        """Revoke ``right`` from ``did``: its entries concurrent with this revocation are
        retracted once it is known. Admin rights are revoked by the owner only."""
        return await _revoke(self._db(), did, right, scope)

    async def invite(self, scope: str | None = None) -> str:
        """A one-time invite link granting ``write`` (within ``scope``) to whoever
        redeems it first (:meth:`redeem`, or ``node.redeem``)."""
        return await _invite(self._db(), scope)

    async def revoke_invite(self, link: str) -> Entry:
        """Revoke an unused invite: a redeem not after this revocation grants nothing."""
        return await _revoke_invite(self._db(), link)

    async def redeem(self, link: str, did: str | None = None) -> Entry:
        """Use an invite: an entry signed by the invite key grants ``write`` to ``did``
        (default: this node). The invite's grant must have reached this node."""
        return await _redeem(self._db(), link, did)

    def can_redeem(self, link: str) -> bool:
        """Whether this node knows the invite's grant, unused and unrevoked."""
        db = self._db()
        _, key = parse_invite(link)
        caps = db.log.capabilities
        if caps is None or not any(d == key.id and r == "invite" for d, r, _ in caps.graph.state()):
            return False
        return caps.check_write(key.id, _redeem_probe(key, db), db.log.heads) is None

    def members(self) -> dict[str, list[Right]]:
        """Who holds which rights now (the owner holds every right)."""
        return _members(self._db())

    def writers(self) -> list[dict[str, Any]]:
        """Members as users with their devices: ``[{user, rights, devices}]``, each
        device ``{device, linked, since, links, unlinks}`` — linked now (through the
        ``links`` ops) or unlinked (by the ``unlinks`` ops), ``since`` the root-signed
        time in ms of its delegation or unlinking (JSON-friendly)."""
        return _writers(self._db())

    def devices(self) -> dict[str, list[str]]:
        """``{user: [device, ...]}``: the devices linked now, by user."""
        return {u: sorted(d) for u, d in _caps(self._db()).graph.linked().items()}

    def user_of(self, writer: str) -> str:
        """The user ``writer`` writes for now (itself if it is no linked device)."""
        caps = _caps(self._db())
        return caps.graph.acting_as(writer, caps.graph.valid_mask())[0]

    def is_member(self, did: str) -> bool:
        """Whether ``did`` holds a right now, directly or as a linked device of a user
        who does (the owner and its devices included). For read control."""
        return _caps(self._db()).graph.is_member(did)

    async def link_device(self, delegation: Delegation | None = None) -> Entry:
        """Post a link op for ``delegation`` (default: this node's own). Only the device
        it names can post it; writes post this node's automatically when needed."""
        db = self._db()
        _caps(db)
        delegation = delegation or db._delegation
        if delegation is None:
            raise UsageError("this node is not a linked device (orbitstore devices ...)")
        return (await db._append([AclOp.link(delegation).to_payload()], None))[0]

    async def unlink_device(self, statement: Unlink) -> Entry:
        """Post an unlinking (signed by the user's root key): the device's entries not
        in its past are excluded, as after a revocation; the user and its other
        devices keep their rights."""
        return await _unlink_device(self._db(), statement)

    def access_state(self) -> dict[str, Any]:
        """Owner, rights with the grants that give them, and every ACL op with whether
        it is valid and, if not, why (JSON-friendly)."""
        return _access_state(self._db())


def _redeem_probe(key: Identity, db: Database) -> dict[str, Any]:
    scope = _invite_scope(db, key)
    return AclOp(op="redeem", to=key.id, right="write", scope=scope).to_payload()


def _invite_scope(db: Database, key: Identity) -> str | None:
    for did, right, scope in _caps(db).graph.state():
        if did == key.id and right == "invite":
            return scope
    raise UsageError(
        "this node does not know the invite (it was revoked or used, or has not synced yet)"
    )
