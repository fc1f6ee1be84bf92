"""Node configuration: one frozen object, read once at the top."""

from __future__ import annotations

from dataclasses import dataclass, field

from orbitstore.core.limits import DEFAULT_LIMITS, EntryLimits
from orbitstore.query.limits import DEFAULT_QUERY_LIMITS, QueryLimits
from orbitstore.storage.sqlite import SqliteConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    limits: EntryLimits = DEFAULT_LIMITS
    sqlite: SqliteConfig = field(default_factory=SqliteConfig)
    # Name of the key in the keystore that signs this node's writes.
    identity_name: str = "default"
    # Record the writer's wall clock in each entry (display only, never merged on).
    timestamps: bool = True
    # Bounds on SQL queries (rows, time, nesting, cache); see QueryLimits for defaults.
    query: QueryLimits = DEFAULT_QUERY_LIMITS
