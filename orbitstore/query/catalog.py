"""What a query can name: user-facing tables (databases by local name) and, for each
database type, the columns it exposes and how they map onto the view tables.

The physical view tables are fixed (see ``docs/query.md``)::

    view_kv(log, key, value, json, clock, writer, cid, idx, deleted, arrival, conflicts,
            conflicts_json)
    view_feed(log, clock, writer, cid, idx, ts, value, json)
    view_documents(log, id, doc, value, clock, writer, cid, deleted, arrival, conflicts,
                   conflicts_json)
    view_counter(log, total)
    view_ydoc_roots(log, name, text, fields)     (in snapshots only, see node/asof.py)

A ``log`` table reads the node's ``entries`` and ``blocks`` (its ts and payload decoded
from each block by SQL functions of the executor).

keyvalue and documents tables have a hidden ``_conflicts`` column (JSON: the concurrent
writes that lost, NULL when there are none): selectable by name, left out of ``*``.

Every physical reference is qualified by the table alias the compiler gives each table
(``t0``, ``t1`` ...), and every table is restricted to its own log (``log = <id>``) and to
live rows (``deleted = 0``) before the user's conditions are looked at.

A source with a ``schema`` reads the view tables of that attached schema instead of the
node's own: an AS OF snapshot (same tables, same columns, its own log id), so the same
compiler serves time travel with nothing but the table name changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from orbitstore.errors import InvalidValueError


class ColumnKind(Enum):
    PLAIN = "plain"  # a SQL value as stored
    JSON = "json"  # JSON text: exposed as its value, JSON paths go into it
    CID = "cid"  # binary CID, exposed as its text form
    BIGINT = "bigint"  # integer stored as text (may exceed 64 bits)


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    kind: ColumnKind
    #: SQL over the alias ``{t}``: the physical column(s).
    physical: str
    #: Left out of ``SELECT *`` (named explicitly only), like SQLite's ``rowid``.
    hidden: bool = False


@dataclass(frozen=True, slots=True)
class TableKind:
    type_name: str
    #: SQL for the FROM item, with ``{t}`` the alias, ``{log}`` the log id and ``{s}``
    #: the schema prefix of the view table (empty, or ``"asof_3".``).
    source: str
    #: Condition making only this log's live rows visible.
    visible: str
    columns: tuple[ColumnSpec, ...]
    #: Physical table whose expression indexes serve JSON paths, and its key column.
    table: str | None = None
    key_column: str | None = None

    def column(self, name: str) -> ColumnSpec | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None


def _c(name: str, kind: ColumnKind, physical: str, *, hidden: bool = False) -> ColumnSpec:
    return ColumnSpec(name, kind, physical, hidden)


# The concurrent writes that lost to the visible value (keyvalue, documents).
_CONFLICTS: Final = "_conflicts"


_P, _J, _C, _B = ColumnKind.PLAIN, ColumnKind.JSON, ColumnKind.CID, ColumnKind.BIGINT

KINDS: Final[Mapping[str, TableKind]] = {
    "keyvalue": TableKind(
        "keyvalue",
        "{s}view_kv AS {t}",
        "{t}.log = {log} AND {t}.deleted = 0",
        (
            _c("key", _P, "{t}.key"),
            _c("value", _J, "{t}.json"),
            _c("writer", _P, "{t}.writer"),
            _c("clock", _P, "{t}.clock"),
            _c("cid", _C, "{t}.cid"),
            _c(_CONFLICTS, ColumnKind.JSON, "{t}.conflicts_json", hidden=True),
        ),
        "view_kv",
        "key",
    ),
    "documents": TableKind(
        "documents",
        "{s}view_documents AS {t}",
        "{t}.log = {log} AND {t}.deleted = 0",
        (
            _c("id", _P, "{t}.id"),
            _c("doc", _J, "{t}.doc"),
            _c("writer", _P, "{t}.writer"),
            _c("clock", _P, "{t}.clock"),
            _c("cid", _C, "{t}.cid"),
            _c(_CONFLICTS, ColumnKind.JSON, "{t}.conflicts_json", hidden=True),
        ),
        "view_documents",
        "id",
    ),
    "feed": TableKind(
        "feed",
        "{s}view_feed AS {t}",
        "{t}.log = {log}",
        (
            _c("id", _P, "(os_cid({t}.cid) || iif({t}.idx = 0, '', '/' || {t}.idx))"),
            _c("cid", _C, "{t}.cid"),
            _c("writer", _P, "{t}.writer"),
            _c("clock", _P, "{t}.clock"),
            _c("ts", _P, "{t}.ts"),
            _c("value", _J, "{t}.json"),
        ),
        "view_feed",
    ),
    "log": TableKind(
        "log",
        # Read from the log itself (no view table): each entry's ts and payload are
        # decoded from its block when a query reads them.
        "(SELECT e.cid AS cid, e.writer AS writer, e.clock AS clock,"
        " os_entry_ts(b.data) AS ts, os_entry_payload(b.data) AS payload"
        " FROM {s}entries AS e JOIN {s}blocks AS b ON b.id = e.block WHERE e.log = {log})"
        " AS {t}",
        "1",
        (
            _c("cid", _C, "{t}.cid"),
            _c("writer", _P, "{t}.writer"),
            _c("clock", _P, "{t}.clock"),
            _c("ts", _P, "{t}.ts"),
            _c("payload", _J, "{t}.payload"),
        ),
    ),
    "ydoc": TableKind(
        "ydoc",
        "{s}view_ydoc_roots AS {t}",
        "{t}.log = {log}",
        (
            _c("name", _P, "{t}.name"),
            _c("text", _P, "{t}.text"),
            _c("fields", _J, "{t}.fields"),
        ),
    ),
    "counter": TableKind(
        "counter",
        # Always one row, also before the first increment.
        "(SELECT coalesce((SELECT total FROM {s}view_counter WHERE log = {log}), '0') AS total)"
        " AS {t}",
        "1",
        (_c("value", _B, "{t}.total"),),
    ),
}

_NAME = re.compile(r"[^\x00]{1,200}")
_SCHEMA = re.compile(r"[a-z][a-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class Source:
    """One queryable database: its local ``name``, its ``type``, its log id, and the
    declared expression indexes on its view table as (JSON path, index name) pairs.
    ``schema`` names the attached schema of an AS OF snapshot (None: the live view)."""

    name: str
    type_name: str
    log_id: int
    indexes: tuple[tuple[str, str], ...] = ()
    schema: str | None = None

    def __post_init__(self) -> None:
        if self.schema is not None and not _SCHEMA.fullmatch(self.schema):
            raise InvalidValueError(f"{self.schema!r} cannot name a schema")

    def from_sql(self, alias: str) -> str:
        """The FROM item of this source under ``alias``."""
        prefix = "" if self.schema is None else f'"{self.schema}".'
        return self.kind.source.format(t=alias, log=self.log_id, s=prefix)

    def index_for(self, path: str) -> str | None:
        for p, name in self.indexes:
            if p == path:
                return name
        return None

    @property
    def kind(self) -> TableKind:
        return KINDS[self.type_name]


@dataclass(frozen=True, slots=True)
class Catalog:
    """The tables a query may name (case-insensitive, as SQL names are)."""

    sources: Mapping[str, Source]
    key: tuple[object, ...] = field(compare=False)

    @classmethod
    def of(cls, named: Iterable[tuple[str, Source]]) -> Catalog:
        sources: dict[str, Source] = {}
        for name, source in named:
            if not _NAME.fullmatch(name):
                raise InvalidValueError(f"{name!r} cannot name a table")
            if source.type_name not in KINDS:
                continue  # a type without a SQL table
            sources[name.lower()] = source
        key = tuple(
            sorted(
                (n, s.type_name, s.log_id, s.indexes, s.schema or "") for n, s in sources.items()
            )
        )
        return cls(sources, key)

    def get(self, name: str) -> Source | None:
        return self.sources.get(name.lower())


def queryable(type_name: str) -> bool:
    return type_name in KINDS
