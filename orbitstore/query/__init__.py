"""SQL over the views: our dialect compiled by sqlglot to SQLite (pure: no I/O).

See ``docs/query.md`` for the dialect. The executor lives in
:mod:`orbitstore.storage.query_exec`; the wiring in :mod:`orbitstore.node.query`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orbitstore._lazy import lazy_getattr

if TYPE_CHECKING:
    from orbitstore.query.catalog import Catalog as Catalog
    from orbitstore.query.catalog import Source as Source
    from orbitstore.query.compiler import CompiledQuery as CompiledQuery
    from orbitstore.query.compiler import QueryCompiler as QueryCompiler
    from orbitstore.query.compiler import compile_select as compile_select
    from orbitstore.query.filters import compile_find as compile_find
    from orbitstore.query.filters import compile_where as compile_where
    from orbitstore.query.limits import DEFAULT_QUERY_LIMITS as DEFAULT_QUERY_LIMITS
    from orbitstore.query.limits import QueryLimits as QueryLimits
    from orbitstore.query.results import PlanStep as PlanStep
    from orbitstore.query.results import QueryPlan as QueryPlan
    from orbitstore.query.results import QueryResult as QueryResult

# Imported on first use: importing this package stays cheap.
_EXPORTS: dict[str, str] = {
    "Catalog": "orbitstore.query.catalog",
    "Source": "orbitstore.query.catalog",
    "CompiledQuery": "orbitstore.query.compiler",
    "QueryCompiler": "orbitstore.query.compiler",
    "compile_select": "orbitstore.query.compiler",
    "compile_find": "orbitstore.query.filters",
    "compile_where": "orbitstore.query.filters",
    "DEFAULT_QUERY_LIMITS": "orbitstore.query.limits",
    "QueryLimits": "orbitstore.query.limits",
    "PlanStep": "orbitstore.query.results",
    "QueryPlan": "orbitstore.query.results",
    "QueryResult": "orbitstore.query.results",
}
__all__ = list(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
