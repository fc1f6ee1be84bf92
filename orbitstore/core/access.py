"""Access control: who may write to a database.

An access controller answers one question about an entry: may its writer write it?
Controllers are values described in the manifest, so every replica evaluates the same
rule. ``static`` is a fixed list of writer ids (``did:key`` strings) or ``"*"`` for
anyone; the list is part of the manifest, and so part of the database address.
``capabilities`` names an owner; the owner and the admins it appoints grant and revoke
rights with entries in the log itself (:mod:`orbitstore.core.capabilities`), so
``can_write`` says only who may *try*: the op-log decides each entry in its causal past.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from orbitstore.core import codec
from orbitstore.core.identity import public_key_from_did
from orbitstore.errors import InvalidDataError, InvalidValueError

ANYONE = "*"


class AccessController(Protocol):
    def can_write(self, writer: str) -> bool:
        """Whether ``writer`` may append entries."""
        ...

    def to_manifest(self) -> dict[str, Any]:
        """The description stored in the manifest."""
        ...


@dataclass(frozen=True, slots=True)
class StaticAccess:
    """A fixed set of writers, or everyone (``"*"``)."""

    writers: frozenset[str]

    @classmethod
    def of(cls, writers: Iterable[str]) -> StaticAccess:
        ws = frozenset(writers)
        if not ws:
            raise InvalidValueError("a static access list needs at least one writer (or '*')")
        for w in ws:
            if w != ANYONE:
                try:
                    public_key_from_did(w)
                except InvalidDataError as exc:
                    raise InvalidValueError(f"not a writer id: {codec.describe(w)}") from exc
        return cls(ws)

    def can_write(self, writer: str) -> bool:
        return ANYONE in self.writers or writer in self.writers

    def to_manifest(self) -> dict[str, Any]:
        return {"type": "static", "write": sorted(self.writers)}


@dataclass(frozen=True, slots=True)
class CapabilitiesAccess:
    """Rights kept in the log: ``owner`` holds every right; see core/capabilities."""

    owner: str

    @classmethod
    def of(cls, owner: str) -> CapabilitiesAccess:
        try:
            public_key_from_did(owner)
        except (InvalidDataError, TypeError) as exc:
            raise InvalidValueError(f"not an owner id: {owner!r:.80}") from exc
        return cls(owner)

    def can_write(self, writer: str) -> bool:
        return True  # decided per entry, in its causal past, by the op-log

    def to_manifest(self) -> dict[str, Any]:
        return {"type": "capabilities", "owner": self.owner}


def access_from_manifest(desc: object) -> AccessController:
    """Rebuild the controller a manifest describes; InvalidDataError if it is malformed."""
    if isinstance(desc, dict) and desc.get("type") == "capabilities":
        owner = desc.get("owner")
        if set(desc) != {"type", "owner"} or not isinstance(owner, str):
            raise InvalidDataError("capabilities access is {type, owner} with an owner did")
        try:
            return CapabilitiesAccess.of(owner)
        except InvalidValueError as exc:
            raise InvalidDataError(str(exc)) from exc
    if not isinstance(desc, dict) or desc.get("type") != "static":
        raise InvalidDataError(f"unknown access controller {codec.describe(desc)}")
    write = desc.get("write")
    if not isinstance(write, list) or not all(isinstance(w, str) for w in write):
        raise InvalidDataError("static access 'write' must be a list of writer ids")
    try:
        return StaticAccess.of(write)
    except InvalidValueError as exc:
        raise InvalidDataError(str(exc)) from exc
