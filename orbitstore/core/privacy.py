"""Private databases (read control): who a node may serve a database to.

How it works
============

A database is *private* when its manifest's ``meta`` holds::

    {"read": {"mode": "members", "replicas": [<did>, ...], "v": 1}}

Like the encryption spec, the declaration is part of the manifest, so of the address: a
database cannot be made private (or public) after it was created. A node serves a
private database — sync sessions, manifest fetches, blocks — only to a peer that proved,
in the session, control of an identity that is a *reader*
(:mod:`orbitstore.sync.auth`):

- a **member**: an identity that may write (a static writer; under capabilities the
  owner or an identity holding ``write`` or ``admin`` now), or, for an encrypted
  database, a reader of its current key epoch;
- a **replica**: an identity named in ``replicas`` or, under capabilities, holding the
  ``replica`` right now. A replica holds and serves the database (ciphertext only, when
  it is encrypted) and cannot write: it is not a writer.

A linked device is a reader when its user is one: the caller resolves the device to its
user (through the log's link ops, or the delegation the device presented in its proof).

Everyone else is refused. :func:`reader_role` is the decision, a pure function of the
facts the caller gathers from the database's current state; it says which kind of reader
an identity is, or None.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from orbitstore.core.identity import public_key_from_did
from orbitstore.errors import InvalidDataError, InvalidValueError

META_KEY: Final = "read"
MODE_MEMBERS: Final = "members"
VERSION: Final = 1
# Replica identities a manifest may name: far more than any pinning fleet, and the
# manifest stays well under its 64 KiB limit (a did:key is 56 bytes).
MAX_REPLICAS: Final = 256

Role = Literal["member", "replica"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadSpec:
    """The ``read`` part of a private database's manifest meta."""

    replicas: frozenset[str] = frozenset()
    mode: str = MODE_MEMBERS
    v: int = VERSION

    def __post_init__(self) -> None:
        if self.v != VERSION or self.mode != MODE_MEMBERS:
            raise InvalidValueError(
                f"unsupported read control {self.mode!r:.40} v{self.v!r:.10}; this version"
                f" knows {MODE_MEMBERS!r} v{VERSION}"
            )
        if not isinstance(self.replicas, frozenset):
            raise InvalidValueError("ReadSpec.replicas must be a frozenset of did:key ids")
        if len(self.replicas) > MAX_REPLICAS:
            raise InvalidValueError(f"at most {MAX_REPLICAS} replicas may be named")
        for did in self.replicas:
            try:
                public_key_from_did(did)
            except (InvalidDataError, TypeError) as exc:
                raise InvalidValueError(f"a replica is a did:key id, not {did!r:.80}") from exc

    @classmethod
    def of(cls, replicas: Iterable[str] = ()) -> ReadSpec:
        if isinstance(replicas, str):
            raise InvalidValueError("replicas is a list of did:key ids, not one string")
        replicas = list(replicas)
        for did in replicas:
            if not isinstance(did, str):
                raise InvalidValueError(f"a replica is a did:key id, not {did!r:.80}")
        return cls(replicas=frozenset(replicas))

    def to_meta(self) -> dict[str, Any]:
        return {"mode": self.mode, "replicas": sorted(self.replicas), "v": self.v}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> ReadSpec | None:
        """The spec a manifest's meta declares; None for a public database.
        InvalidValueError when the declaration is malformed."""
        desc = meta.get(META_KEY)
        if desc is None:
            return None
        if not isinstance(desc, dict) or set(desc) != {"mode", "replicas", "v"}:
            raise InvalidValueError("meta 'read' is a map of mode, replicas and v")
        replicas = desc["replicas"]
        if not isinstance(replicas, list) or not all(isinstance(r, str) for r in replicas):
            raise InvalidValueError("meta 'read'.replicas is a list of did:key ids")
        if replicas != sorted(set(replicas)):
            raise InvalidValueError("meta 'read'.replicas must be sorted and distinct")
        return cls(replicas=frozenset(replicas), mode=desc["mode"], v=desc["v"])


def reader_role(
    spec: ReadSpec,
    did: str,
    *,
    writers: Collection[str],
    epoch_readers: Collection[str] = (),
    replicas: Collection[str] = (),
) -> Role | None:
    """Which kind of reader ``did`` is (None: not one, refuse it).

    ``writers``: the identities that may write now (a static list, or under
    capabilities the owner and the holders of ``write``/``admin``); ``epoch_readers``:
    the readers of the current key epoch of an encrypted database; ``replicas``: the
    holders of the ``replica`` right now (besides those the manifest names)."""
    if did in writers or did in epoch_readers:
        return "member"
    if did in spec.replicas or did in replicas:
        return "replica"
    return None


__all__ = ["MAX_REPLICAS", "META_KEY", "ReadSpec", "Role", "reader_role"]
