"""SQL over the node's databases: the query service.

The :class:`QueryService` (one per node) joins the pure compiler of
:mod:`orbitstore.query` to the read-only executor of :mod:`orbitstore.storage.query_exec`.
The node passes it to every database handle it builds (``HandleServices.queries``): a
handle's ``query``/``explain``/``watch`` see its own name, and ``this``, as the table;
the node's ``query`` sees every open database by its local name. ``as_of`` runs a query
over past states (:mod:`orbitstore.node.asof`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import trio

from orbitstore.core.cid import Cid
from orbitstore.errors import NotFoundError, UsageError
from orbitstore.node.asof import (
    SNAPSHOT_ONLY,
    AsOf,
    Heads,
    SnapshotCache,
    SnapshotStatistics,
    request,
    resolve,
)
from orbitstore.node.subscription import Subscription, wait_any
from orbitstore.query.catalog import KINDS, Catalog, Source, queryable
from orbitstore.query.limits import DEFAULT_QUERY_LIMITS, QueryLimits
from orbitstore.query.results import PlanStep, QueryPlan, QueryResult, shape_rows
from orbitstore.storage.base import NodeStore
from orbitstore.storage.query_exec import SqliteQueryExecutor
from orbitstore.storage.sqlite import SqliteStore

if TYPE_CHECKING:  # sqlglot is imported with the compiler, on the first query
    from orbitstore.query.compiler import CompiledQuery, QueryCompiler

Params = Sequence[Any] | Mapping[str, Any] | None

# A live query waits this long after a change before re-running, so a burst of writes
# (a batch, a sync catch-up) costs one re-run instead of one per entry.
DEFAULT_WATCH_DEBOUNCE_S = 0.05

_DETAIL = re.compile(
    r"^(?P<op>SCAN|SEARCH) (?P<table>\w+)"
    r"(?: USING (?:(?P<covering>COVERING )?INDEX (?P<index>\S+)"
    r"|(?P<pk>(?:INTEGER )?PRIMARY KEY)))?(?: \((?P<cond>.*)\))?"
)


class _Handle(Protocol):
    """What the query service needs of a database handle."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    cid: Cid

    @property
    def encrypted(self) -> bool: ...

    def subscribe(self, *, buffer: int = ...) -> Any: ...


@dataclass(frozen=True, slots=True)
class QueryStatistics:
    """What :meth:`QueryService.statistics` reports."""

    snapshots: SnapshotStatistics
    """Size and hit/miss/eviction counts of the AS OF snapshot cache."""


class QueryService:
    """Compiles (with a cache), runs within :class:`QueryLimits`, explains and watches."""

    def __init__(self, store: NodeStore, limits: QueryLimits = DEFAULT_QUERY_LIMITS) -> None:
        self._store = store
        self.limits = limits
        self._compiler: QueryCompiler | None = None
        self._executor = SqliteQueryExecutor(store) if isinstance(store, SqliteStore) else None
        self._sources: dict[Cid, Source] = {}
        self._snapshots = (
            SnapshotCache(self._executor, limits.snapshot_cache_size)
            if self._executor is not None
            else None
        )

    # -- catalogs ------------------------------------------------------------------------

    def source(self, db: _Handle) -> Source:
        """The table ``db`` is, with the declared indexes on it right now."""
        if not isinstance(self._store, SqliteStore):
            raise UsageError("SQL queries need a node that stores to disk (open_node(path))")
        found = self._sources.get(db.cid)
        log_id = found.log_id if found is not None else self._store.log_store(db.cid).log_id
        fresh = self.table_source(db.name, db.type, log_id)
        if fresh != found:
            self._sources[db.cid] = found = fresh
        return found

    def table_source(self, name: str, type_name: str, log_id: int) -> Source:
        """A :class:`Source` for log ``log_id`` with the indexes declared right now."""
        table = KINDS[type_name].table if type_name in KINDS else None
        indexes = self._exec().json_indexes(table) if table else ()
        return Source(name, type_name, log_id, indexes)

    def catalog_for(self, db: _Handle) -> Catalog:
        if not _has_table(db):
            if queryable(db.type):
                raise UsageError(
                    "an encrypted log database has no SQL table: its payloads are sealed"
                    " in the store (read it with db.entries())"
                )
            raise UsageError(f"a {db.type} database has no SQL table")
        src = self.source(db)
        return Catalog.of([("this", src), (db.name, src)])

    def catalog_of(self, dbs: Sequence[_Handle]) -> Catalog:
        return Catalog.of([(d.name, self.source(d)) for d in dbs if _has_table(d)])

    def catalog_as_of(self, sql: str, catalog: Catalog, as_of: Sequence[AsOf]) -> Catalog:
        """``catalog`` with the databases of ``as_of`` that ``sql`` reads swapped for
        their snapshots (built, or taken from the cache)."""
        if not as_of:
            return catalog
        tables = set(self.compile(sql, catalog).tables)
        wanted = [r for r in as_of if r.name.lower() in tables]
        if not wanted:
            return catalog
        assert self._snapshots is not None  # a catalog exists only on a SqliteStore
        snapshots = self._snapshots.acquire(wanted)
        by_name = {r.name.lower(): snapshots[r.key] for r in wanted}
        named = []
        for key, live in catalog.sources.items():
            snap = by_name.get(live.name.lower())
            if snap is None:
                named.append((key, live))
            else:  # no declared indexes: the snapshot has its own (unnamed here)
                named.append((key, Source(live.name, live.type_name, snap.log_id, (), snap.schema)))
        return Catalog.of(named)

    def statistics(self) -> QueryStatistics:
        """Counters of the service: its AS OF snapshot cache (``snapshots``)."""
        if self._snapshots is None:
            return QueryStatistics(SnapshotStatistics(0, 0, 0, 0))
        return QueryStatistics(self._snapshots.statistics())

    # -- running -------------------------------------------------------------------------

    @property
    def compiler(self) -> QueryCompiler:
        """The compiler (with its parse cache), made on first use: a node that runs no
        query never imports sqlglot."""
        if self._compiler is None:
            from orbitstore.query.compiler import QueryCompiler

            self._compiler = QueryCompiler(self.limits)
        return self._compiler

    def compile(self, sql: str, catalog: Catalog) -> CompiledQuery:
        return self.compiler.compile(sql, catalog)

    def _exec(self) -> SqliteQueryExecutor:
        if self._executor is None:
            raise UsageError("SQL queries need a node that stores to disk (open_node(path))")
        return self._executor

    def run(self, compiled: CompiledQuery, params: Params) -> QueryResult:
        bound = compiled.bind(params)
        rows = self._exec().execute(
            compiled.sql, bound, max_rows=self.limits.max_rows, timeout_s=self.limits.timeout_s
        )
        return QueryResult(compiled.columns, shape_rows(rows, compiled.decoders))

    def query(
        self, sql: str, params: Params, catalog: Catalog, as_of: Sequence[AsOf] = ()
    ) -> QueryResult:
        return self.run(self.compile(sql, self.catalog_as_of(sql, catalog, as_of)), params)

    def explain(
        self, sql: str, params: Params, catalog: Catalog, as_of: Sequence[AsOf] = ()
    ) -> QueryPlan:
        compiled = self.compile(sql, self.catalog_as_of(sql, catalog, as_of))
        executor = self._exec()
        details = executor.explain(compiled.sql, compiled.bind(params))
        steps = []
        for line in details:
            steps.append(self._step(line, compiled, executor))
        return QueryPlan(tuple(steps), compiled.sql)

    @staticmethod
    def _step(line: str, compiled: CompiledQuery, executor: SqliteQueryExecutor) -> PlanStep:
        if line.startswith("USE TEMP B-TREE"):
            return PlanStep(None, "sort", None, None, line)
        m = _DETAIL.match(line)
        if m is None:
            return PlanStep(None, "other", None, None, line)
        table = compiled.aliases.get(m["table"])
        if table is None:  # SQLite's own rows (CONSTANT ROW) or the counter's subquery
            return PlanStep(None, "other", None, None, line)
        if m["index"]:
            path = executor.index_path(m["index"])
            return PlanStep(table, "index", m["index"], path, line)
        cond = m["cond"] or ""
        if m["pk"] and [c for c in cond.split(" AND ") if c and not c.startswith("log")]:
            return PlanStep(table, "key", None, None, line)
        return PlanStep(table, "scan", None, None, line)

    # -- live queries --------------------------------------------------------------------

    def watch(
        self,
        sql: str,
        params: Params,
        catalog: Catalog,
        handles: Mapping[str, _Handle],
        *,
        debounce_s: float = DEFAULT_WATCH_DEBOUNCE_S,
    ) -> AsyncIterator[QueryResult]:
        """The current result, then each *different* result after changes to the
        databases the query reads (debounced). Bad SQL or parameters, and tables a live
        query cannot read (ydoc), are refused here, before anything is subscribed."""
        compiled = self.compile(sql, catalog)
        for table in compiled.tables:
            if handles[table].type in SNAPSHOT_ONLY:
                raise UsageError(
                    f"a live query cannot read the {handles[table].type} table {table!r}:"
                    " subscribe to the document and query it again on changes"
                )
        compiled.bind(params)
        return self._watch(compiled, params, handles, debounce_s)

    async def _watch(
        self,
        compiled: CompiledQuery,
        params: Params,
        handles: Mapping[str, _Handle],
        debounce_s: float,
    ) -> AsyncIterator[QueryResult]:
        async with AsyncExitStack() as stack:
            subs: list[Subscription] = []
            for table in compiled.tables:
                subs.append(await stack.enter_async_context(handles[table].subscribe()))
            last = self.run(compiled, params)
            yield last
            while subs:
                if not await wait_any(subs):
                    return
                await trio.sleep(debounce_s)
                for sub in subs:
                    while sub.receive_nowait() is not None:
                        pass
                result = self.run(compiled, params)
                if result != last:
                    last = result
                    yield result

    def close(self) -> None:
        if self._snapshots is not None:
            self._snapshots.clear()
        if self._executor is not None:
            self._executor.close()


def _has_table(db: _Handle) -> bool:
    # A log's table shows payloads as stored: an encrypted one's are sealed.
    return queryable(db.type) and not (db.type == "log" and db.encrypted)


def resolve_all(handles: Mapping[str, Any], as_of: Mapping[str, Heads] | None) -> tuple[AsOf, ...]:
    """Snapshot requests for ``{local name: heads}`` over the open ``handles`` (by
    lower-cased name), and for the current state of the others that need one (ydoc;
    built only if the query reads them). NotFoundError for a name that is not open."""
    named = {n.lower() for n in as_of or {} if isinstance(n, str)}
    current = [
        found
        for key, handle in handles.items()
        if key not in named and (found := request(handle, None)) is not None
    ]
    if as_of is None:
        return tuple(current)
    if not isinstance(as_of, Mapping):
        raise UsageError("as_of maps database names to heads: {name: [cid, ...]}")
    out = []
    for name, heads in as_of.items():
        handle = handles.get(name.lower()) if isinstance(name, str) else None
        if handle is None:
            raise NotFoundError(f"as_of names {name!r}, which is not an open database")
        if not queryable(handle.type):
            raise UsageError(f"a {handle.type} database has no SQL table")
        found = resolve(handle, heads)
        if found is not None:
            out.append(found)
    return (*out, *current)
