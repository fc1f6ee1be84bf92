"""Mongo-style filters for documents, compiled to our SQL dialect.

::

    find({"age": {"$gt": 30}, "address.city": "Oslo", "$or": [{"a": 1}, {"b": None}]},
         sort=[("age", -1)], limit=10)

becomes ``SELECT doc FROM this WHERE ... ORDER BY ... LIMIT ?`` with every value bound as
a parameter, and runs through the same compiler (and cache: filters of the same shape
share one compiled query) and executor as SQL. Field names are dotted paths into the
document (``"tags.0"`` is the first element of ``tags``); each becomes
``json_extract(doc, '$.path')``, so declared indexes serve equality and ranges.

Operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists $not`` on fields, ``$and $or
$nor`` on filters. Semantics follow MongoDB where SQLite allows: a missing field equals
``None``; ``$ne``/``$nin``/``$not`` match documents where the field is missing; values
compare by SQLite's rules (numbers before strings; ``True``/``False`` are 1/0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from orbitstore.core.codec import describe
from orbitstore.errors import QueryError
from orbitstore.query.compiler import path_text

Filter: TypeAlias = Mapping[str, Any]
SortSpec: TypeAlias = Sequence[tuple[str, int]]

_COMPARE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
# Nesting of $and/$or/$not: deeper filters are generated abuse.
_MAX_DEPTH = 16


def _field(name: str) -> str:
    if not isinstance(name, str) or not name or name.startswith("$"):
        raise QueryError(f"not a field name: ({describe(name)})")
    parts: list[str | int] = []
    for part in name.split("."):
        if not part:
            raise QueryError(f"empty segment in field path ({describe(name)})")
        parts.append(int(part) if part.isdigit() else part)
    return f"json_extract(doc, '{path_text(parts)}')"


def _scalar(value: Any, op: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise QueryError(f"{op} compares with None, bool, int, float or str, not {describe(value)}")


class _Compiler:
    def __init__(self) -> None:
        self.params: list[Any] = []

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def filter(self, spec: Filter, depth: int = 0) -> str:
        if not isinstance(spec, Mapping):
            raise QueryError(f"a filter is a dict, not {describe(spec)}")
        if depth > _MAX_DEPTH:
            raise QueryError(f"filter nested deeper than {_MAX_DEPTH}")
        parts: list[str] = []
        for key, value in spec.items():
            if key in ("$and", "$or", "$nor"):
                if not isinstance(value, list | tuple) or not value:
                    raise QueryError(f"{key} takes a non-empty list of filters")
                subs = [self.filter(v, depth + 1) for v in value]
                joined = (" AND " if key == "$and" else " OR ").join(subs)
                parts.append(f"(NOT coalesce(({joined}), 0))" if key == "$nor" else f"({joined})")
            elif isinstance(key, str) and key.startswith("$"):
                raise QueryError(f"unknown top-level operator ({describe(key)})")
            else:
                parts.append(self.field(_field(key), key, value, depth))
        return "(" + " AND ".join(parts) + ")" if parts else "1"

    def field(self, x: str, name: str, cond: Any, depth: int) -> str:
        if not (isinstance(cond, Mapping) and cond and all(str(k).startswith("$") for k in cond)):
            return self.op(x, name, "$eq", cond, depth)
        return "(" + " AND ".join(self.op(x, name, op, v, depth) for op, v in cond.items()) + ")"

    def op(self, x: str, name: str, op: str, value: Any, depth: int) -> str:
        if op == "$eq":
            v = _scalar(value, op)
            return f"({x} IS NULL)" if v is None else f"({x} = {self.bind(v)})"
        if op == "$ne":
            v = _scalar(value, op)
            return f"({x} IS NOT NULL)" if v is None else f"({x} IS NULL OR {x} <> {self.bind(v)})"
        if op in _COMPARE:
            v = _scalar(value, op)
            if v is None:
                raise QueryError(f"{op} needs a value, not None")
            return f"({x} {_COMPARE[op]} {self.bind(v)})"
        if op in ("$in", "$nin"):
            if not isinstance(value, list | tuple):
                raise QueryError(f"{op} takes a list")
            values = [_scalar(v, op) for v in value]
            has_null = any(v is None for v in values)
            marks = ", ".join(self.bind(v) for v in values if v is not None)
            inside = f"{x} IN ({marks})" if marks else "0"
            if op == "$in":
                return f"({inside} OR {x} IS NULL)" if has_null else f"({inside})"
            if has_null:
                return f"({x} IS NOT NULL AND NOT ({inside}))"
            return f"({x} IS NULL OR NOT ({inside}))"
        if op == "$exists":
            if not isinstance(value, bool):
                raise QueryError("$exists takes True or False")
            path = x.removeprefix("json_extract(")
            return f"(json_type({path} IS {'NOT ' if value else ''}NULL)"
        if op == "$not":
            if depth >= _MAX_DEPTH:
                raise QueryError(f"filter nested deeper than {_MAX_DEPTH}")
            if not isinstance(value, Mapping) or not value:
                raise QueryError("$not takes a dict of operators, like {'$gt': 5}")
            return f"(NOT coalesce({self.field(x, name, value, depth + 1)}, 0))"
        raise QueryError(f"unknown operator ({describe(op)}) on field ({describe(name)})")


def compile_where(spec: Filter) -> tuple[str, list[Any]]:
    """The WHERE condition (our dialect) and its positional parameters."""
    c = _Compiler()
    return c.filter(spec), c.params


def compile_find(
    spec: Filter, *, sort: SortSpec = (), limit: int | None = None, skip: int = 0
) -> tuple[str, list[Any]]:
    """A full query over the documents table ``this`` returning ``doc``."""
    c = _Compiler()
    where = c.filter(spec)
    order: list[str] = []
    for item in sort:
        if not (isinstance(item, tuple | list) and len(item) == 2 and item[1] in (1, -1)):
            raise QueryError("sort is a list of (field, 1 | -1) pairs")
        order.append(f"{_field(item[0])}{' DESC' if item[1] == -1 else ''}")
    order.append("id")  # a total order: equal keys come back in the same order every time
    sql = f"SELECT doc FROM this WHERE {where} ORDER BY {', '.join(order)}"
    for name, n in (("limit", limit), ("skip", skip)):
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
            raise QueryError(f"{name} must be a non-negative integer")
    if limit is not None:
        sql += " LIMIT ?"
        c.params.append(limit)
    if skip:
        sql += " OFFSET ?"
        c.params.append(skip)
    return sql, c.params
