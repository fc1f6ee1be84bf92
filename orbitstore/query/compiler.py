"""Our SQL dialect, compiled to SQLite over the view tables.

How it works
============

1. The text is tokenized and parsed by sqlglot (SQLite dialect). Anything that does not
   parse, more than one statement, or parentheses nested deeper than the limit is
   refused with :class:`~orbitstore.errors.QueryError` (line and column).
2. The one statement must be a ``SELECT``. Its syntax tree is then *re-emitted* by this
   module, node by node, from a whitelist: every node type we do not know how to emit is
   refused, so nothing the user writes reaches SQLite unless it was understood here
   (writes, DDL, ``ATTACH``, ``PRAGMA``, CTEs, subqueries, window functions, unknown
   functions, unknown tables and columns are all refused before anything runs).
3. Table names are databases (local names) from the :class:`Catalog`; each becomes its
   view table under a generated alias (``t0``, ``t1`` ...) restricted to its own log and to
   live rows. Column names become physical columns; every JSON field becomes
   ``json_extract(<json column>, '$.path')`` — the exact expression the documents view
   indexes, so declared indexes serve it.
4. Parameters (``?`` or ``:name``, not both) become positional ``?`` in the emitted SQL;
   values are always bound, never interpolated. Literals are re-quoted by us.
5. ``LIMIT`` is capped by :class:`QueryLimits`; a query without one gets
   ``LIMIT max_rows + 1`` so the executor can tell an oversized result from a full one.

The result, a :class:`CompiledQuery`, depends only on the SQL text, the catalog and the
limits, so :class:`QueryCompiler` keeps an LRU cache of them: a repeated query skips
sqlglot entirely.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from orbitstore.errors import QueryError
from orbitstore.query.catalog import Catalog, ColumnKind, ColumnSpec, Source
from orbitstore.query.limits import DEFAULT_QUERY_LIMITS, QueryLimits

_DIALECT = sqlglot.Dialect.get_or_raise("sqlite")
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
    exp.Trim: ("trim", ("this", "expression")),
    exp.GroupConcat: ("group_concat", ("this", "separator")),
}
_ANONYMOUS = {"total": (1, 1), "ltrim": (1, 2), "rtrim": (1, 2), "json_array_length": (1, 2)}
_BINARY: dict[type[exp.Expression], str] = {
    exp.EQ: "=", exp.NEQ: "<>", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<=",
    exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/", exp.Mod: "%", exp.DPipe: "||",
    exp.Like: "LIKE", exp.Glob: "GLOB", exp.Is: "IS",
}  # fmt: skip
_CASTS = {
    "INT": "INTEGER", "BIGINT": "INTEGER", "SMALLINT": "INTEGER", "TINYINT": "INTEGER",
    "DOUBLE": "REAL", "FLOAT": "REAL", "TEXT": "TEXT", "VARCHAR": "TEXT", "CHAR": "TEXT",
    "DECIMAL": "NUMERIC", "BLOB": "BLOB", "VARBINARY": "BLOB",
}  # fmt: skip
_SELECT_ARGS = {
    "expressions", "distinct", "from_", "joins", "where", "group", "having", "order",
    "limit", "offset",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """SQLite text plus what is needed to bind parameters and shape the rows."""

    sql: str
    columns: tuple[str, ...]
    #: Per output column: ("plain"|"json"|"jsontext"|"cid"|"bigint", index of the hidden
    #: ``json_type`` column for "json").
    decoders: tuple[tuple[str, int | None], ...]
    #: Per ``?`` in ``sql``: an int (user's positional index), a str (user's name).
    slots: tuple[int | str, ...]
    #: "none", "qmark" (``?``) or "named" (``:name``).
    paramstyle: str
    #: Catalog keys of the tables read, and generated alias -> table name.
    tables: tuple[str, ...]
    aliases: Mapping[str, str]
    #: Index into ``slots`` of a ``LIMIT ?`` whose bound value must be checked.
    limit_slot: int | None
    max_rows: int

    def bind(self, params: Sequence[Any] | Mapping[str, Any] | None) -> tuple[Any, ...]:
        """The positional values for ``sql``; QueryError when they do not fit."""
        if params is None:
            params = {} if self.paramstyle == "named" else ()
        if self.paramstyle == "named":
            if not isinstance(params, Mapping):
                raise QueryError("this query has :name parameters: pass a dict")
            missing = sorted({s for s in self.slots if isinstance(s, str)} - set(params))
            if missing:
                raise QueryError(f"no value for parameter(s) {', '.join(missing)}")
            values = [_param_value(params[s]) for s in self.slots if isinstance(s, str)]
        else:
            if isinstance(params, Mapping) or isinstance(params, str | bytes):
                if params:
                    raise QueryError("this query has ? parameters: pass a list or tuple")
                params = ()
            count = 1 + max((s for s in self.slots if isinstance(s, int)), default=-1)
            if len(params) != count:
                raise QueryError(f"the query has {count} ? parameter(s); {len(params)} given")
            values = [_param_value(params[s]) for s in self.slots if isinstance(s, int)]
        if self.limit_slot is not None:
            n = values[self.limit_slot]
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise QueryError("LIMIT takes a non-negative integer")
            if n > self.max_rows:
                raise QueryError(f"LIMIT {n} is above the maximum of {self.max_rows} rows")
        return tuple(values)


def _param_value(value: Any) -> Any:
    if value is None or isinstance(value, int | float | str | bytes):
        return int(value) if isinstance(value, bool) else value
    if type(value).__name__ == "Cid":
        return str(value)
    raise QueryError(f"a parameter must be None, bool, int, float, str or bytes, not {value!r:.60}")


# -- positions ---------------------------------------------------------------------------


def _pos(node: exp.Expression | None) -> dict[str, int | None]:
    if node is not None:
        for n in node.walk():
            meta = n.meta if isinstance(n, exp.Expression) else {}
            if "line" in meta:
                return {"line": int(meta["line"]), "column": int(meta["col"])}
    return {"line": None, "column": None}


def _fail(message: str, node: exp.Expression | None = None) -> QueryError:
    return QueryError(message, **_pos(node))


# -- parsing -----------------------------------------------------------------------------


def parse(sql: str, limits: QueryLimits) -> exp.Select:
    """Parse one SELECT, or raise QueryError."""
    if not isinstance(sql, str):
        raise QueryError("a query is SQL text")
    if len(sql) > limits.max_sql_length:
        raise QueryError(f"the query is {len(sql)} characters; the limit is {limits.max_sql_length}")
    if "\x00" in sql:
        raise QueryError("the query contains a NUL character")
    try:
        tokens = _DIALECT.tokenize(sql)
    except TokenError as exc:
        raise QueryError(f"cannot read the query: {exc}") from exc
    depth = 0
    for tok in tokens:
        if tok.token_type == TokenType.L_PAREN:
            depth += 1
            if depth > limits.max_depth:
                raise QueryError(
                    f"parentheses nested deeper than {limits.max_depth}",
                    line=tok.line,
                    column=tok.col,
                )
        elif tok.token_type == TokenType.R_PAREN:
            depth -= 1
    try:
        statements = [s for s in _DIALECT.parser().parse(tokens, sql) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        desc = str(first.get("description") or "syntax error")
        raise QueryError(
            f"syntax error: {desc}", line=first.get("line"), column=first.get("col")
        ) from exc
    except (TokenError, RecursionError) as exc:
        raise QueryError(f"cannot parse the query: {type(exc).__name__}") from exc
    if len(statements) != 1:
        raise QueryError(f"one statement per query ({len(statements)} given)")
    stmt = statements[0]
    if not isinstance(stmt, exp.Select):
        kind = stmt.key.upper() if isinstance(stmt, exp.Expression) else "this statement"
        raise _fail(f"{kind} is not allowed: queries are read-only SELECTs", stmt)
    _check_depth(stmt, limits.max_depth)
    return stmt


def _check_depth(root: exp.Expression, max_depth: int) -> None:
    stack: list[tuple[exp.Expression, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise _fail(f"expression nested deeper than {max_depth}", node)
        for child in node.iter_expressions():
            # a chain of one operator (a AND b AND c ...) counts as one level
            same = type(child) is type(node) and isinstance(node, exp.Connector | exp.DPipe)
            stack.append((child, depth if same else depth + 1))


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


class _Emitter:
    def __init__(self, catalog: Catalog, limits: QueryLimits) -> None:
        self.catalog = catalog
        self.limits = limits
        self.tables: list[_Table] = []
        self.slots: list[int | str] = []
        self.positional = 0
        self.style = "none"
        self.out_aliases: dict[str, str] = {}
        self.limit_slot: int | None = None

    # -- statement ---------------------------------------------------------------------

    def select(self, sel: exp.Select) -> CompiledQuery:
        for key, value in sel.args.items():
            if key not in _SELECT_ARGS and value not in (None, False, [], ""):
                word = "WITH (CTEs)" if key == "with_" else key.rstrip("_").upper()
                raise _fail(f"{word} is not supported in queries", sel)
        distinct = sel.args.get("distinct")
        if distinct is not None and distinct.args.get("on") is not None:
            raise _fail("DISTINCT ON is not supported", distinct)
        from_ = sel.args.get("from_")
        joins = sel.args.get("joins") or []
        if from_ is not None:
            self._add_table(from_.this)
        elif joins:
            raise _fail("JOIN without FROM", joins[0])
        for join in joins:
            self._add_table(join.this)
        if len(self.tables) > self.limits.max_tables:
            raise _fail(f"more than {self.limits.max_tables} tables in one query", sel)

        columns, decoders, proj_sql, hidden = self._projections(sel.expressions)
        sql = ["SELECT "]
        if distinct is not None:
            sql.append("DISTINCT ")
        sql.append(", ".join(proj_sql + hidden))
        conditions = [self._visible(self.tables[0])] if self.tables else []
        where = sel.args.get("where")
        if where is not None:
            conditions.append(self.expr(where.this))
        if self.tables:
            first = self.tables[0]
            src = first.source.kind.source.format(t=first.alias, log=first.source.log_id)
            index = self._pick_index(where.this) if where is not None else None
            if index is not None:
                src += f" INDEXED BY {_ident(index)}"
            sql.append(" FROM " + src)
            for join, table in zip(joins, self.tables[1:], strict=True):
                sql.append(self._join(join, table))
        if conditions:
            sql.append(" WHERE " + " AND ".join(f"({c})" for c in conditions))
        group = sel.args.get("group")
        if group is not None:
            for key, value in group.args.items():
                if key != "expressions" and value not in (None, False, []):
                    raise _fail(f"GROUP BY {key.upper()} is not supported", group)
            sql.append(" GROUP BY " + ", ".join(self.expr(e, outer=True) for e in group.expressions))
        having = sel.args.get("having")
        if having is not None:
            sql.append(" HAVING " + self.expr(having.this, outer=True))
        order = sel.args.get("order")
        if order is not None:
            sql.append(" ORDER BY " + ", ".join(self._ordered(o) for o in order.expressions))
        sql.append(self._limit(sel.args.get("limit"), sel.args.get("offset")))
        return CompiledQuery(
            sql="".join(sql),
            columns=tuple(columns),
            decoders=tuple(decoders),
            slots=tuple(self.slots),
            paramstyle=self.style,
            tables=tuple(dict.fromkeys(t.source.name.lower() for t in self.tables)),
            aliases={t.alias: t.source.name for t in self.tables},
            limit_slot=self.limit_slot,
            max_rows=self.limits.max_rows,
        )

    def _pick_index(self, where: exp.Expression) -> str | None:
        """A declared index to force for the first table, or None to let SQLite choose.

        Without ANALYZE statistics SQLite prefers the primary key prefix ``(log)`` over
        an expression index ``(log, json_extract(...))`` for equality, which turns an
        indexed lookup into a scan of the database. So when a top-level AND term
        compares an indexed path of the first table with a constant, we name the index
        (equality before ranges) - unless a term pins the primary key, which is better.
        """
        table = self.tables[0]
        if not table.source.indexes:
            return None
        conjuncts = list(where.flatten()) if isinstance(where, exp.And) else [where]
        best: tuple[int, str] | None = None
        for term in conjuncts:
            while isinstance(term, exp.Paren):
                term = term.this
            if isinstance(term, exp.Between | exp.In):
                operands = [term.this]
                consts = [term.args.get("low"), term.args.get("high"), *term.expressions]
                rank = 1 if isinstance(term, exp.Between) else 0
            elif isinstance(term, exp.EQ | exp.GT | exp.GTE | exp.LT | exp.LTE):
                operands = [term.this, term.expression]
                consts = operands
                rank = 0 if isinstance(term, exp.EQ) else 1
            else:
                continue
            for operand in operands:
                ref = self._ref_or_none(operand)
                if ref is None or ref.table is not table:
                    continue
                others = [c for c in consts if c is not None and c is not operand]
                if not others or not all(self._constant(c) for c in others):
                    continue
                if ref.column.name == table.source.kind.key_column and rank == 0:
                    return None
                if ref.column.kind != ColumnKind.JSON:
                    continue
                name = table.source.index_for(path_text(ref.path))
                if name is not None and (best is None or rank < best[0]):
                    best = (rank, name)
        return best[1] if best is not None else None

    @staticmethod
    def _constant(node: exp.Expression) -> bool:
        while isinstance(node, exp.Paren | exp.Neg):
            node = node.this
        return isinstance(node, exp.Literal | exp.Placeholder | exp.Boolean)

    def _add_table(self, node: exp.Expression) -> None:
        if isinstance(node, exp.Subquery | exp.Select):
            raise _fail("subqueries are not supported", node)
        if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
            raise _fail(f"{node.key.upper()} cannot be a table here", node)
        for key, value in node.args.items():
            if key not in ("this", "alias") and value not in (None, False, []):
                raise _fail(f"table {key} ({node.sql(dialect='sqlite')}) is not supported", node)
        name = node.this.name
        source = self.catalog.get(name)
        if source is None:
            known = ", ".join(sorted(self.catalog.sources)) or "none"
            raise _fail(f"unknown table {name!r} (tables here: {known})", node)
        alias_node = node.args.get("alias")
        alias = name
        if alias_node is not None:
            if alias_node.args.get("columns"):
                raise _fail("column aliases on a table are not supported", node)
            alias = alias_node.name
        if any(t.name == alias.lower() for t in self.tables):
            raise _fail(f"table name {alias!r} is used twice; give one an alias", node)
        self.tables.append(_Table(f"t{len(self.tables)}", alias.lower(), source))

    def _visible(self, table: _Table) -> str:
        return table.source.kind.visible.format(t=table.alias, log=table.source.log_id)

    def _join(self, join: exp.Join, table: _Table) -> str:
        for key, value in join.args.items():
            if key not in ("this", "on", "side", "kind") and value not in (None, False, [], ""):
                raise _fail(f"JOIN {key.upper()} is not supported (write JOIN ... ON)", join)
        side = (join.args.get("side") or "").upper()
        kind = (join.args.get("kind") or "").upper()
        if side not in ("", "LEFT") or kind not in ("", "INNER", "OUTER", "CROSS"):
            raise _fail(f"{side} {kind} JOIN is not supported (use JOIN or LEFT JOIN)", join)
        on = [self._visible(table)]
        if join.args.get("on") is not None:
            on.append(self.expr(join.args["on"]))
        src = table.source.kind.source.format(t=table.alias, log=table.source.log_id)
        word = " LEFT JOIN " if side == "LEFT" else " JOIN "
        return word + src + " ON " + " AND ".join(f"({c})" for c in on)

    def _projections(
        self, items: Sequence[exp.Expression]
    ) -> tuple[list[str], list[tuple[str, int | None]], list[str], list[str]]:
        names: list[str] = []
        decoders: list[tuple[str, int | None]] = []
        sqls: list[str] = []
        hidden: list[str] = []
        n_out = sum(len(self._star_refs(i)) if self._is_star(i) else 1 for i in items)

        def add(name: str, sql: str, decoder: str, type_sql: str | None = None) -> None:
            base, k = name, 2
            while name in names:
                name, k = f"{base}_{k}", k + 1
            names.append(name)
            sqls.append(sql)
            if type_sql is not None:
                decoders.append((decoder, n_out + len(hidden)))
                hidden.append(type_sql)
            else:
                decoders.append((decoder, None))

        for item in items:
            if self._is_star(item):
                multi = len(self.tables) > 1
                for ref in self._star_refs(item):
                    label = f"{ref.table.name}.{ref.column.name}" if multi else ref.column.name
                    sql, dec, typ = self._output(ref)
                    add(label, sql, dec, typ)
                continue
            alias = None
            node = item
            if isinstance(item, exp.Alias):
                alias, node = item.alias, item.this
            ref = self._ref_or_none(node)
            if ref is not None:
                sql, dec, typ = self._output(ref)
                label = alias or ".".join([ref.column.name, *(str(p) for p in ref.path)])
            elif isinstance(node, exp.JSONExtract | exp.JSONExtractScalar):
                target, path = self._json_target(node)
                sql = f"json_extract({target}, {_quote(path)})"
                dec, typ = "json", f"json_type({target}, {_quote(path)})"
                label = alias or node.sql(dialect="sqlite", normalize_functions="lower")
            else:
                sql, dec, typ = self.expr(node), "plain", None
                label = alias or node.sql(dialect="sqlite", normalize_functions="lower")
            if alias is not None:
                self.out_aliases[alias.lower()] = _ident(alias)
                sql += f" AS {_ident(alias)}"
            add(label, sql, dec, typ)
        return names, decoders, sqls, hidden

    @staticmethod
    def _is_star(item: exp.Expression) -> bool:
        return isinstance(item, exp.Star) or (
            isinstance(item, exp.Column) and isinstance(item.this, exp.Star)
        )

    def _star_refs(self, item: exp.Expression) -> list[_Ref]:
        tables = self.tables
        if isinstance(item, exp.Column) and item.table:
            tables = [t for t in self.tables if t.name == item.table.lower()]
            if not tables:
                raise _fail(f"unknown table {item.table!r} in {item.table}.*", item)
        if not tables:
            raise _fail("SELECT * needs a FROM", item)
        return [_Ref(t, c, ()) for t in tables for c in t.source.kind.columns]

    def _output(self, ref: _Ref) -> tuple[str, str, str | None]:
        """SQL for a column reference in the select list, its decoder and type SQL."""
        kind = ref.column.kind
        if kind == ColumnKind.JSON:
            if not ref.path:
                return ref.physical, "jsontext", None
            p = _quote(path_text(ref.path))
            return (
                f"json_extract({ref.physical}, {p})",
                "json",
                f"json_type({ref.physical}, {p})",
            )
        if kind == ColumnKind.CID:
            return ref.physical, "cid", None
        if kind == ColumnKind.BIGINT:
            return ref.physical, "bigint", None
        return ref.physical, "plain", None

    def _ordered(self, node: exp.Expression) -> str:
        if not isinstance(node, exp.Ordered):
            return self.expr(node, outer=True)
        sql = self.expr(node.this, outer=True)
        desc = bool(node.args.get("desc"))
        nulls_first = node.args.get("nulls_first")
        sql += " DESC" if desc else ""
        if nulls_first is not None and bool(nulls_first) == desc:
            sql += " NULLS FIRST" if nulls_first else " NULLS LAST"
        return sql

    def _limit(self, limit: exp.Expression | None, offset: exp.Expression | None) -> str:
        if limit is not None and limit.args.get("offset") is not None:
            offset = limit.args["offset"]
        cap = self.limits.max_rows
        if limit is None:
            text = f" LIMIT {cap + 1}"
        else:
            value = limit.args.get("expression")
            if isinstance(value, exp.Placeholder):
                text = " LIMIT " + self.expr(value)
                self.limit_slot = len(self.slots) - 1
            else:
                n = self._int_literal(value, "LIMIT")
                if n > cap:
                    raise _fail(f"LIMIT {n} is above the maximum of {cap} rows", limit)
                text = f" LIMIT {n}"
        if offset is not None:
            value = offset.args.get("expression") if isinstance(offset, exp.Offset) else offset
            if isinstance(value, exp.Placeholder):
                text += " OFFSET " + self.expr(value)
            else:
                text += f" OFFSET {self._int_literal(value, 'OFFSET')}"
        return text

    @staticmethod
    def _int_literal(value: Any, what: str) -> int:
        if isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit():
            return int(value.this)
        raise _fail(f"{what} takes a non-negative integer or a parameter", value)

    # -- references --------------------------------------------------------------------

    @staticmethod
    def _parts(node: exp.Expression) -> list[exp.Identifier] | None:
        if isinstance(node, exp.Column):
            if not isinstance(node.this, exp.Identifier):
                return None
            parts = [node.args.get(k) for k in ("catalog", "db", "table", "this")]
            return [p for p in parts if isinstance(p, exp.Identifier)]
        if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Identifier):
            head = _Emitter._parts(node.this)
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
        json_cols = {c.name for t in tables for c in t.source.kind.columns if c.kind == ColumnKind.JSON}
        if json_cols:
            hint = f"; JSON fields are paths on {' or '.join(sorted(json_cols))}, e.g. {sorted(json_cols)[0]}.{name}"
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
            if isinstance(part, exp.JSONPathKey) and isinstance(part.this, str):
                parts.append(part.this)
            elif isinstance(part, exp.JSONPathSubscript) and isinstance(part.this, int):
                parts.append(part.this)
            else:
                raise _fail("only keys and [n] indexes are allowed in a JSON path", node)
        return tuple(parts)

    # -- expressions -------------------------------------------------------------------

    def expr(self, node: exp.Expression, *, outer: bool = False) -> str:
        """Emit one expression. ``outer``: ORDER BY/GROUP BY/HAVING, where the names of
        output columns may be used."""
        e = lambda n: self.expr(n, outer=outer)  # noqa: E731
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
            return "(" + word.join(e(p) for p in node.flatten()) + ")"
        if isinstance(node, exp.Escape):
            like = node.this
            if not isinstance(like, exp.Like):
                raise _fail("ESCAPE goes with LIKE", node)
            return f"({e(like.this)} LIKE {e(like.expression)} ESCAPE {e(node.expression)})"
        op = _BINARY.get(type(node))
        if op is not None:
            self._only(node, ("this", "expression"))
            return f"({e(node.this)} {op} {e(node.expression)})"
        if isinstance(node, exp.Not):
            return f"(NOT {e(node.this)})"
        if isinstance(node, exp.Neg):
            return f"(-{e(node.this)})"
        if isinstance(node, exp.In):
            self._only(node, ("this", "expressions"))
            return f"({e(node.this)} IN ({', '.join(e(x) for x in node.expressions)}))"
        if isinstance(node, exp.Between):
            self._only(node, ("this", "low", "high"))
            return f"({e(node.this)} BETWEEN {e(node.args['low'])} AND {e(node.args['high'])})"
        if isinstance(node, exp.Case):
            self._only(node, ("this", "ifs", "default"))
            parts = ["CASE"]
            if node.this is not None:
                parts.append(e(node.this))
            for branch in node.args.get("ifs") or []:
                parts.append(f"WHEN {e(branch.this)} THEN {e(branch.args['true'])}")
            if node.args.get("default") is not None:
                parts.append(f"ELSE {e(node.args['default'])}")
            return " ".join([*parts, "END"])
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
        for key, value in node.args.items():
            if key not in allowed and isinstance(value, exp.Expression | list) and value:
                raise _fail(f"{node.key.upper()} with {key.upper()} is not supported", node)
            if isinstance(value, exp.Subquery | exp.Select) or (
                isinstance(value, list) and any(isinstance(v, exp.Subquery | exp.Select) for v in value)
            ):
                raise _fail("subqueries are not supported", node)

    def _placeholder(self, node: exp.Placeholder) -> str:
        name = node.args.get("this") or ""
        if not isinstance(name, str):
            raise _fail("unsupported parameter", node)
        if name and not name.isdigit():
            style, slot = "named", name
        elif name:
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
        e = lambda n: self.expr(n, outer=outer)  # noqa: E731
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
            target, path = self._json_target(node)
            return f"json_extract({target}, {_quote(path)})"
        if isinstance(node, exp.JSONType):
            path_node = node.args.get("expression")
            if path_node is None:
                path: tuple[str | int, ...] = ()
            elif isinstance(path_node, exp.Literal) and path_node.is_string:
                path = parse_path(path_node.this, path_node)
            else:
                raise _fail("a JSON path must be a string literal like '$.a.b'", node)
            ref = self._ref_or_none(node.this)
            if ref is not None and ref.column.kind == ColumnKind.JSON:
                return f"json_type({ref.physical}, {_quote(path_text(ref.path + path))})"
            return f"json_type({e(node.this)}, {_quote(path_text(path))})"
        spec = _SIMPLE_FUNCS.get(type(node))
        if spec is not None:
            name, keys = spec
            self._only(node, keys)
            args = [node.args.get(k) for k in keys]
            while args and args[-1] is None:
                args.pop()
            if any(a is None for a in args):
                raise _fail(f"{name}() is missing an argument", node)
            if isinstance(node, exp.Sum | exp.Avg | exp.GroupConcat) and isinstance(
                node.this, exp.Distinct
            ):
                inner = node.this.expressions
                return f"{name}(DISTINCT {e(inner[0])})"
            return f"{name}({', '.join(e(a) for a in args if a is not None)})"
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


def compile_select(sql: str, catalog: Catalog, limits: QueryLimits = DEFAULT_QUERY_LIMITS) -> CompiledQuery:
    """Parse, check and compile one query (no cache)."""
    return _Emitter(catalog, limits).select(parse(sql, limits))


class QueryCompiler:
    """:func:`compile_select` with an LRU cache keyed on (SQL text, catalog)."""

    def __init__(self, limits: QueryLimits = DEFAULT_QUERY_LIMITS) -> None:
        self.limits = limits
        self._cache: OrderedDict[tuple[str, tuple[object, ...]], CompiledQuery] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def compile(self, sql: str, catalog: Catalog) -> CompiledQuery:
        key = (sql, catalog.key)
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return found
        self.misses += 1
        compiled = compile_select(sql, catalog, self.limits)
        self._cache[key] = compiled
        if len(self._cache) > self.limits.cache_size:
            self._cache.popitem(last=False)
        return compiled
