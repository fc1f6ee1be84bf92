"""What a database handle reports: :class:`DatabaseStatistics` (``Database.statistics``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orbitstore.node.encryption import EncryptionStatistics

if TYPE_CHECKING:
    from orbitstore.node.database import Database


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseStatistics:
    """What :meth:`Database.statistics` reports (a typed handle may add fields)."""

    entries: int
    heads: int
    pending: int
    reapplied_on_open: int
    subscribers: int
    encryption: EncryptionStatistics | None = None
    """Key epochs and unreadable entries of an encrypted database; None in the clear."""


def statistics_fields(db: Database) -> dict[str, Any]:
    """The fields of :class:`DatabaseStatistics` for ``db`` (a typed handle adds its own)."""
    log = db.log
    return {
        "entries": len(log),
        "heads": len(log.heads),
        "pending": log.pending_count,
        "reapplied_on_open": db._reapplied,
        "subscribers": len(db._subscribers),
        "encryption": None if db._keys is None else db._keys.statistics(),
    }


__all__ = ["DatabaseStatistics", "statistics_fields"]
