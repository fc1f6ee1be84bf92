"""The ydoc database handle: a collaborative document (Yjs, through pycrdt).

Edit the live :attr:`YDocument.doc` with pycrdt; the view captures each pycrdt
transaction, and the handle turns what it captured into entries — one per
:meth:`~YDocument.edit` block, per :meth:`~YDocument.commit` call, or per burst under
:meth:`~YDocument.autocommit`::

    ydoc = await node.open("notes", type="ydoc")
    async with ydoc.edit() as doc:
        text = doc.get("body", type=pycrdt.Text)
        text += "hello"
    # one signed entry carrying one Yjs update has been appended
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import pycrdt
import trio

from orbitstore.core.entry import Entry
from orbitstore.errors import InvalidValueError, WriteNotAllowedError
from orbitstore.node.database import Database
from orbitstore.node.handle_statistics import DatabaseStatistics
from orbitstore.views.ydoc import (
    YDocStatistics,
    YDocView,
    check_update,
    entry_budget,
    pack_updates,
    update_op,
)

# Yjs client ids are random unsigned 32-bit integers (JavaScript Yjs uses the same range,
# so a document stays loadable by every Yjs implementation).
_CLIENT_ID_BITS = 32


def new_client_id() -> int:
    """A fresh random Yjs client id (each opening of a document gets its own)."""
    return secrets.randbits(_CLIENT_ID_BITS)


@dataclass(frozen=True, slots=True, kw_only=True)
class YDocumentStatistics(DatabaseStatistics):
    """:class:`DatabaseStatistics` of a ydoc, with its document's counters."""

    document: YDocStatistics


class YDocument(Database):
    """A collaborative document: a pycrdt ``Doc`` whose updates are signed log entries."""

    type_name: ClassVar[str] = "ydoc"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Held from taking captured updates until they are appended: commits never
        # overtake each other, so an edit is never logged before one it builds on.
        self._commit_lock = trio.Lock()

    @property
    def _ydoc(self) -> YDocView:
        assert isinstance(self._view, YDocView)
        return self._view

    # -- reading ------------------------------------------------------------------------

    @property
    def doc(self) -> pycrdt.Doc[Any]:
        """The live document: the log's updates, plus local edits not committed yet.

        Edits made on it are captured and appended by the next :meth:`commit` (or at the
        end of an :meth:`edit` block, or by :meth:`autocommit`)."""
        self._check()
        return self._ydoc.doc

    def snapshot(self) -> bytes:
        """The current document as one Yjs v1 update: ``pycrdt.Doc().apply_update(s)``
        (or ``Y.applyUpdate(ydoc, s)`` in JavaScript) loads it, no orbitstore needed."""
        self._check()
        return self._ydoc.snapshot()

    def text(self, name: str = "text") -> str:
        """The content of the root Text ``name`` ("" if nothing was written to it)."""
        return str(self._root_text(name))

    def _root_text(self, name: str) -> pycrdt.Text:
        self._check()
        if not isinstance(name, str) or not name:
            raise InvalidValueError("a root name is a non-empty string")
        text: pycrdt.Text = self._ydoc.doc.get(name, type=pycrdt.Text)
        return text

    def statistics(self) -> YDocumentStatistics:
        return YDocumentStatistics(**self._statistics(), document=self._ydoc.statistics())

    # -- writing --------------------------------------------------------------------------

    @asynccontextmanager
    async def edit(self) -> AsyncIterator[pycrdt.Doc[Any]]:
        """Edit the document in one pycrdt transaction, appended as one entry at exit::

            async with ydoc.edit() as doc:
                doc["body"] += "hi"

        Updates arriving from peers meanwhile are applied when the block ends. Yjs
        edits cannot be rolled back: if the block raises, what it changed is still
        committed, then the exception propagates.
        """
        self._check()
        self._check_writable()
        try:
            with self._ydoc.doc.transaction():
                yield self._ydoc.doc
        finally:
            await self.commit()

    async def commit(self) -> list[Entry]:
        """Append everything captured since the last commit, merged into as few entries
        as the entry size limit allows (normally one). Returns them ([] if none)."""
        self._check()
        # The write lock first, then ours: a commit waiting for another context's batch
        # must not hold the commit lock the batch's own commits need.
        async with self._lock, self._commit_lock:
            self._publish(self._ydoc.apply_deferred())
            captured = self._ydoc.take_captured()
            if not captured:
                return []
            budget = entry_budget(self._log.limits.max_entry_bytes)
            try:
                return await self.append_many(
                    [update_op(u) for u in pack_updates(captured, budget=budget)]
                )
            except BaseException:
                self._ydoc.restore_captured(captured)
                raise

    @asynccontextmanager
    async def autocommit(self, interval: float = 0.25) -> AsyncIterator[None]:
        """Commit captured edits every ``interval`` seconds while the block runs (one
        entry per burst of typing, not per keystroke), and once more at exit."""
        if not interval > 0:
            raise InvalidValueError("the autocommit interval is a positive number of seconds")
        self._check()

        async def commit_periodically() -> None:
            while True:
                await trio.sleep(interval)
                if self._ydoc.has_captured:
                    await self.commit()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(commit_periodically)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
        await self.commit()

    async def append_text(self, text: str, *, name: str = "text") -> list[Entry]:
        """Append ``text`` to the end of the root Text ``name`` and commit (one entry,
        with anything else captured so far). Returns the entries ([] for ``""``)."""
        if not isinstance(text, str):
            raise InvalidValueError(f"text to append is a str, not {type(text).__name__}")
        self._check_writable()
        root = self._root_text(name)
        if text:
            root += text
        return await self.commit()

    async def append_update(self, update: bytes) -> Entry:
        """Append a Yjs update made elsewhere (another Yjs client); InvalidValueError if
        the bytes are not a Yjs v1 update."""
        return await self.append(update_op(check_update(update)))

    def _check_writable(self) -> None:
        identity = self._log.identity
        if identity is None or not self._log.access.can_write(identity.id):
            writer = identity.id if identity is not None else None
            raise WriteNotAllowedError(
                f"{writer} may not write to {self.name!r}: its edits could not be committed",
                writer=writer,
            )

    # -- lifecycle ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Commit what is captured (if this identity may write), store a snapshot, close."""
        if not self._closed and self._ydoc.has_captured:
            identity = self._log.identity
            if identity is not None and self._log.access.can_write(identity.id):
                await self.commit()
        await super().aclose()
