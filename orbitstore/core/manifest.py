"""Database manifests and addresses.

A manifest is the block that defines a database::

    {"name": "chat", "type": "feed", "access": {"type": "static", "write": [...]}, "meta": {...}}

Its CID is the database's identity; the address is ``/orbitstore/<manifest CID>``. Two
databases with the same name but different writers or types have different addresses.
Every entry names its database by this CID (its ``db`` field).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from orbitstore.core import codec
from orbitstore.core.access import AccessController, access_from_manifest
from orbitstore.core.cid import Cid
from orbitstore.errors import (
    HashMismatchError,
    InvalidAddressError,
    InvalidCidError,
    InvalidDataError,
    InvalidValueError,
)

ADDRESS_PREFIX: Final = "/orbitstore/"
DATABASE_TYPES: Final = frozenset({"log", "feed", "keyvalue", "documents", "counter", "ydoc"})
_NAME_RE: Final = re.compile(r"^[^\x00-\x1f/]{1,200}$")
MAX_MANIFEST_BYTES: Final = 64 * 1024


def check_name(name: object) -> str:
    """``name`` if it may name a database (in a manifest, or locally), else
    InvalidValueError: 1-200 characters, no ``/`` (so no address) and no control ones."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidValueError(
            f"database name must be 1-200 characters without '/' or control characters:"
            f" {codec.describe(name)}"
        )
    return name


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    name: str
    type: str
    access: AccessController
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name)
        if not isinstance(self.type, str) or self.type not in DATABASE_TYPES:
            raise InvalidValueError(
                f"unknown database type ({codec.describe(self.type)});"
                f" one of {sorted(DATABASE_TYPES)}"
            )
        if not isinstance(self.meta, dict):
            raise InvalidValueError("manifest meta must be a map")

    def to_block(self) -> tuple[Cid, bytes]:
        block = codec.encode(
            {
                "name": self.name,
                "type": self.type,
                "access": self.access.to_manifest(),
                "meta": self.meta,
            }
        )
        if len(block) > MAX_MANIFEST_BYTES:
            raise InvalidValueError("manifest is too large")
        return Cid.for_block(block), block

    @property
    def cid(self) -> Cid:
        return self.to_block()[0]

    @property
    def address(self) -> str:
        return format_address(self.cid)

    @classmethod
    def from_block(cls, cid: Cid, block: bytes) -> Manifest:
        if Cid.for_block(block) != cid:
            raise HashMismatchError(f"manifest block does not hash to {cid}")
        if len(block) > MAX_MANIFEST_BYTES:
            raise InvalidDataError("manifest is too large")
        desc = codec.decode(block)
        if not isinstance(desc, dict) or set(desc) != {"name", "type", "access", "meta"}:
            raise InvalidDataError("a manifest is a map of name, type, access and meta")
        try:
            manifest = cls(
                name=desc["name"],
                type=desc["type"],
                access=access_from_manifest(desc["access"]),
                meta=desc["meta"],
            )
            canonical = manifest.to_block()[1]
        except InvalidValueError as exc:
            raise InvalidDataError(f"invalid manifest: {exc}") from exc
        if canonical != block:
            # e.g. unsorted or duplicate writers: the address would not be the CID that
            # this manifest re-encodes to, so two addresses would name one database.
            raise InvalidDataError("manifest is not in its canonical form")
        return manifest


def format_address(cid: Cid) -> str:
    return ADDRESS_PREFIX + str(cid)


def parse_address(address: str) -> Cid:
    """The manifest CID of ``/orbitstore/<cid>`` (a bare CID string is accepted too)."""
    if not isinstance(address, str):
        raise InvalidAddressError(f"an address is a string, not {type(address).__name__}")
    text = address[len(ADDRESS_PREFIX) :] if address.startswith(ADDRESS_PREFIX) else address
    try:
        cid = Cid.parse(text.rstrip("/"))
    except InvalidCidError as exc:
        raise InvalidAddressError(
            f"not an orbitstore address (expected /orbitstore/<cid>): {codec.describe(address)}"
        ) from exc
    if not cid.is_entry_link:
        raise InvalidAddressError(
            f"an address names a manifest by CIDv1 dag-cbor sha2-256; {cid.kind} is unsupported"
        )
    return cid


def is_address(text: str) -> bool:
    try:
        parse_address(text)
    except InvalidAddressError:
        return False
    return True
