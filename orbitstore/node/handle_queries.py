"""Reading one database handle beyond its view: SQL (``Database.query``, ``explain``,
``watch``) and the arrival cursor (``Database.changes_since``).

:class:`Database` keeps those public methods and their documentation; this adapter
joins the handle to the node's :class:`~orbitstore.node.query.QueryService` (its
catalog, and an AS OF snapshot, node/asof.py, when one is asked for or the type needs
one) and to its log's arrival numbers in the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from orbitstore.core.entry import Entry
from orbitstore.errors import UsageError
from orbitstore.node.asof import AsOf, Heads, request
from orbitstore.node.query import Params, QueryService
from orbitstore.query.results import QueryPlan, QueryResult

if TYPE_CHECKING:
    from orbitstore.node.database import Database


class HandleQueries:
    """The queries of one handle (``None`` service: the handle answers no SQL)."""

    __slots__ = ("_db", "_service")

    def __init__(self, database: Database, service: QueryService | None) -> None:
        self._db = database
        self._service = service

    def service(self) -> QueryService:
        self._db._check()
        if self._service is None:
            raise UsageError("this database handle was built without a query service")
        return self._service

    def _as_of(self, as_of: Heads | None) -> tuple[AsOf, ...]:
        found = request(self._db, as_of)
        return () if found is None else (found,)

    def query(self, sql: str, params: Params, as_of: Heads | None) -> QueryResult:
        service = self.service()
        return service.query(sql, params, service.catalog_for(self._db), self._as_of(as_of))

    def explain(self, sql: str, params: Params, as_of: Heads | None) -> QueryPlan:
        service = self.service()
        return service.explain(sql, params, service.catalog_for(self._db), self._as_of(as_of))

    def watch(self, sql: str, params: Params, debounce_s: float) -> AsyncIterator[QueryResult]:
        service = self.service()
        catalog = service.catalog_for(self._db)
        handles = {key: self._db for key in catalog.sources}
        return service.watch(sql, params, catalog, handles, debounce_s=debounce_s)

    async def changes_since(self, seq: int, limit: int | None) -> list[tuple[int, Entry]]:
        db = self._db
        db._check()
        async with db._lock:  # see Database.changes_since
            db._check()
            out: list[tuple[int, Entry]] = []
            for n, cid, block in db._store.log_store(db.cid).iter_since(seq):
                if limit is not None and len(out) >= limit:
                    break
                out.append((n, Entry.from_trusted_block(cid, block)))
        return out


__all__ = ["HandleQueries"]
