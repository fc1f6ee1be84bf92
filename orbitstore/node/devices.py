"""This node as a device of a user: its delegation, the user's root key if it holds it.

How it works
============

A node always signs with its own key (its *device* key, ``node.id``). It may also hold:

- a :class:`~orbitstore.core.devices.Delegation` naming it as a device of a user
  (``<home>/device.json``, not secret: it is posted in the clear into every database
  the device writes to);
- the user's root key (``user`` in the keystore), on the device that created the user
  or where the user keeps it; the root signs delegations (:meth:`DeviceState.delegate`)
  and unlinkings (:meth:`DeviceState.unlink_statement`), nothing else.

``node.user_id`` is the user's id when the node is a linked device, else the device id:
new capabilities databases are owned by it, invites are redeemed for it, and the CLI
and API show writers as users with their devices. See docs/identity.md.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orbitstore.core.devices import ANY_DATABASE, Delegation, Unlink
from orbitstore.core.identity import SEED_LENGTH, Identity
from orbitstore.errors import InvalidDataError, KeystoreError, UsageError
from orbitstore.storage.keystore import Keystore

DEVICE_FILE = "device.json"
ROOT_KEY_NAME = "user"
_VERSION = 1


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class DeviceState:
    """The user side of one node (see the module docstring)."""

    device: Identity
    delegation: Delegation | None = None
    root: Identity | None = None
    home: Path | None = None
    keystore: Keystore | None = None
    issued: dict[str, Delegation] = field(default_factory=dict)
    """Delegations this node's root signed, by device (a record for ``devices ls``)."""
    unlinked: dict[str, Unlink] = field(default_factory=dict)
    """Unlinkings this node's root signed, by device."""

    @classmethod
    def load(cls, device: Identity, home: Path | None, keystore: Keystore | None) -> DeviceState:
        """Read ``<home>/device.json`` and the root key (KeystoreError if malformed)."""
        state = cls(device=device, home=home, keystore=keystore)
        if keystore is not None:
            state.root = keystore.get(ROOT_KEY_NAME)
        if home is None:
            return state
        path = home / DEVICE_FILE
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            return state
        except OSError as exc:
            raise KeystoreError(f"cannot read {path}: {exc}") from exc
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict) or doc.get("version") != _VERSION:
                raise ValueError("not a version-1 device file")
            if doc.get("delegation") is not None:
                state.delegation = Delegation.from_text(doc["delegation"])
            state.issued = {d.device: d for d in map(Delegation.from_text, doc.get("issued", []))}
            state.unlinked = {
                u.device: u for u in (Unlink.from_value(_unhex(v)) for v in doc.get("unlinked", []))
            }
        except (ValueError, TypeError, InvalidDataError) as exc:
            raise KeystoreError(f"{path} is malformed: {exc}") from exc
        if state.delegation is not None and state.delegation.device != device.id:
            raise KeystoreError(f"{path} delegates to another device than this node's key")
        return state

    def _save(self) -> None:
        if self.home is None:
            return
        doc: dict[str, Any] = {
            "version": _VERSION,
            "delegation": None if self.delegation is None else self.delegation.to_text(),
            "issued": [d.to_text() for d in self.issued.values()],
            "unlinked": [_hex(u.to_value()) for u in self.unlinked.values()],
        }
        self.home.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=DEVICE_FILE + ".", dir=self.home)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.home / DEVICE_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- who ---------------------------------------------------------------------------

    @property
    def user_id(self) -> str:
        """The user this node writes for (its own id if it is no linked device)."""
        return self.device.id if self.delegation is None else self.delegation.user

    def require_root(self) -> Identity:
        if self.root is None:
            raise UsageError(
                "this node does not hold the user's root key: link or unlink devices from"
                " the device that holds it (see docs/identity.md)"
            )
        return self.root

    # -- the root's acts ----------------------------------------------------------------

    def create_user(self) -> str:
        """Make a new user whose first device is this node: a root key (kept in the
        keystore as ``user``) and a delegation to this device. Returns the user id."""
        if self.delegation is not None:
            raise UsageError(f"this node is already a device of {self.delegation.user}")
        root = self.root
        if root is None:
            if self.keystore is not None:
                root = self.keystore.get_or_create(ROOT_KEY_NAME)
            else:
                root = Identity(os.urandom(SEED_LENGTH))
            self.root = root
        self.accept(self.delegate(self.device.id))
        return root.id

    def delegate(
        self, device: str, *, expires: int | None = None, purpose: str = ANY_DATABASE
    ) -> Delegation:
        """Sign a delegation of the user to ``device`` (needs the root key)."""
        root = self.require_root()
        delegation = Delegation.create(
            root, device, issued=now_ms(), expires=expires, purpose=purpose
        )
        self.issued[device] = delegation
        self.unlinked.pop(device, None)
        self._save()
        return delegation

    def unlink_statement(self, device: str) -> Unlink:
        """Sign the unlinking of ``device`` (needs the root key)."""
        root = self.require_root()
        if device == self.device.id:
            raise UsageError("this node cannot unlink itself here: unlink it from another device")
        issued = max(
            [now_ms(), *(d.issued + 1 for d in self.issued.values() if d.device == device)]
        )
        unlink = Unlink.create(root, device, issued=issued)
        self.unlinked[device] = unlink
        self._save()
        return unlink

    # -- this device --------------------------------------------------------------------

    def accept(self, delegation: Delegation) -> None:
        """Take ``delegation`` as this node's (it must name this node's key)."""
        if delegation.device != self.device.id:
            raise UsageError(
                f"the delegation is for {delegation.device}, not this node ({self.device.id})"
            )
        if self.delegation is not None and self.delegation.user != delegation.user:
            raise UsageError(f"this node is already a device of {self.delegation.user}")
        self.delegation = delegation
        self._save()

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description of this node as a device."""
        d = self.delegation
        return {
            "device": self.device.id,
            "user": self.user_id,
            "linked": d is not None,
            "holds_root": self.root is not None,
            "issued": None if d is None else d.issued,
            "expires": None if d is None else d.expires,
            "purpose": None if d is None else d.purpose,
            "devices": sorted(set(self.issued) - set(self.unlinked)),
            "unlinked": sorted(self.unlinked),
        }


def _hex(value: dict[str, Any]) -> str:
    from orbitstore.core import codec

    return codec.encode(value).hex()


def _unhex(text: object) -> object:
    from orbitstore.core import codec

    if not isinstance(text, str):
        raise ValueError("an unlinking is hex text")
    return codec.decode(bytes.fromhex(text))
