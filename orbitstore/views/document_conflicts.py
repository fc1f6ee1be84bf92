"""Conflicts of the documents view: the maximal writes of each document (document mode)
or of each field (field mode), kept by rule M of :mod:`orbitstore.views.causal`.

Document mode: a document is one register. Its members are the puts and deletes of
entries (the last such op on the id in each entry); the row holds the winner, the
bookkeeping holds the losing members.

Field mode: a field ``F`` is touched by the patches that set or unset it and by every
put and delete of the document (a put clears the fields it does not hold). Its conflicts
are the maximal ops touching ``F``, minus the greatest. The bookkeeping keeps ``C``, the
maximal puts and deletes, and ``P[F]``, the maximal ops touching ``F`` for each field
where that set is not simply ``C``:

* a put or delete ``c`` joins ``C`` and every ``P[F]`` (after rule M removed what ``c``
  has seen);
* a patch ``q`` of ``F`` joins ``P[F]`` (starting from ``C`` when ``F`` has no entry);
* a ``P[F]`` equal to ``C`` is dropped (it is implied), so a document that is only ever
  put keeps one member.

Values are not stored twice: a member names its entry and op index, and its value is
read back from the log when the conflicts are rendered (only when there are conflicts).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.views.base import Conflict
from orbitstore.views.causal import (
    EntryLookup,
    Member,
    Step,
    decode_members,
    encode_members,
    newest_first,
    prune,
)
from orbitstore.views.document_ops import _Del, _Op, _Patch, _Put, parse_ops

# Field mode bookkeeping: (C, P).
Fields = tuple[list[Member], dict[str, list[Member]]]


class DocumentConflicts:
    """Keeps and renders the conflict bookkeeping of one documents view."""

    def __init__(self, id_field: str, lookup: EntryLookup) -> None:
        self._id_field = id_field
        self._lookup = lookup

    # -- document mode ------------------------------------------------------------------

    @staticmethod
    def decode_losers(blob: bytes | None) -> list[Member]:
        return [] if blob is None else decode_members(codec.decode(blob))

    @staticmethod
    def encode_losers(losers: Sequence[Member]) -> bytes | None:
        return codec.encode(encode_members(losers)) if losers else None

    def render_documents(self, doc_id: str, members: Iterable[Member]) -> tuple[Conflict, ...]:
        out: list[Conflict] = []
        for m in members:
            entry, op = self._document_op(m, doc_id)
            if entry is None:  # pragma: no cover - members are applied entries
                continue
            doc = op.doc if isinstance(op, _Put) else None
            out.append(_conflict(entry, doc, deleted=doc is None))
        return tuple(out)

    def _document_op(self, m: Member, doc_id: str) -> tuple[Entry | None, _Op | None]:
        entry = self._lookup(Cid(m.cid))
        if entry is None:  # pragma: no cover
            return None, None
        found: _Op | None = None
        for op in parse_ops(entry.payload, self._id_field):
            if isinstance(op, _Put | _Del) and op.id == doc_id:
                found = op
        return entry, found

    # -- field mode ---------------------------------------------------------------------

    @staticmethod
    def decode_fields(blob: bytes | None) -> Fields:
        if blob is None:
            return [], {}
        raw = codec.decode(blob)
        assert isinstance(raw, dict)
        fields = raw["f"]
        assert isinstance(fields, dict)
        return decode_members(raw["c"]), {f: decode_members(v) for f, v in fields.items()}

    @staticmethod
    def encode_fields(state: Fields) -> bytes:
        clears, fields = state
        return codec.encode(
            {
                "c": encode_members(clears),
                "f": {f: encode_members(m) for f, m in sorted(fields.items())},
            }
        )

    @staticmethod
    def field_write(state: Fields, step: Step, op: _Op, index: int) -> Fields:
        """Rule M for one field-mode op (see the module docstring)."""
        clears, fields = state
        new = step.member(index)
        if isinstance(op, _Put | _Del):
            clears = [*prune(clears, step), new]
            fields = {f: [*prune(m, step), new] for f, m in fields.items()}
        else:
            assert isinstance(op, _Patch)
            fields = dict(fields)
            for name in (*op.set, *op.unset):
                fields[name] = [*prune(fields.get(name, clears), step), new]
        implied = set(clears)
        return clears, {f: m for f, m in fields.items() if set(m) != implied}

    def render_fields(self, state: Fields) -> tuple[Conflict, ...]:
        clears, fields = state
        ops: dict[Member, tuple[Entry, _Op] | None] = {}

        def op_of(m: Member) -> tuple[Entry, _Op] | None:
            if m not in ops:
                entry = self._lookup(Cid(m.cid))
                parsed = [] if entry is None else parse_ops(entry.payload, self._id_field)
                index = m.stamp[3]
                ops[m] = None if entry is None or index >= len(parsed) else (entry, parsed[index])
            return ops[m]

        per_field: dict[str, list[Member]] = {f: m for f, m in fields.items() if len(m) > 1}
        if len(clears) > 1:
            names: set[str] = set()
            for m in clears:
                got = op_of(m)
                if got is not None and isinstance(got[1], _Put):
                    names.update(got[1].doc)
            for name in names - set(fields):
                per_field[name] = clears
        per_field.pop(self._id_field, None)
        out: list[Conflict] = []
        for name in sorted(per_field):
            members = per_field[name]
            top = max(members, key=lambda m: m.stamp)
            for m in newest_first(x for x in members if x is not top):
                got = op_of(m)
                if got is None:  # pragma: no cover - members are applied ops
                    continue
                present, value = _field_value(got[1], name)
                out.append(_conflict(got[0], value, deleted=not present, field=name))
        return tuple(out)


def _field_value(op: _Op, name: str) -> tuple[bool, Any]:
    if isinstance(op, _Put):
        return (name in op.doc, op.doc.get(name))
    if isinstance(op, _Patch) and name in op.set:
        return True, op.set[name]
    return False, None


def _conflict(entry: Entry, value: Any, *, deleted: bool, field: str | None = None) -> Conflict:
    return Conflict(
        value=None if deleted else value,
        deleted=deleted,
        cid=entry.cid,
        writer=entry.writer,
        clock=entry.clock,
        field=field,
    )
