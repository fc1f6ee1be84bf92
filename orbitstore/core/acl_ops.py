"""The access operations of a capabilities log: their payload shapes, parsed strictly.

An *ACL op* is an entry whose payload is exactly one of::

    {"acl": {"op": "grant" | "revoke" | "redeem", "to": <did>, "right": ..., "scope": ...}}
    {"acl": {"op": "link",   "delegation": <a Delegation map>}}
    {"acl": {"op": "unlink", "unlink":     <an Unlink map>}}

Any other payload is data, and a payload with the ``"acl"`` key that is not exactly one
of these shapes is invalid (so an ACL op can never be smuggled in as data, nor data
mistaken for one). ``link`` and ``unlink`` carry a statement signed by a user's root key
(:mod:`orbitstore.core.devices`); parsing checks that signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from orbitstore.core.devices import Delegation, Unlink
from orbitstore.core.identity import public_key_from_did
from orbitstore.errors import (
    InvalidAclOpError,
    InvalidDataError,
    InvalidDelegationError,
    InvalidValueError,
)

ACL_KEY: Final = "acl"
OPS: Final = frozenset({"grant", "revoke", "redeem", "link", "unlink"})
RIGHTS: Final = frozenset({"write", "admin", "invite", "device", "replica"})
# Rights that take no scope: they are about the whole database.
UNSCOPED: Final = frozenset({"admin", "replica"})
DEVICE_OPS: Final = frozenset({"link", "unlink"})
MAX_SCOPE: Final = 256

RightKey = tuple[str, str, "str | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AclOp:
    """One access operation (the ``acl`` part of an ACL entry's payload).

    For ``link`` / ``unlink``: ``to`` is the device, ``right`` is ``"device"``, ``user``
    the user and ``statement`` the signed :class:`Delegation` / :class:`Unlink`
    (build them with :meth:`link` / :meth:`unlink`)."""

    op: str
    to: str
    right: str
    scope: str | None = None
    user: str | None = None
    statement: Delegation | Unlink | None = None

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
        if self.op in DEVICE_OPS:
            kind = Delegation if self.op == "link" else Unlink
            st = self.statement
            if (
                not isinstance(st, kind)
                or self.right != "device"
                or self.scope is not None
                or st.device != self.to
                or st.user != self.user
            ):
                raise InvalidValueError(f"build a {self.op} op with AclOp.{self.op}(statement)")
            return
        if self.right == "device" or self.user is not None or self.statement is not None:
            raise InvalidValueError("devices are linked with a link op, not granted")
        if self.scope is not None and (
            not isinstance(self.scope, str) or not 0 < len(self.scope) <= MAX_SCOPE
        ):
            raise InvalidValueError(f"a scope is a key prefix of 1-{MAX_SCOPE} characters")
        if self.right in UNSCOPED and self.scope is not None:
            raise InvalidValueError(f"the {self.right} right is not scoped")
        if self.op == "redeem" and self.right != "write":
            raise InvalidValueError("an invite redeems the write right")

    @classmethod
    def link(cls, delegation: Delegation) -> AclOp:
        """The op that brings ``delegation`` into a log (its device must post it)."""
        return cls(
            op="link",
            to=delegation.device,
            right="device",
            user=delegation.user,
            statement=delegation,
        )

    @classmethod
    def unlink(cls, unlink: Unlink) -> AclOp:
        """The op that brings an unlinking into a log (anyone admitted may post it)."""
        return cls(
            op="unlink", to=unlink.device, right="device", user=unlink.user, statement=unlink
        )

    @property
    def key(self) -> RightKey:
        return (self.to, self.right, self.scope)

    @property
    def delegation(self) -> Delegation:
        assert isinstance(self.statement, Delegation)
        return self.statement

    def to_payload(self) -> dict[str, Any]:
        if self.op == "link":
            return {ACL_KEY: {"op": "link", "delegation": self.delegation.to_value()}}
        if self.op == "unlink":
            assert isinstance(self.statement, Unlink)
            return {ACL_KEY: {"op": "unlink", "unlink": self.statement.to_value()}}
        return {ACL_KEY: {"op": self.op, "to": self.to, "right": self.right, "scope": self.scope}}


def is_acl_payload(payload: object) -> bool:
    """Whether a payload claims to be an ACL op (a map whose keys include ``acl``)."""
    return isinstance(payload, dict) and ACL_KEY in payload


def parse_acl_payload(payload: object) -> AclOp | None:
    """The ACL op of a payload; None for data; InvalidAclOpError if it claims to be one
    (it has the ``acl`` key) but is not exactly one of the shapes."""
    if not is_acl_payload(payload):
        return None
    assert isinstance(payload, dict)
    body = payload[ACL_KEY]
    if len(payload) != 1 or not isinstance(body, dict):
        raise InvalidAclOpError("an ACL payload is exactly {'acl': {op, ...}}")
    kind = body.get("op")
    if kind in DEVICE_OPS:
        field = "delegation" if kind == "link" else "unlink"
        if set(body) != {"op", field}:
            raise InvalidAclOpError(f"a {kind} op has exactly the fields op and {field}")
        try:
            if kind == "link":
                return AclOp.link(Delegation.from_value(body[field]))
            return AclOp.unlink(Unlink.from_value(body[field]))
        except (InvalidDelegationError, InvalidValueError) as exc:
            raise InvalidAclOpError(f"invalid {kind} op: {exc}") from exc
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
