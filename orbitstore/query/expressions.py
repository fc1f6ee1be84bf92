"""Expressions of our SQL dialect, re-emitted for SQLite from a whitelist.

Every sqlglot node an expression may contain is handled here or refused with
:class:`~orbitstore.errors.QueryError` (with line and column). Column references are
resolved against the tables of the query; JSON fields always become
``json_extract(<json column>, '$.path')`` — never ``->``, whose JSON-text result silently
compares unequal to numbers and strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlglot import exp

from orbitstore.errors import QueryError
from orbitstore.query.catalog import Catalog, ColumnKind, ColumnSpec, Source
from orbitstore.query.limits import QueryLimits

_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATH_TEXT = re.compile(r'\$(?:\.[A-Za-z_][A-Za-z0-9_]*|\."[^"\x00]*"|\[\d{1,9}\])*')
_PATH_PART = re.compile(r'\.([A-Za-z_][A-Za-z0-9_]*)|\."([^"\x00]*)"|\[(\d{1,9})\]')

#: Scalar and aggregate functions the dialect accepts, by the name users write.
FUNCTIONS: tuple[str, ...] = (
    "abs", "avg", "coalesce", "count", "group_concat", "ifnull", "iif", "instr",
    "json_array_length", "json_extract", "json_type", "length", "lower", "ltrim", "max",
    "min", "nullif", "replace", "round", "rtrim", "substr", "sum", "total", "trim",
    "typeof", "upper",
)  # fmt: skip

# sqlglot node class -> SQLite function name, for functions emitted as name(args...).
_SIMPLE_FUNCS: dict[type[exp.Expression], tuple[str, tuple[str, ...]]] = {
    exp.Sum: ("sum", ("this",)),
    exp.Avg: ("avg", ("this",)),
    exp.Lower: ("lower", ("this",)),
    exp.Upper: ("upper", ("this",)),
    exp.Length: ("length", ("this",)),
    exp.Abs: ("abs", ("this",)),
    exp.Round: ("round", ("this", "decimals")),
    exp.Substring: ("substr", ("this", "start", "length")),
    exp.Nullif: ("nullif", ("this", "expression")),
    exp.StrPosition: ("instr", ("this", "substr")),
    exp.Replace: ("replace", ("this", "expression", "replacement")),
    exp.Typeof: ("typeof", ("this",)),
    exp.GroupConcat: ("group_concat", ("this", "separator")),
}
_ANONYMOUS = {"total": (1, 1), "json_array_length": (1, 2)}
_TRIMS = {None: "trim", "LEADING": "ltrim", "TRAILING": "rtrim"}
_BINARY: dict[type[exp.Expression], str] = {
    exp.EQ: "=", exp.NEQ: "<>", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<=",
    exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/", exp.Mod: "%", exp.DPipe: "||",
    exp.Like: "LIKE", exp.Glob: "GLOB", exp.Is: "IS", exp.NullSafeEQ: "IS",
    exp.NullSafeNEQ: "IS NOT",
}  # fmt: skip
# Flags sqlglot sets that do not change what SQLite computes.
_HARMLESS = frozenset({"big_int", "safe", "typed", "only_json_types", "scalar_only"})
_CASTS = {
    "INT": "INTEGER", "BIGINT": "INTEGER", "SMALLINT": "INTEGER", "TINYINT": "INTEGER",
    "DOUBLE": "REAL", "FLOAT": "REAL", "TEXT": "TEXT", "VARCHAR": "TEXT", "CHAR": "TEXT",
    "DECIMAL": "NUMERIC", "BLOB": "BLOB", "VARBINARY": "BLOB",
}  # fmt: skip

# -- positions ---------------------------------------------------------------------------


def _pos(node: exp.Expression | None) -> tuple[int | None, int | None]:
    if node is not None:
        for n in node.walk():
            meta = n.meta if isinstance(n, exp.Expression) else {}
            if "line" in meta:
                return int(meta["line"]), int(meta["col"])
    return None, None


def _fail(
    message: str, node: exp.Expression | None = None, cls: type[QueryError] = QueryError
) -> QueryError:
    line, column = _pos(node)
    return cls(message, line=line, column=column)


# -- emission ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Table:
    alias: str  # generated: t0, t1 ...
    name: str  # what the user calls it (alias or table name), lower case
    source: Source


@dataclass(slots=True)
class _Ref:
    table: _Table
    column: ColumnSpec
    path: tuple[str | int, ...]

    @property
    def physical(self) -> str:
        return self.column.physical.format(t=self.table.alias)


def path_text(path: Sequence[str | int]) -> str:
    """``('a', 0, 'b c')`` -> ``$.a[0]."b c"``: the form view indexes are declared in."""
    out = ["$"]
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _SIMPLE_KEY.fullmatch(part):
            out.append(f".{part}")
        elif '"' in part or "\x00" in part:
            raise QueryError(f"a JSON key cannot contain a double quote: {part!r:.60}")
        else:
            out.append(f'."{part}"')
    return "".join(out)


def parse_path(text: str, node: exp.Expression | None = None) -> tuple[str | int, ...]:
    if not _PATH_TEXT.fullmatch(text):
        raise _fail(f"not a JSON path we accept: {text!r:.60} (write '$.a.b' or '$.a[0]')", node)
    parts: list[str | int] = []
    for m in _PATH_PART.finditer(text, 1):
        key, quoted, index = m.groups()
        parts.append(int(index) if index is not None else key if key is not None else quoted)
    return tuple(parts)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class ExpressionEmitter:
    """Emits expressions; the statement compiler builds on it."""

    def __init__(self, catalog: Catalog, limits: QueryLimits) -> None:
        self.catalog = catalog
        self.limits = limits
        self.tables: list[_Table] = []
        self.slots: list[int | str] = []
        self.positional = 0
        self.style = "none"
        self.out_aliases: dict[str, str] = {}
        self.limit_slot: int | None = None

    # -- references --------------------------------------------------------------------

    @staticmethod
    def _parts(node: exp.Expression) -> list[exp.Identifier] | None:
        if isinstance(node, exp.Column):
            if not isinstance(node.this, exp.Identifier):
                return None
            parts = [node.args.get(k) for k in ("catalog", "db", "table", "this")]
            return [p for p in parts if isinstance(p, exp.Identifier)]
        if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Identifier):
            head = ExpressionEmitter._parts(node.this)
            return None if head is None else [*head, node.expression]
        return None

    def _ref_or_none(self, node: exp.Expression, *, outer: bool = False) -> _Ref | None:
        parts = self._parts(node)
        if parts is None:
            return None
        first = parts[0].name.lower()
        by_name = {t.name: t for t in self.tables}
        if len(parts) >= 2 and first in by_name:
            table, col, rest = by_name[first], parts[1], parts[2:]
        else:
            col, rest = parts[0], parts[1:]
            owners = [t for t in self.tables if t.source.kind.column(first)]
            if len(owners) > 1:
                names = ", ".join(f"{t.name}.{first}" for t in owners)
                raise _fail(f"column {first!r} is ambiguous: write one of {names}", node)
            if not owners:
                if outer and not rest and first in self.out_aliases:
                    return None
                raise _fail(self._unknown(first), node)
            table = owners[0]
        spec = table.source.kind.column(col.name.lower())
        if spec is None:
            raise _fail(self._unknown(col.name, table), node)
        if rest and spec.kind != ColumnKind.JSON:
            raise _fail(f"column {spec.name!r} is not JSON: it has no field {rest[0].name!r}", node)
        return _Ref(table, spec, tuple(p.name for p in rest))

    def _unknown(self, name: str, table: _Table | None = None) -> str:
        tables = [table] if table is not None else self.tables
        if not tables:
            return f"unknown column {name!r} (the query has no FROM)"
        cols = sorted({c.name for t in tables for c in t.source.kind.columns})
        hint = ""
        json_cols = {
            c.name
            for t in tables
            for c in t.source.kind.columns
            if c.kind == ColumnKind.JSON and not c.hidden
        }
        if json_cols:
            first = sorted(json_cols)[0]
            hint = (
                f"; JSON fields are paths on {' or '.join(sorted(json_cols))}, e.g. {first}.{name}"
            )
        return f"unknown column {name!r} (columns: {', '.join(cols)}{hint})"

    def _json_target(self, node: exp.Expression) -> tuple[str, str]:
        """For ``x->>'$.p'``/``json_extract(x, '$.p')``: the JSON column SQL and full path."""
        path_node = node.args.get("expression")
        extra: tuple[str | int, ...]
        if isinstance(path_node, exp.JSONPath):
            extra = self._jsonpath(path_node)
        elif isinstance(path_node, exp.Literal) and path_node.is_string:
            extra = parse_path(path_node.this, path_node)
        else:
            raise _fail("a JSON path must be a string literal like '$.a.b'", node)
        for key, value in node.args.items():
            if key not in ("this", "expression") and isinstance(value, exp.Expression):
                raise _fail("json_extract takes one path", node)
        ref = self._ref_or_none(node.this)
        if ref is not None and ref.column.kind == ColumnKind.JSON:
            return ref.physical, path_text(ref.path + extra)
        return self.expr(node.this), path_text(extra)

    @staticmethod
    def _jsonpath(node: exp.JSONPath) -> tuple[str | int, ...]:
        parts: list[str | int] = []
        for part in node.expressions:
            if isinstance(part, exp.JSONPathRoot):
                continue
            if (isinstance(part, exp.JSONPathKey) and isinstance(part.this, str)) or (
                isinstance(part, exp.JSONPathSubscript) and isinstance(part.this, int)
            ):
                parts.append(part.this)
            else:
                raise _fail("only keys and [n] indexes are allowed in a JSON path", node)
        return tuple(parts)

    # -- expressions -------------------------------------------------------------------

    def expr(self, node: exp.Expression, *, outer: bool = False) -> str:
        """Emit one expression. ``outer``: ORDER BY/GROUP BY/HAVING, where the names of
        output columns may be used."""

        def e(n: exp.Expression) -> str:
            return self.expr(n, outer=outer)

        if isinstance(node, exp.Column | exp.Dot):
            ref = self._ref_or_none(node, outer=outer)
            if ref is None:
                parts = self._parts(node)
                if parts is not None and len(parts) == 1 and outer:
                    return self.out_aliases[parts[0].name.lower()]
                raise _fail(f"{node.sql(dialect='sqlite')} is not a column", node)
            kind = ref.column.kind
            if kind == ColumnKind.JSON:
                return f"json_extract({ref.physical}, {_quote(path_text(ref.path))})"
            if kind == ColumnKind.CID:
                return f"os_cid({ref.physical})"
            if kind == ColumnKind.BIGINT:
                return f"CAST({ref.physical} AS INTEGER)"
            return ref.physical
        if isinstance(node, exp.Paren):
            return f"({e(node.this)})"
        if isinstance(node, exp.Literal):
            if node.is_string:
                return _quote(node.this)
            if _NUMBER.fullmatch(node.this):
                return str(node.this)
            raise _fail(f"not a number: {node.this!r:.40}", node)
        if isinstance(node, exp.Null):
            return "NULL"
        if isinstance(node, exp.Boolean):
            return "1" if node.this else "0"
        if isinstance(node, exp.Placeholder):
            return self._placeholder(node)
        if isinstance(node, exp.And | exp.Or):
            word = " AND " if isinstance(node, exp.And) else " OR "
            return "(" + word.join(e(cast(exp.Expression, p)) for p in node.flatten()) + ")"
        if isinstance(node, exp.Escape):
            like = node.this
            if not isinstance(like, exp.Like):
                raise _fail("ESCAPE goes with LIKE", node)
            self._only(like, ("this", "expression", "negate"))
            self._only(node, ("this", "expression"))
            sql = f"({e(like.this)} LIKE {e(like.expression)} ESCAPE {e(node.expression)})"
            return f"(NOT {sql})" if like.args.get("negate") else sql
        op = _BINARY.get(type(node))
        if op is not None:
            self._only(node, ("this", "expression", "negate"))
            sql = f"({e(node.this)} {op} {e(node.expression)})"
            return f"(NOT {sql})" if node.args.get("negate") else sql
        if isinstance(node, exp.Not | exp.Neg | exp.Paren):
            self._only(node, ("this",))
        if isinstance(node, exp.Not):
            return f"(NOT {e(node.this)})"
        if isinstance(node, exp.Neg):
            return f"(-{e(node.this)})"
        if isinstance(node, exp.In):
            self._only(node, ("this", "expressions", "negate"))
            sql = f"({e(node.this)} IN ({', '.join(e(x) for x in node.expressions)}))"
            return f"(NOT {sql})" if node.args.get("negate") else sql
        if isinstance(node, exp.Between):
            self._only(node, ("this", "low", "high", "negate"))
            sql = f"({e(node.this)} BETWEEN {e(node.args['low'])} AND {e(node.args['high'])})"
            return f"(NOT {sql})" if node.args.get("negate") else sql
        if isinstance(node, exp.Case):
            self._only(node, ("this", "ifs", "default"))
            words = ["CASE"]
            if node.this is not None:
                words.append(e(node.this))
            for branch in node.args.get("ifs") or []:
                words.append(f"WHEN {e(branch.this)} THEN {e(branch.args['true'])}")
            if node.args.get("default") is not None:
                words.append(f"ELSE {e(node.args['default'])}")
            return " ".join([*words, "END"])
        if isinstance(node, exp.If):
            self._only(node, ("this", "true", "false"))
            other = node.args.get("false")
            tail = f" ELSE {e(other)}" if other is not None else ""
            return f"CASE WHEN {e(node.this)} THEN {e(node.args['true'])}{tail} END"
        if isinstance(node, exp.Cast):
            to = node.args.get("to")
            target = _CASTS.get(to.this.name) if isinstance(to, exp.DataType) else None
            if target is None:
                raise _fail(f"CAST to {to.sql() if to else '?'} is not supported", node)
            return f"CAST({e(node.this)} AS {target})"
        return self._function(node, outer)

    def _only(self, node: exp.Expression, allowed: Sequence[str]) -> None:
        """Refuse any argument we would not emit (an unknown flag could change meaning)."""
        for value in node.args.values():
            if isinstance(value, exp.Subquery | exp.Query) or (
                isinstance(value, list)
                and any(isinstance(v, exp.Subquery | exp.Query) for v in value)
            ):
                raise _fail("subqueries are not supported", node)
        for key, value in node.args.items():
            if key in allowed or key in _HARMLESS or value is None or value is False:
                continue
            if value in ([], ""):
                continue
            raise _fail(f"{node.key.upper()} with {key.upper()} is not supported", node)

    def _placeholder(self, node: exp.Placeholder) -> str:
        label = node.args.get("this") or ""
        slot: int | str
        if not isinstance(label, str):
            raise _fail("unsupported parameter", node)
        if label and not label.isdigit():
            style, slot = "named", label
        elif label:
            raise _fail("numbered parameters (?1) are not supported: use ? or :name", node)
        else:
            style, slot = "qmark", self.positional
            self.positional += 1
        if self.style not in ("none", style):
            raise _fail("use either ? or :name parameters in one query, not both", node)
        self.style = style
        self.slots.append(slot)
        return "?"

    def _function(self, node: exp.Expression, outer: bool) -> str:

        def e(n: exp.Expression) -> str:
            return self.expr(n, outer=outer)

        if isinstance(node, exp.Count):
            arg = node.this
            if isinstance(arg, exp.Star):
                return "count(*)"
            if isinstance(arg, exp.Distinct):
                if len(arg.expressions) != 1:
                    raise _fail("count(DISTINCT ...) takes one expression", node)
                return f"count(DISTINCT {e(arg.expressions[0])})"
            return f"count({e(arg)})"
        if isinstance(node, exp.Min | exp.Max):
            args = [node.this, *(node.expressions or [])]
            name = "min" if isinstance(node, exp.Min) else "max"
            return f"{name}({', '.join(e(a) for a in args)})"
        if isinstance(node, exp.Coalesce):
            args = [node.this, *(node.expressions or [])]
            return f"coalesce({', '.join(e(a) for a in args)})"
        if isinstance(node, exp.JSONExtract | exp.JSONExtractScalar):
            target, text = self._json_target(node)
            return f"json_extract({target}, {_quote(text)})"
        if isinstance(node, exp.JSONType):
            path_node = node.args.get("expression")
            path: tuple[str | int, ...] = ()
            if isinstance(path_node, exp.Literal) and path_node.is_string:
                path = parse_path(path_node.this, path_node)
            elif path_node is not None:
                raise _fail("a JSON path must be a string literal like '$.a.b'", node)
            ref = self._ref_or_none(node.this)
            if ref is not None and ref.column.kind == ColumnKind.JSON:
                return f"json_type({ref.physical}, {_quote(path_text(ref.path + path))})"
            return f"json_type({e(node.this)}, {_quote(path_text(path))})"
        if isinstance(node, exp.Trim):
            self._only(node, ("this", "expression", "position"))
            position = node.args.get("position")
            fname = _TRIMS.get(str(position).upper() if position else None)
            if fname is None:
                raise _fail(f"TRIM {position} is not supported", node)
            args = [node.this] + ([node.expression] if node.expression is not None else [])
            return f"{fname}({', '.join(e(a) for a in args)})"
        spec = _SIMPLE_FUNCS.get(type(node))
        if spec is not None:
            fname, keys = spec
            self._only(node, keys)
            args = [node.args.get(k) for k in keys]
            while args and args[-1] is None:
                args.pop()
            if any(a is None for a in args):
                raise _fail(f"{fname}() is missing an argument", node)
            if isinstance(node, exp.Sum | exp.Avg | exp.GroupConcat) and isinstance(
                node.this, exp.Distinct
            ):
                inner = node.this.expressions
                return f"{fname}(DISTINCT {e(inner[0])})"
            return f"{fname}({', '.join(e(a) for a in args if a is not None)})"
        if isinstance(node, exp.Anonymous):
            name = str(node.this).lower()
            arity = _ANONYMOUS.get(name)
            if arity is None:
                raise _fail(f"unknown function {name}() (allowed: {', '.join(FUNCTIONS)})", node)
            if not arity[0] <= len(node.expressions) <= arity[1]:
                raise _fail(f"{name}() takes {arity[0]} to {arity[1]} arguments", node)
            return f"{name}({', '.join(e(a) for a in node.expressions)})"
        if isinstance(node, exp.Subquery | exp.Select | exp.Exists):
            raise _fail("subqueries are not supported", node)
        if isinstance(node, exp.Func):
            name = node.sql_name().lower()
            raise _fail(f"function {name}() is not allowed (allowed: {', '.join(FUNCTIONS)})", node)
        if isinstance(node, exp.Star):
            raise _fail("* is only allowed in the select list and count(*)", node)
        raise _fail(f"{node.key.upper()} is not supported in queries", node)
