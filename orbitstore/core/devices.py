"""Users and their devices: delegations and unlinkings, signed by the user's root key.

How it works
============

A *user* is an Ed25519 key like any writer (its id is a ``did:key``); so is each of its
*devices*. Each device generates its own key and never shares it. The user's root key
signs two kinds of statement, both DAG-CBOR maps with a CID of their own:

- a :class:`Delegation` — "``device`` acts for ``user``": ``{type, user, device,
  issued, expires, purpose, sig}``, where ``issued`` and ``expires`` are milliseconds
  since the Unix epoch (``expires`` may be null) and ``purpose`` is ``"any"`` (every
  database) or one database address ``/orbitstore/<cid>``;
- an :class:`Unlink` — "``device`` no longer acts for ``user``": ``{type, user,
  device, issued, sig}``.

``sig`` is the root key's Ed25519 signature over :data:`STATEMENT_DOMAIN` followed by
the canonical encoding of the map without ``sig`` (the domain keeps a statement's
signature from ever being taken for an entry's, and ``type`` one kind for the other).

The root signs once per device; the statements are then carried into each database's
log inside access ops (:mod:`orbitstore.core.capabilities`, ops ``link`` and
``unlink``) by whichever device posts them — so the root key can stay offline except
while linking or unlinking. Statements are pure values: no clock, no randomness here;
callers pass ``issued``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.identity import Identity, public_key_from_did, verify
from orbitstore.core.manifest import parse_address
from orbitstore.errors import (
    BadSignatureError,
    DecodeError,
    InvalidDataError,
    InvalidDelegationError,
    InvalidValueError,
    UsageError,
)

DELEGATION: Final = "orbitstore/delegation"
UNLINK: Final = "orbitstore/unlink"
ANY_DATABASE: Final = "any"
STATEMENT_DOMAIN: Final = b"orbitstore statement v1\x00"
_MAX_TIME: Final = 2**53
_DELEGATION_FIELDS: Final = frozenset(
    {"type", "user", "device", "issued", "expires", "purpose", "sig"}
)
_UNLINK_FIELDS: Final = frozenset({"type", "user", "device", "issued", "sig"})


def _check_did(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidDelegationError(f"a statement's {what} is a did:key string")
    try:
        public_key_from_did(value)
    except InvalidDataError as exc:
        raise InvalidDelegationError(f"a statement's {what} is not a did:key: {exc}") from exc
    return value


def _check_time(value: object, what: str, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if type(value) is not int or not 0 <= value < _MAX_TIME:
        raise InvalidDelegationError(f"a statement's {what} is milliseconds since the epoch")
    return value


def _check_purpose(value: object) -> str:
    if value == ANY_DATABASE:
        return ANY_DATABASE
    if not isinstance(value, str) or len(value) > 128:
        raise InvalidDelegationError("a delegation's purpose is 'any' or a database address")
    try:
        parse_address(value)
    except (InvalidDataError, UsageError) as exc:
        raise InvalidDelegationError(
            f"a delegation's purpose is 'any' or a database address: {exc}"
        ) from exc
    return value


def _signed_bytes(body: dict[str, Any]) -> bytes:
    return STATEMENT_DOMAIN + codec.encode(body)


def _verify(body: dict[str, Any], sig: object) -> None:
    if not isinstance(sig, bytes):
        raise InvalidDelegationError("a statement's sig is 64 bytes")
    try:
        verify(body["user"], sig, _signed_bytes(body))
    except BadSignatureError as exc:
        raise InvalidDelegationError(
            f"the statement is not signed by its user's key ({body['user'][:24]}...)"
        ) from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class Delegation:
    """``device`` acts for ``user`` (signed by the user's root key). Build with
    :meth:`create` or :meth:`from_value`; either way the signature has been checked."""

    user: str
    device: str
    issued: int
    expires: int | None
    purpose: str
    sig: bytes

    @classmethod
    def create(
        cls,
        root: Identity,
        device: str,
        *,
        issued: int,
        expires: int | None = None,
        purpose: str = ANY_DATABASE,
    ) -> Delegation:
        """Sign a delegation of ``root``'s user to ``device``."""
        try:
            _check_did(device, "device")
            _check_time(issued, "issued")
            _check_time(expires, "expires", optional=True)
            _check_purpose(purpose)
        except InvalidDelegationError as exc:
            raise InvalidValueError(str(exc)) from exc
        if device == root.id:
            raise InvalidValueError("a user's root key is not one of its devices")
        if expires is not None and expires <= issued:
            raise InvalidValueError("a delegation expires after it is issued")
        body = cls._body(root.id, device, issued, expires, purpose)
        return cls(
            user=root.id,
            device=device,
            issued=issued,
            expires=expires,
            purpose=purpose,
            sig=root.sign(_signed_bytes(body)),
        )

    @staticmethod
    def _body(
        user: str, device: str, issued: int, expires: int | None, purpose: str
    ) -> dict[str, Any]:
        return {
            "type": DELEGATION,
            "user": user,
            "device": device,
            "issued": issued,
            "expires": expires,
            "purpose": purpose,
        }

    @classmethod
    def from_value(cls, value: object) -> Delegation:
        """The delegation a decoded map holds; InvalidDelegationError unless it is
        exactly the shape and its signature verifies."""
        if not isinstance(value, dict) or set(value) != _DELEGATION_FIELDS:
            raise InvalidDelegationError(
                "a delegation is exactly {type, user, device, issued, expires, purpose, sig}"
            )
        if value["type"] != DELEGATION:
            raise InvalidDelegationError(f"a delegation's type is {DELEGATION!r}")
        user = _check_did(value["user"], "user")
        device = _check_did(value["device"], "device")
        if user == device:
            raise InvalidDelegationError("a user's root key is not one of its devices")
        issued = _check_time(value["issued"], "issued")
        assert issued is not None
        expires = _check_time(value["expires"], "expires", optional=True)
        purpose = _check_purpose(value["purpose"])
        body = cls._body(user, device, issued, expires, purpose)
        _verify(body, value["sig"])
        return cls(
            user=user,
            device=device,
            issued=issued,
            expires=expires,
            purpose=purpose,
            sig=value["sig"],
        )

    def to_value(self) -> dict[str, Any]:
        return {
            **self._body(self.user, self.device, self.issued, self.expires, self.purpose),
            "sig": self.sig,
        }

    def to_block(self) -> tuple[Cid, bytes]:
        block = codec.encode(self.to_value())
        return Cid.for_block(block), block

    @property
    def cid(self) -> Cid:
        return self.to_block()[0]

    def covers(self, db: Cid) -> bool:
        """Whether this delegation is good for the database ``db`` (its manifest CID)."""
        return self.purpose == ANY_DATABASE or parse_address(self.purpose) == db

    def valid_at(self, ts: int | None) -> bool:
        """Whether an entry stamped ``ts`` (ms; None: unstamped) is within the expiry.
        An unstamped entry of a device whose delegation expires is outside it."""
        return self.expires is None or (ts is not None and ts < self.expires)

    def to_text(self) -> str:
        """The delegation as base58btc text (to copy by hand; see :meth:`from_text`)."""
        from orbitstore.core.identity import b58encode

        return "odl" + b58encode(self.to_block()[1])

    @classmethod
    def from_text(cls, text: str) -> Delegation:
        """Parse :meth:`to_text`'s form; InvalidDelegationError if it is not one."""
        from orbitstore.core.identity import b58decode

        if not isinstance(text, str) or not text.startswith("odl") or len(text) > 2000:
            raise InvalidDelegationError("a delegation text starts with 'odl'")
        try:
            value = codec.decode(b58decode(text[3:]))
        except (ValueError, DecodeError) as exc:
            raise InvalidDelegationError(f"not a delegation: {exc}") from exc
        return cls.from_value(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Unlink:
    """``device`` no longer acts for ``user`` (signed by the user's root key)."""

    user: str
    device: str
    issued: int
    sig: bytes

    @classmethod
    def create(cls, root: Identity, device: str, *, issued: int) -> Unlink:
        try:
            _check_did(device, "device")
            _check_time(issued, "issued")
        except InvalidDelegationError as exc:
            raise InvalidValueError(str(exc)) from exc
        body = cls._body(root.id, device, issued)
        return cls(user=root.id, device=device, issued=issued, sig=root.sign(_signed_bytes(body)))

    @staticmethod
    def _body(user: str, device: str, issued: int) -> dict[str, Any]:
        return {"type": UNLINK, "user": user, "device": device, "issued": issued}

    @classmethod
    def from_value(cls, value: object) -> Unlink:
        if not isinstance(value, dict) or set(value) != _UNLINK_FIELDS:
            raise InvalidDelegationError("an unlink is exactly {type, user, device, issued, sig}")
        if value["type"] != UNLINK:
            raise InvalidDelegationError(f"an unlink's type is {UNLINK!r}")
        user = _check_did(value["user"], "user")
        device = _check_did(value["device"], "device")
        issued = _check_time(value["issued"], "issued")
        assert issued is not None
        body = cls._body(user, device, issued)
        _verify(body, value["sig"])
        return cls(user=user, device=device, issued=issued, sig=value["sig"])

    def to_value(self) -> dict[str, Any]:
        return {**self._body(self.user, self.device, self.issued), "sig": self.sig}

    def to_block(self) -> tuple[Cid, bytes]:
        block = codec.encode(self.to_value())
        return Cid.for_block(block), block
