"""Checks on the entries a peer sends us, beyond their own validity (no I/O).

How it works
============

Every block a peer sends is decoded and verified first (:meth:`Entry.from_block`: its
CID, signature and limits). That proves the entry is well formed, not that it belongs
here. The rules below are what the node checks before anything of a frame (or an
announcement) is stored; breaking one is the peer's fault, a :class:`ProtocolError`
that ends its session.

Rule 1 — of this database. An entry names its database; one of another database is
refused (a peer mixing logs is broken or hostile).

Rule 2 — by a writer the database allows (its access controller's ``can_write``).

Rule 3 — accepted by the log. The log may still reject a verified entry (a write the
access rules refuse at its place in the history). The first rejection of a frame is
turned into a ProtocolError by :func:`invalid_entry_error`, naming the user (and the
device) whose write it was, where one is known; nothing of the frame is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.errors import OrbitstoreError, ProtocolError


def check_entries(entries: Sequence[Entry], db: Cid, can_write: Callable[[str], bool]) -> None:
    """Rules 1 and 2 for verified ``entries``: raise ProtocolError at the first break."""
    for entry in entries:
        if entry.db != db:
            raise ProtocolError(f"peer sent entry {entry.cid} of database {entry.db}")
        if not can_write(entry.writer):
            raise ProtocolError(f"peer sent entry {entry.cid} by unauthorized {entry.writer}")


def invalid_entry_error(
    cid: Cid, error: OrbitstoreError, principal: Mapping[str, str]
) -> ProtocolError:
    """Rule 3: the ProtocolError for an entry the log rejected with ``error``.

    ``principal``: who the writer key is in the database (``{"user"}`` or ``{"user",
    "device"}``, empty when unknown); a ``user`` and ``device`` named in the error's
    details take precedence (the log knew better)."""
    details = error.details
    who = dict(principal)
    if isinstance(details.get("user"), str) and isinstance(details.get("device"), str):
        who = {"user": str(details["user"]), "device": str(details["device"])}
    by = ""
    if "device" in who:
        by = f" (by device {who['device']} of user {who['user']})"
    elif who:
        by = f" (by {who['user']})"
    return ProtocolError(
        f"peer sent an invalid entry {cid}{by}: {error}", rejected=error.code, **who
    )


__all__ = ["check_entries", "invalid_entry_error"]
