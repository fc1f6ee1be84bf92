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

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import TokenType, exp
from sqlglot.errors import ParseError, TokenError

from orbitstore.core.cid import Cid
from orbitstore.core.codec import describe
from orbitstore.errors import QueryError, QueryLimitError
from orbitstore.query.catalog import Catalog, ColumnKind
from orbitstore.query.expressions import (
    ExpressionEmitter,
    _fail,
    _ident,
    _quote,
    _Ref,
    _Table,
    parse_path,
    path_text,
)
from orbitstore.query.limits import DEFAULT_QUERY_LIMITS, QueryLimits

__all__ = ["CompiledQuery", "QueryCompiler", "compile_select", "parse", "parse_path", "path_text"]

_DIALECT = sqlglot.Dialect.get_or_raise("sqlite")
# Operators that nest without parentheses (NOT NOT NOT ... x, - - - x).
# (TILDE was spelled TILDA before sqlglot 26.)
_PREFIX_OPS = frozenset(
    getattr(TokenType, name)
    for name in ("NOT", "DASH", "PLUS", "TILDE", "TILDA")
    if hasattr(TokenType, name)
)
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
    #: column for "json" that holds the same path as JSON text: ``col -> '$.p'``. The value
    #: is decoded from that text, because SQLite 3.40's ``json_extract`` truncates strings
    #: at an embedded NUL; the visible ``json_extract`` column keeps SQL semantics for
    #: ORDER BY and comparisons on the alias.)
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
            if isinstance(params, Mapping | str | bytes):
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
                raise QueryLimitError(f"LIMIT {n} is above the maximum of {self.max_rows} rows")
        return tuple(values)


def _param_value(value: Any) -> Any:
    if value is None or isinstance(value, int | float | str | bytes):
        return int(value) if isinstance(value, bool) else value
    if isinstance(value, Cid):
        return str(value)
    raise QueryError(
        f"a parameter must be None, bool, int, float, str or bytes, not {describe(value)}"
    )


# -- parsing -----------------------------------------------------------------------------


def parse(sql: str, limits: QueryLimits) -> exp.Select:
    """Parse one SELECT, or raise QueryError."""
    if not isinstance(sql, str):
        raise QueryError("a query is SQL text")
    if len(sql) > limits.max_sql_length:
        raise QueryError(
            f"the query is {len(sql)} characters; the limit is {limits.max_sql_length}"
        )
    if "\x00" in sql:
        raise QueryError("the query contains a NUL character")
    try:
        tokens = _DIALECT.tokenize(sql)
    except TokenError as exc:
        raise QueryError(f"cannot read the query: {exc}") from exc
    depth = prefix = 0
    for tok in tokens:
        kind = tok.token_type
        prefix = prefix + 1 if kind in _PREFIX_OPS else 0
        if kind == TokenType.L_PAREN:
            depth += 1
        elif kind == TokenType.R_PAREN:
            depth -= 1
        if depth > limits.max_depth or prefix > limits.max_depth:
            raise QueryError(
                f"expression nested deeper than {limits.max_depth}", line=tok.line, column=tok.col
            )
    _check_start(tokens)
    try:
        statements = [s for s in _DIALECT.parser().parse(tokens, sql) if s is not None]
    except ParseError as exc:
        raise _syntax_error(tokens, exc) from exc
    except TokenError as exc:
        raise QueryError(f"cannot parse the query: {exc}") from exc
    except RecursionError as exc:
        raise QueryError("expression nested too deeply for the parser") from exc
    if len(statements) != 1:
        raise QueryError(f"one statement per query ({len(statements)} given)")
    stmt = statements[0]
    if not isinstance(stmt, exp.Select):
        if isinstance(stmt, exp.Expression):
            word = stmt.key.upper()
            raise _fail(f"{word} is not allowed: queries are read-only SELECTs", stmt)
        raise QueryError("only SELECT is allowed: queries are read-only")
    _check_depth(stmt, 2 * limits.max_depth)  # tree levels: ~2 per nesting level
    return stmt


# A statement starts with a keyword. A word, a number or a string in its place is most
# often a misspelt SELECT; other keywords (DELETE, ATTACH, ...) are refused by name after
# parsing ("DELETE is not allowed"), which reads better than a syntax error.
_NOT_A_START = frozenset({TokenType.VAR, TokenType.IDENTIFIER, TokenType.NUMBER, TokenType.STRING})


def _near(sql_token: Any) -> str:
    text = str(sql_token.text)
    return text if len(text) <= 40 else text[:37] + "..."


def _syntax(token: Any, detail: str) -> QueryError:
    """A syntax error in our words: where, near which text, and what was expected."""
    line, column = token.line, token.col - len(str(token.text)) + 1
    return QueryError(
        f"syntax error at line {line}, column {column} near {_near(token)!r}: {detail}",
        line=line,
        column=column,
        positioned=True,
    )


def _check_start(tokens: Sequence[Any]) -> None:
    if tokens and tokens[0].token_type in _NOT_A_START:
        raise _syntax(tokens[0], "a query starts with SELECT (or WITH)")


def _syntax_error(tokens: Sequence[Any], exc: ParseError) -> QueryError:
    """Translate sqlglot's ParseError: never show its internal class names."""
    first = exc.errors[0] if exc.errors else {}
    description = str(first.get("description") or "")
    line, col = first.get("line"), first.get("col")
    index = next(
        (i for i, t in enumerate(tokens) if (t.line, t.col) == (line, col)),
        len(tokens) - 1,
    )
    if not tokens:
        return QueryError("syntax error: the query is empty")
    token = tokens[max(index, 0)]
    if description.startswith("Expecting "):
        return _syntax(token, "expected " + repr(description.removeprefix("Expecting ").strip()))
    if description.startswith("Required keyword"):
        clause = description.rsplit(".", 1)[-1].strip("'>").upper()
        what = clause if clause in _CLAUSES else "expression"
        return _syntax(token, f"the {what} is incomplete")
    # "Invalid expression / Unexpected token" and the rest: an unknown word just before
    # the place the parser stopped is most often a misspelt keyword (SELECT * FRM t).
    if index > 0 and tokens[index - 1].token_type == TokenType.VAR:
        token = tokens[index - 1]
    return _syntax(token, "unexpected text")


_CLAUSES = frozenset({"WHERE", "HAVING", "GROUP", "ORDER", "LIMIT", "JOIN", "FROM", "SELECT"})


def _check_depth(root: exp.Expression, max_depth: int) -> None:
    stack: list[tuple[exp.Expression, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise _fail(f"expression nested deeper than {max_depth}", node)
        for child in node.iter_expressions():
            # a chain of one operator (a AND b AND c ...) counts as one level
            same = type(child) is type(node) and isinstance(node, exp.Connector)
            stack.append((child, depth if same else depth + 1))


class _Emitter(ExpressionEmitter):
    text = ""  # the SQL as written (for positions)

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
            src = first.source.from_sql(first.alias)
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
            sql.append(
                " GROUP BY " + ", ".join(self.expr(e, outer=True) for e in group.expressions)
            )
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
        for conjunct in conjuncts:
            term = conjunct
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
                others = [c for c in consts if c is not None and c is not operand]
                if not others or not all(self._constant(c) for c in others):
                    continue
                path = self._indexable_path(operand, table)
                if path is None:
                    if rank == 0 and self._is_key(operand, table):
                        return None
                    continue
                name = table.source.index_for(path)
                if name is not None and (best is None or rank < best[0]):
                    best = (rank, name)
        return best[1] if best is not None else None

    def _indexable_path(self, node: exp.Expression, table: _Table) -> str | None:
        """The JSON path text if ``node`` is a JSON field of ``table``."""
        if isinstance(node, exp.JSONExtract | exp.JSONExtractScalar):
            if not isinstance(node.this, exp.Column | exp.Dot):
                return None  # (emitting anything else could register parameters twice)
            target, text = self._json_target(node)
            # Declared indexes are on the visible JSON column, never on hidden ones.
            json_cols = [
                c for c in table.source.kind.columns if c.kind == ColumnKind.JSON and not c.hidden
            ]
            if any(target == c.physical.format(t=table.alias) for c in json_cols):
                return text
            return None
        ref = self._ref_or_none(node)
        if ref is None or ref.table is not table or ref.column.kind != ColumnKind.JSON:
            return None
        if ref.column.hidden:
            return None
        return path_text(ref.path)

    def _is_key(self, node: exp.Expression, table: _Table) -> bool:
        ref = self._ref_or_none(node) if isinstance(node, exp.Column | exp.Dot) else None
        return (
            ref is not None
            and ref.table is table
            and ref.column.name == table.source.kind.key_column
        )

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
        src = table.source.from_sql(table.alias)
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
                start = item.args["alias"].meta.get("start")
                if isinstance(start, int) and self.text[start : start + 1] == "[":
                    raise _fail(
                        "[...] after a column is a SQLite alias, not an array index:"
                        " write value->>'$.list[0]'",
                        item,
                    )
            found = self._ref_or_none(node)
            if found is not None:
                sql, dec, typ = self._output(found)
                label = alias or ".".join([found.column.name, *(str(p) for p in found.path)])
            elif isinstance(node, exp.JSONExtract | exp.JSONExtractScalar):
                target, path = self._json_target(node)
                sql = f"json_extract({target}, {_quote(path)})"
                dec, typ = "json", f"{target} -> {_quote(path)}"
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
        return [_Ref(t, c, ()) for t in tables for c in t.source.kind.columns if not c.hidden]

    def _output(self, ref: _Ref) -> tuple[str, str, str | None]:
        """SQL for a column reference in the select list, its decoder and type SQL."""
        kind = ref.column.kind
        if kind == ColumnKind.JSON:
            if not ref.path:
                return ref.physical, "jsontext", None
            p = _quote(path_text(ref.path))
            return f"json_extract({ref.physical}, {p})", "json", f"{ref.physical} -> {p}"
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
                    raise _fail(
                        f"LIMIT {n} is above the maximum of {cap} rows", limit, QueryLimitError
                    )
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


def compile_select(
    sql: str, catalog: Catalog, limits: QueryLimits = DEFAULT_QUERY_LIMITS
) -> CompiledQuery:
    """Parse, check and compile one query (no cache)."""
    emitter = _Emitter(catalog, limits)
    emitter.text = sql
    return emitter.select(parse(sql, limits))


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
