"""The keyvalue database handle."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

from orbitstore.core.entry import Entry
from orbitstore.node.database import Database
from orbitstore.views.base import Conflict
from orbitstore.views.keyvalue import Delete as _Delete
from orbitstore.views.keyvalue import KeyValueView, batch_op, delete_op, put_op
from orbitstore.views.keyvalue import Put as _Put


class KeyValue(Database):
    """A map from string keys to DAG-CBOR values; the last writer wins per key.

    "Last" is the total order of operations ``(clock, writer, cid, index in entry)``,
    the same on every replica (see :mod:`orbitstore.views.keyvalue`). Writes are durable
    when they return; reads are local and never wait.

    Concurrent writes that lost are kept as conflicts (:meth:`conflicts`) until a write
    that has seen them (any new write of the key on a node that holds them) supersedes
    them. See ``docs/types/keyvalue.md``.
    """

    type_name: ClassVar[str] = "keyvalue"

    #: Operations for :meth:`apply_batch`: ``kv.Put(key=..., value=...)``, ``kv.Delete(key=...)``.
    Put: ClassVar[type[_Put]] = _Put
    Delete: ClassVar[type[_Delete]] = _Delete

    @property
    def _kv(self) -> KeyValueView:
        assert isinstance(self._view, KeyValueView)
        return self._view

    # -- writing ------------------------------------------------------------------------

    async def put(self, key: str, value: Any) -> Entry:
        """Set ``key`` to ``value``; returns the entry once it is committed.

        InvalidValueError (nothing written) for a key that is not a non-empty str of at
        most 1024 UTF-8 bytes, or a value DAG-CBOR/DAG-JSON cannot hold.
        """
        return await self.append(put_op(key, value))

    async def delete(self, key: str) -> Entry:
        """Delete ``key`` (a tombstone: older puts arriving later stay deleted)."""
        return await self.append(delete_op(key))

    async def put_many(self, items: Mapping[str, Any]) -> Entry | None:
        """Set several keys in one entry (one signature, one commit). None if empty."""
        return await self.apply_batch(_Put(key=k, value=v) for k, v in items.items())

    async def apply_batch(self, ops: Iterable[_Put | _Delete]) -> Entry | None:
        """Apply puts and deletes, in this order, as one entry. None if ``ops`` is empty.

        Every op is checked before anything is written.
        """
        ops = list(ops)
        if not ops:
            return None
        return await self.append(batch_op(ops))

    # -- reading ------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` if it is absent or deleted."""
        self._check()
        return self._kv.get(key, default)

    def conflicts(self, key: str) -> tuple[Conflict, ...]:
        """The writes of ``key`` that were concurrent with the visible value and lost to
        it, newest first (empty when there are none). Resolve them by writing the value
        you want (for example a merge of them): that write has seen them all, so it
        clears them."""
        self._check()
        return self._kv.conflicts(key)

    def conflicted(self, *, limit: int | None = None) -> list[str]:
        """Keys that have conflicts, in key order (deleted keys included: a put that lost
        to a delete is a conflict of the deleted key)."""
        self._check()
        return self._kv.conflicted(limit=limit)

    def get_with_conflicts(self, key: str, default: Any = None) -> tuple[Any, tuple[Conflict, ...]]:
        """``(get(key, default), conflicts(key))`` in one call."""
        self._check()
        return self._kv.get(key, default), self._kv.conflicts(key)

    def __contains__(self, key: object) -> bool:
        self._check()
        if not isinstance(key, str):
            return False
        return self._kv.contains(key)

    def count(self) -> int:
        """How many keys hold a value (deleted keys do not count)."""
        self._check()
        return self._kv.count()

    def items(
        self,
        *,
        prefix: str | None = None,
        start: str | None = None,
        stop: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[str, Any]]:
        """``(key, value)`` of live keys in key order (code point order).

        ``prefix`` keeps keys that start with it; ``start`` (inclusive) and ``stop``
        (exclusive) bound the range; ``limit`` caps the count; ``reverse`` walks down.
        """
        self._check()
        return self._kv.items(prefix=prefix, start=start, stop=stop, limit=limit, reverse=reverse)

    def keys(
        self,
        *,
        prefix: str | None = None,
        start: str | None = None,
        stop: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> Iterator[str]:
        """Live keys in key order; arguments as for :meth:`items`."""
        self._check()
        return self._kv.keys(prefix=prefix, start=start, stop=stop, limit=limit, reverse=reverse)
