"""What a query hands back: :class:`QueryResult` and :class:`QueryPlan`, and the
decoding of stored JSON (DAG-JSON conventions) into Python values."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from orbitstore.core.cid import Cid
from orbitstore.errors import InvalidCidError, StorageCorruptedError


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Columns and rows of one query. Iterating yields one ``dict`` per row."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.dicts())

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True, slots=True)
class PlanStep:
    """How SQLite reaches the rows of one table.

    ``access`` is ``"index"`` (a declared index: ``index`` names it, ``path`` is the JSON
    path it covers), ``"key"`` (the primary key: ``key``/``id`` lookups), ``"scan"``
    (every row of the database), or ``"sort"`` (a temporary B-tree for ORDER BY / GROUP
    BY / DISTINCT). ``detail`` is SQLite's own line.
    """

    table: str | None
    access: str
    index: str | None
    path: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class QueryPlan:
    steps: tuple[PlanStep, ...]
    sql: str

    @property
    def uses_index(self) -> bool:
        return any(s.access == "index" for s in self.steps)

    @property
    def indexes(self) -> tuple[str, ...]:
        return tuple(s.index for s in self.steps if s.index is not None)


def from_dag_json(value: Any) -> Any:
    """Turn parsed DAG-JSON into our data model: ``{"/": "<cid>"}`` becomes a
    :class:`Cid`, ``{"/": {"bytes": "<base64>"}}`` becomes ``bytes``."""
    if isinstance(value, dict):
        if len(value) == 1 and "/" in value:
            inner = value["/"]
            try:
                if isinstance(inner, str):
                    return Cid.parse(inner)
                if isinstance(inner, dict) and list(inner) == ["bytes"]:
                    b64 = inner["bytes"]
                    if isinstance(b64, str):
                        return base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
            except (InvalidCidError, binascii.Error, ValueError):
                pass  # an ordinary map that happens to have a "/" key
        return {k: from_dag_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dag_json(v) for v in value]
    return value


def decode_json_text(text: Any) -> Any:
    """Decode JSON text from a view table (None stays None)."""
    if text is None:
        return None
    try:
        return from_dag_json(json.loads(text))
    except (TypeError, ValueError) as exc:
        raise StorageCorruptedError(f"a view holds JSON that does not parse: {exc}") from exc


def decode_json_value(raw: Any, json_text: Any) -> Any:
    """Decode a ``json_extract`` result from the JSON text of the same path (``col -> p``),
    which is exact where ``json_extract``'s SQL value is not (booleans, objects, strings
    holding NUL)."""
    if json_text is None:
        return raw
    return decode_json_text(json_text)


def shape_rows(
    raw_rows: Sequence[Sequence[Any]], decoders: Sequence[tuple[str, int | None]]
) -> tuple[tuple[Any, ...], ...]:
    """Apply per-column decoders (see :class:`orbitstore.query.compiler.CompiledQuery`)."""
    out: list[tuple[Any, ...]] = []
    for raw in raw_rows:
        row: list[Any] = []
        for i, (how, extra) in enumerate(decoders):
            v = raw[i]
            if how == "plain":
                row.append(v)
            elif how == "json":
                row.append(decode_json_value(v, raw[extra] if extra is not None else None))
            elif how == "jsontext":
                row.append(decode_json_text(v))
            elif how == "bigint":
                row.append(None if v is None else int(v))
            elif how == "cid":
                row.append(None if v is None else str(Cid(bytes(v))))
            else:  # pragma: no cover - compiler only emits the kinds above
                raise AssertionError(how)
        out.append(tuple(row))
    return tuple(out)
