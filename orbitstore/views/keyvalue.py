"""The keyvalue view: a last-writer-wins register per key, with tombstones.

Operations (entry payloads)::

    {"op": "put", "key": <str>, "value": <any DAG-CBOR value>}
    {"op": "del", "key": <str>}
    {"op": "batch", "ops": [<put or del without nesting>, ...]}   # several ops, one entry

How it works
============

Every operation has a *stamp*: ``(clock, writer, cid bytes, index)`` — the total order of
its entry (:mod:`orbitstore.core.order`), then its index inside the entry (0 for a single
put or del, the position in ``ops`` for a batch). Stamps are unique and totally ordered,
and every replica computes the same ones.

Rule 1 — the greatest stamp wins. For each key the state keeps one record: the stamp of
the greatest operation seen on that key and what it did (a value, or a tombstone for a
delete). An operation is applied only if its stamp is greater than the record's, so the
record is the same whatever order operations arrive in: a late put that sorts before a
delete stays deleted, and a late entry that sorts before the current winner changes
nothing.

Rule 2 — tombstones are kept. A delete writes a record without a value; it must stay, or
an older put arriving later would resurrect the key. Live keys are those whose record
holds a value.

Rule 3 — a malformed operation is ignored, deterministically. A key that is not a
non-empty string of at most 1024 UTF-8 bytes, a value with no DAG-JSON form (see
:mod:`orbitstore.core.dagjson`), or an unknown ``op`` makes the *whole entry* a no-op for
this view on every replica (a batch is all or nothing). The handle refuses such writes
before anything is stored, so only another implementation can produce them.

Rule 4 — concurrent writes are kept as conflicts. Each key keeps its *maximal writes*:
the last op on the key of every entry that is in the causal past of no other entry that
wrote the key (:mod:`orbitstore.views.causal`). The record's winner (Rule 1) is the
greatest of them; the others are the key's conflicts, stored with the record. A write
removes from the set every member in its causal past, so a new local write on a key
(which has seen every value) clears its conflicts: that is how an application resolves
them. A write that loses Rule 1 but is concurrent with the winner joins the set.

Changes: ``put`` (key, new value) or ``delete`` (key, value None), emitted only when the
visible value of a key changed: re-putting the same value, deleting an absent key or
losing to a newer stamp changes no value. Every change carries the key's conflicts
after it; when only those changed (a concurrent write lost, or a write of the same value
cleared them), the change is a ``conflict`` with the unchanged value.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final, Protocol, TypeAlias

from orbitstore.core import codec
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.errors import InvalidValueError
from orbitstore.views.base import Change, Conflict, change_for
from orbitstore.views.causal import (
    CausalState,
    CausalTracker,
    EntryLookup,
    Member,
    Step,
    conflicts_json,
    decode_members,
    encode_members,
    newest_first,
    prune,
)
from orbitstore.views.history import Ancestry, History, fold_registers
from orbitstore.views.keyvalue_ops import (
    MAX_KEY_BYTES,
    Delete,
    Put,
    _conflict,
    _conflict_at,
    _encoded,
    _Op,
    _writes_of,
    batch_op,
    check_key,
    delete_op,
    parse_payload,
    put_op,
)

__all__ = [
    "MAX_KEY_BYTES",
    "Delete",
    "KeyValueState",
    "KeyValueView",
    "Put",
    "batch_op",
    "check_key",
    "delete_op",
    "parse_payload",
    "prefix_end",
    "put_op",
]

# Rows fetched per storage round trip while iterating a range: big enough to amortize the
# query, small enough that a short ``limit`` or an abandoned iterator costs little.
_PAGE: Final = 256


Stamp: TypeAlias = tuple[int, str, bytes, int]
"""``(clock, writer, cid bytes, index in entry)``: the order in which operations win."""

KvRecord: TypeAlias = tuple[Stamp, bytes | None]
"""The state of one key: the winning stamp, and the DAG-CBOR value (None: a tombstone)."""

KvRegister: TypeAlias = tuple[Stamp, bytes | None, int, bytes | None]
"""A record with the winner's arrival number and the encoded conflict members."""

KvLoad: TypeAlias = tuple[str, Stamp, bytes | None, str | None, int, bytes | None, str | None]
"""A whole record for :meth:`KeyValueState.load_records`: key, stamp, value (DAG-CBOR,
None: tombstone), its JSON, the winner's arrival, conflicts and their JSON (None: none)."""


class KeyValueState(CausalState, Protocol):
    """Where the view keeps its records (SQLite table ``view_kv``, or memory)."""

    def get_record(self, key: str) -> KvRecord | None:
        """The record of ``key`` (live or tombstone), or None if no op ever touched it."""
        ...

    def get_register(self, key: str) -> KvRegister | None:
        """The record of ``key`` with its winner's arrival and encoded conflicts."""
        ...

    def put_record(
        self,
        key: str,
        stamp: Stamp,
        value: bytes | None,
        json: str | None,
        *,
        live_delta: int,
        arrival: int = 0,
        conflicts: bytes | None = None,
        conflicts_json: str | None = None,
    ) -> None:
        """Insert or replace the record of ``key``: ``value`` DAG-CBOR and ``json`` its
        :func:`~orbitstore.core.dagjson.to_json` text, both None for a tombstone.
        ``live_delta`` (-1, 0, +1) is the change in the number of live keys. ``arrival``
        is the winner's arrival number, ``conflicts`` the encoded losing members (None:
        none) and ``conflicts_json`` their values for SQL."""
        ...

    def set_conflicts(self, key: str, conflicts: bytes | None, conflicts_json: str | None) -> None:
        """Replace the conflicts of an existing record."""
        ...

    def load_records(self, rows: Sequence[KvLoad], *, live: int | None) -> None:
        """Write the records of an empty state at once; ``live`` of them hold a value
        (None: no key ever did, so no count is stored)."""
        ...

    def get_conflicts(self, key: str) -> bytes | None:
        """The encoded conflict members of ``key`` (None: none)."""
        ...

    def conflicted(self, limit: int) -> list[str]:
        """Up to ``limit`` keys (deleted ones included) that have conflicts, in key order."""
        ...

    def get_value(self, key: str) -> bytes | None:
        """The DAG-CBOR value of a live key, or None (one indexed read)."""
        ...

    def scan(
        self,
        *,
        low: str | None,
        low_inclusive: bool,
        high: str | None,
        limit: int,
        reverse: bool,
    ) -> list[tuple[str, bytes]]:
        """Up to ``limit`` live ``(key, value)`` with ``low <(=) key < high`` (None: open),
        in key order (descending with ``reverse``)."""
        ...

    def count(self) -> int:
        """How many keys are live."""
        ...


def _has_put(payload: Any) -> bool:
    writes = _writes_of(payload)
    return writes is not None and any(op.data is not None for _, _, op in writes)


def prefix_end(prefix: str) -> str | None:
    """The least string greater than every string that starts with ``prefix`` (None if
    there is none: the prefix is all U+10FFFF)."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be stored as text
                nxt = 0xE000
            return "".join(chars) + chr(nxt)
    return None


class KeyValueView:
    """Folds keyvalue operations into a :class:`KeyValueState` (see module docstring).
    ``lookup`` reads entries of the log (to tell concurrent writes from superseded ones)."""

    name = "keyvalue"
    #: It reads entries back from its log (``lookup``): AS OF snapshots must hold them.
    reads_log = True

    def __init__(self, state: KeyValueState, *, lookup: EntryLookup) -> None:
        self._state = state
        self._lookup = lookup
        self._causal = CausalTracker(state, lookup)

    # -- applying ---------------------------------------------------------------------

    def apply(self, entries: Sequence[Entry], *, local: bool) -> list[Change]:
        changes: list[Change] = []
        self._causal.begin()
        for entry in entries:
            step = self._causal.step(entry)  # every entry: it moves the heads
            ops = parse_payload(entry.payload)
            if ops is None:
                continue
            # Within an entry a later op on a key supersedes an earlier one (Rule 1 by
            # index), so only the last op on each key is a write of this entry.
            last = {op.key: (idx, op) for idx, op in enumerate(ops)}
            for idx, op in sorted(last.values(), key=lambda t: t[0]):
                change = self._write(step, idx, op, local=local)
                if change is not None:
                    changes.append(change)
        self._causal.end()
        return changes

    def _write(self, step: Step, idx: int, op: _Op, *, local: bool) -> Change | None:
        state, entry = self._state, step.entry
        register = state.get_register(op.key)
        new = step.member(idx)
        old_losers: list[Member] = []
        members: list[Member] = []
        if register is not None:
            stamp, _, arrival, blob = register
            old_losers = [] if blob is None else decode_members(codec.decode(blob))
            members = [Member(stamp, arrival), *old_losers]
        kept = [*prune(members, step), new]
        top = max(kept, key=lambda m: m.stamp)
        losers = newest_first(m for m in kept if m is not top)
        conflicts: tuple[Conflict, ...] = ()
        blob = text = None
        if losers:
            conflicts = self._render(losers, step)
            blob, text = codec.encode(encode_members(losers)), conflicts_json(conflicts)
        if top is not new:  # Rule 1: an older op loses, and here it is concurrent
            assert register is not None
            state.set_conflicts(op.key, blob, text)
            value = None if register[1] is None else codec.decode(register[1])
            return change_for(
                entry, "conflict", key=op.key, value=value, local=local, conflicts=conflicts
            )
        old = None if register is None else register[1]
        state.put_record(
            op.key,
            new.stamp,
            op.data,
            op.json,
            live_delta=(op.data is not None) - (old is not None),
            arrival=new.arrival,
            conflicts=blob,
            conflicts_json=text,
        )
        if old != op.data:
            kind = "delete" if op.data is None else "put"
        elif set(losers) != set(old_losers):
            kind = "conflict"
        else:
            return None
        value = None if op.data is None else op.value
        return change_for(entry, kind, key=op.key, value=value, local=local, conflicts=conflicts)

    def fold_snapshot(self, entries: Sequence[Entry]) -> bool:
        """Fold a whole history (ancestor-closed, in total order) into this view's empty
        state at once, for a read-only snapshot: the records :meth:`apply` would leave,
        conflicts included, without the causal bookkeeping further applies would need.
        False, with nothing written, for a history the bulk fold refuses
        (:mod:`orbitstore.views.history`): fold it with :meth:`apply` then."""
        return self.fold_history(History.of_entries(entries))

    def fold_history(self, history: History) -> bool:
        """:meth:`fold_snapshot` of a history by columns (:class:`History`)."""
        ancestry = Ancestry.of(history)
        if ancestry is None:
            return False
        rows: list[KvLoad] = []
        live = 0
        clocks, writers = history.clocks, history.writers
        for key, writes in fold_registers(history, ancestry, _writes_of).items():
            arrival, index, op = writes[-1]
            losers = writes[-2::-1]  # newest first
            blob = text = None
            if losers:
                conflicts = tuple(
                    _conflict_at(history.cid(a), writers[a - 1], clocks[a - 1], o)
                    for a, _, o in losers
                )
                blob = codec.encode(encode_members(history.member(w) for w in losers))
                text = conflicts_json(conflicts)
            data, json = _encoded(op)
            live += data is not None
            i = arrival - 1
            stamp = (clocks[i], writers[i], history.cids[i], index)
            rows.append((key, stamp, data, json, arrival, blob, text))
        # The live count is stored once a put was applied (as by apply): surely so if a
        # key is live; if none is, look for a put among the history's writes.
        put = live > 0 or (bool(rows) and any(_has_put(p) for p in history.payloads))
        self._state.load_records(rows, live=live if put else None)
        return True

    def _render(self, members: Sequence[Member], step: Step | None = None) -> tuple[Conflict, ...]:
        out: list[Conflict] = []
        for m in members:
            if step is not None and m.cid == bytes(step.entry.cid):
                entry: Entry | None = step.entry
            else:
                entry = self._lookup(Cid(m.cid))
            ops = None if entry is None else parse_payload(entry.payload)
            if entry is None or ops is None:  # pragma: no cover - members are applied ops
                continue
            out.append(_conflict(entry, ops[m.stamp[3]]))
        return tuple(out)

    # -- reading ----------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        data = self._state.get_value(check_key(key))
        return default if data is None else codec.decode(data)

    def contains(self, key: str) -> bool:
        return self._state.get_value(key) is not None

    def conflicts(self, key: str) -> tuple[Conflict, ...]:
        """The concurrent writes that lost to the visible value of ``key``, newest first
        (empty when there are none)."""
        blob = self._state.get_conflicts(check_key(key))
        if blob is None:
            return ()
        return self._render(decode_members(codec.decode(blob)))

    def conflicted(self, *, limit: int | None = None) -> list[str]:
        """Keys that have conflicts (deleted keys included), in key order."""
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise InvalidValueError("limit is a non-negative integer")
        return self._state.conflicted(-1 if limit is None else limit)

    def record(self, key: str) -> KvRecord | None:
        """The raw record of a key, tombstones included (for tests and tools)."""
        return self._state.get_record(check_key(key))

    def count(self) -> int:
        return self._state.count()

    def items(
        self,
        *,
        prefix: str | None = None,
        start: str | None = None,
        stop: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[str, Any]]:
        for key, data in self._scan(prefix, start, stop, limit, reverse):
            yield key, codec.decode(data)

    def keys(
        self,
        *,
        prefix: str | None = None,
        start: str | None = None,
        stop: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> Iterator[str]:
        for key, _ in self._scan(prefix, start, stop, limit, reverse):
            yield key

    def _scan(
        self,
        prefix: str | None,
        start: str | None,
        stop: str | None,
        limit: int | None,
        reverse: bool,
    ) -> Iterator[tuple[str, bytes]]:
        for name, bound in (("prefix", prefix), ("start", start), ("stop", stop)):
            if bound is not None and not isinstance(bound, str):
                raise InvalidValueError(f"{name} is a str, not {type(bound).__name__}")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise InvalidValueError("limit is a non-negative integer")
        low, high = start, stop
        if prefix:
            low = prefix if low is None else max(low, prefix)
            end = prefix_end(prefix)
            if end is not None:
                high = end if high is None else min(high, end)
        if low is not None and high is not None and low >= high:
            return
        # Keyset pagination: each page is a fresh indexed range read that starts after
        # the last key seen, so writes between pages cannot confuse the iteration.
        low_inclusive = True
        left = limit
        while left is None or left > 0:
            size = _PAGE if left is None else min(_PAGE, left)
            page = self._state.scan(
                low=low, low_inclusive=low_inclusive, high=high, limit=size, reverse=reverse
            )
            yield from page
            if len(page) < size:
                return
            if left is not None:
                left -= len(page)
            if reverse:
                high = page[-1][0]
            else:
                low, low_inclusive = page[-1][0], False
