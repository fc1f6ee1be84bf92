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
    # Threads that verify signatures of large received batches (off the event loop).
    # libsodium releases the GIL while it verifies, so 2 can use both cores of an idle
    # machine (1.6-1.7x measured on 2 idle vCPUs), but on a busy shared machine 2 were
    # measured slower than 1 (0.74x). 1 is the safe default; raise it on a machine with
    # cores to spare (benchmarks/bench_receive.py measures both).
    verify_threads: int = 1
    # Bounds on SQL queries (rows, time, nesting, cache); see QueryLimits for defaults.
    query: QueryLimits = DEFAULT_QUERY_LIMITS
