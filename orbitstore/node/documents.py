"""The documents database handle."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from orbitstore.core.entry import Entry
from orbitstore.errors import InvalidValueError, NotFoundError
from orbitstore.node.database import Database
from orbitstore.views.base import Conflict
from orbitstore.views.documents import (
    DocumentsOptions,
    DocumentsView,
    WhereValue,
    batch_op,
    check_id,
    delete_op,
    patch_op,
    put_op,
)

if TYPE_CHECKING:
    from orbitstore.query.filters import Filter, SortSpec


class Documents(Database):
    """JSON-like documents keyed by an id field (``_id`` by default).

    Options live in the manifest's ``meta`` when the database is created::

        docs = await node.open("people", type="documents",
                               meta={"id_field": "_id", "merge": "field", "indexes": ["age"]})

    ``merge="document"`` (default): the last put or delete of a document wins whole.
    ``merge="field"``: every top-level field is its own last-writer-wins register, so
    concurrent patches of different fields both survive. See ``docs/types/documents.md``.

    Concurrent writes that lost (of a document, or in field mode of a field) are kept as
    conflicts (:meth:`conflicts`) until a write that has seen them supersedes them.
    """

    type_name: ClassVar[str] = "documents"

    @classmethod
    def check_meta(cls, meta: Mapping[str, Any]) -> None:
        DocumentsOptions.from_meta(meta)

    @property
    def _docs(self) -> DocumentsView:
        assert isinstance(self._view, DocumentsView)
        return self._view

    @property
    def options(self) -> DocumentsOptions:
        return self._docs.options

    @property
    def id_field(self) -> str:
        return self._docs.options.id_field

    # -- writing ---------------------------------------------------------------------------

    async def put(self, doc: Mapping[str, Any]) -> Entry:
        """Write a whole document (replacing what its id held). Returns the entry."""
        self._check()
        return await self.append(put_op(_as_dict(doc), id_field=self.id_field))

    async def put_many(self, docs: Iterable[Mapping[str, Any]]) -> Entry | None:
        """Write several documents in one entry (a batch: all or nothing; a later
        document with the same id wins). None when ``docs`` is empty."""
        self._check()
        ops = [put_op(_as_dict(d), id_field=self.id_field) for d in docs]
        if not ops:
            return None
        return await self.append(batch_op(ops))

    async def delete(self, doc_id: str) -> Entry:
        """Delete a document. Deleting an id this node has not seen still writes a
        tombstone, which hides any older write of it that arrives later."""
        self._check()
        return await self.append(delete_op(doc_id))

    async def patch(
        self,
        doc_id: str,
        *,
        set: Mapping[str, Any] | None = None,
        unset: Iterable[str] = (),
    ) -> Entry:
        """Set and remove top-level fields of an existing document.

        Field mode: written as field writes (concurrent patches of other fields survive).
        Document mode: written as a put of the document as it stands on this node, with
        the patch applied (the whole document is the register).
        NotFoundError when this node holds no such document.
        """
        self._check()
        op = patch_op(doc_id, set=set or {}, unset=unset, id_field=self.id_field)
        current = self._docs.get(check_id(doc_id))
        if current is None:
            raise NotFoundError(f"no document with id {doc_id!r:.80}")
        if self.options.merge == "field":
            return await self.append(op)
        for name in op["unset"]:
            current.pop(name, None)
        current.update(op["set"])
        return await self.append(put_op(current, id_field=self.id_field))

    async def create_index(self, path: str) -> None:
        """Declare an index on a (dotted) field path, e.g. ``"address.city"``. A local
        setting of this node (not replicated); kept across restarts."""
        self._check()
        async with self._lock:
            self._docs.create_index(path)

    # -- reading -----------------------------------------------------------------------------

    def get(self, doc_id: str) -> dict[str, Any] | None:
        """The document with this id, or None (never written, or deleted)."""
        self._check()
        return self._docs.get(doc_id)

    def conflicts(self, doc_id: str) -> tuple[Conflict, ...]:
        """The writes concurrent with the visible document that lost to it, newest first:
        whole documents (``value``; ``deleted`` for a delete) in document mode, one entry
        per losing field write (``field``, ``value``; ``deleted`` when it left the field
        absent) in field mode, by field. Empty when there are none. A new write of the
        document (field mode: of the field) made after seeing them clears them."""
        self._check()
        return self._docs.conflicts(doc_id)

    def conflicted(self, *, limit: int | None = None) -> list[str]:
        """Ids of documents that have conflicts, by id (deleted documents included)."""
        self._check()
        return self._docs.conflicted(limit=limit)

    def get_with_conflicts(self, doc_id: str) -> tuple[dict[str, Any] | None, tuple[Conflict, ...]]:
        """``(get(doc_id), conflicts(doc_id))`` in one call."""
        self._check()
        return self._docs.get(doc_id), self._docs.conflicts(doc_id)

    def all(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Every document, by id."""
        self._check()
        return self._docs.all(limit=limit)

    def count(self) -> int:
        """How many documents exist (tombstones not counted)."""
        self._check()
        return self._docs.count()

    def where(
        self, path: str, op: str, value: WhereValue, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Documents whose field at ``path`` compares to ``value`` (``op`` one of
        ``= != < <= > >=``), by id. Comparisons follow SQLite: numbers sort before
        strings; a missing field or JSON null never matches. A declared index on
        ``path`` serves the query."""
        self._check()
        return self._docs.where(path, op, value, limit=limit)

    def find(
        self,
        filter: Filter | None = None,
        *,
        sort: SortSpec = (),
        limit: int | None = None,
        skip: int = 0,
    ) -> list[Any]:
        """Documents matching ``filter`` (Mongo-style, see docs/query.md), as values."""
        from orbitstore.query.filters import compile_find  # sqlglot: on first use

        sql, params = compile_find(filter or {}, sort=sort, limit=limit, skip=skip)
        return [row[0] for row in self.query(sql, params).rows]

    def indexes(self) -> list[str]:
        """The declared index paths (from the manifest and :meth:`create_index`)."""
        self._check()
        return self._docs.indexes()


def _as_dict(doc: object) -> dict[str, Any]:
    if isinstance(doc, dict):
        return doc
    if isinstance(doc, Mapping):
        return dict(doc)
    raise InvalidValueError(f"a document is a map, not {type(doc).__name__}")
