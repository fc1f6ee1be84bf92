"""Who holds what in a capabilities log, as values: members, writers, invites, links.

Pure reads of a :class:`~orbitstore.core.capability_log.CapabilityLog` (no I/O): the
database handle's membership methods (:mod:`orbitstore.node.access`) answer with these,
and build the ACL payloads they post from them. The rule itself is in
:mod:`orbitstore.core.capabilities` and docs/security-model.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orbitstore.core.capabilities import AclOp, parse_acl_payload
from orbitstore.core.capability_log import CapabilityLog
from orbitstore.core.cid import Cid
from orbitstore.core.device_links import DeviceState
from orbitstore.core.identity import Identity, b58decode
from orbitstore.core.manifest import parse_address
from orbitstore.errors import InvalidDataError, InvalidValueError, UsageError

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


def members(caps: CapabilityLog) -> dict[str, list[Right]]:
    """Who holds which rights now (the owner holds every right)."""
    out: dict[str, list[Right]] = {caps.owner: [Right(caps.owner, "owner", None)]}
    for did, right, scope in caps.graph.state():
        out.setdefault(did, []).append(Right(did, right, scope))
    return out


def writers(caps: CapabilityLog) -> list[dict[str, Any]]:
    """Members as users with their devices: ``[{user, rights, devices: [...]}]``, each
    device ``{device, linked, since, links, unlinks}`` (see ``Database.writers``)."""
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
                "devices": [device_json(d, state) for d, state in sorted(devices.items())],
            }
        )
    return out


def principal(caps: CapabilityLog | None, writer: str) -> dict[str, str]:
    """``{"user": ..., "device": ...}`` for a writer that is (or was) a linked device
    of a user; ``{"user": writer}`` for any other writer."""
    if caps is not None:
        for user, devices in caps.graph.device_states().items():
            if writer in devices:
                return {"user": user, "device": writer}
    return {"user": writer}


def device_json(device: str, state: DeviceState) -> dict[str, Any]:
    ops = sorted(map(str, state.ops))
    return {
        "device": device,
        "linked": state.linked,
        "since": state.since,
        "links": ops if state.linked else [],
        "unlinks": [] if state.linked else ops,
    }


def parse_link(payload: dict[str, Any]) -> AclOp | None:
    """The link op ``payload`` is, if it is one (a malformed one is not)."""
    acl = payload.get("acl")
    if not isinstance(acl, dict) or acl.get("op") != "link":
        return None
    try:
        return parse_acl_payload(payload)
    except InvalidDataError:
        return None


def access_state(caps: CapabilityLog) -> dict[str, Any]:
    """A JSON-friendly description: owner, rights with the grants giving them,
    and every ACL op with whether it is valid and, if not, why."""
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


def invite_scope(caps: CapabilityLog, key: Identity) -> str | None:
    """The scope of the invite ``key`` is for; UsageError if this log does not hold it."""
    for did, right, scope in caps.graph.state():
        if did == key.id and right == "invite":
            return scope
    raise UsageError(
        "this node does not know the invite (it was revoked or used, or has not synced yet)"
    )


def redeem_payload(caps: CapabilityLog, key: Identity, did: str) -> dict[str, Any]:
    """The payload of a redeem of invite ``key`` granting ``write`` to ``did``."""
    return AclOp(op="redeem", to=did, right="write", scope=invite_scope(caps, key)).to_payload()


def can_redeem(caps: CapabilityLog | None, key: Identity, heads: Iterable[Cid]) -> bool:
    """Whether ``caps`` holds the invite ``key``'s grant, unused and unrevoked, at
    ``heads``."""
    if caps is None or not any(d == key.id and r == "invite" for d, r, _ in caps.graph.state()):
        return False
    return caps.check_write(key.id, redeem_payload(caps, key, key.id), heads) is None
