"""Bounds on what one query may cost. One frozen object, passed in; never global."""

from __future__ import annotations

from dataclasses import dataclass

from orbitstore.errors import InvalidValueError


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryLimits:
    # Result size: a query returning more rows fails rather than filling memory. 10,000
    # rows of small documents is a few MB, enough for a page of UI or an export batch.
    max_rows: int = 10_000
    # Wall-clock budget of one execution. Indexed queries take well under 1 ms; a full
    # scan of 100,000 documents takes ~120 ms (benchmarks/bench_query.py); 1 s leaves room
    # for joins and bigger databases without letting one query stall a node.
    timeout_s: float = 1.0
    # Expression nesting depth (parentheses, prefix operators, nested calls; a chain of
    # one operator such as a AND b AND c counts once). Real queries stay well under 10;
    # sqlglot's recursive parser needs ~20 Python frames per level, so 24 levels stay far
    # from Python's recursion limit.
    max_depth: int = 24
    # Length of the SQL text: parsing costs grow with it; 20,000 characters is pages.
    max_sql_length: int = 20_000
    # Tables in one query (joins): each join multiplies the work.
    max_tables: int = 8
    # How many compiled queries the LRU cache keeps (by SQL text).
    cache_size: int = 512
    # How many AS OF snapshots stay attached for reuse (LRU). Each holds a copy of one
    # database's view tables as of some heads, in memory (a 10,000-key keyvalue is a few
    # MB); SQLite attaches at most 10 databases to a connection. A UI scrubbing through
    # history revisits a handful of points; 4 keeps those without holding much memory.
    snapshot_cache_size: int = 4

    def __post_init__(self) -> None:
        for name in (
            "max_rows",
            "max_depth",
            "max_sql_length",
            "max_tables",
            "cache_size",
            "snapshot_cache_size",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidValueError(f"QueryLimits.{name} must be a positive integer")
        if self.snapshot_cache_size > 10:
            raise InvalidValueError("QueryLimits.snapshot_cache_size is at most 10 (SQLite)")
        if not isinstance(self.timeout_s, int | float) or not self.timeout_s > 0:
            raise InvalidValueError("QueryLimits.timeout_s must be a positive number")


DEFAULT_QUERY_LIMITS = QueryLimits()
