"""The op-log's side of capabilities access: frontiers, admission and visibility.

How it works
============

Every entry of a capabilities log has an *ACL frontier*: the maximal ACL ops in its
causal past, i.e. the maximal elements of the union of ``frontier(p)`` and
``{p}`` if ``p`` is an ACL op, over its parents ``p``. It is computed once, when the
entry is applied (its parents are stored then), persisted next to the entry
(:class:`AclStore`) and interned in memory, so "is ACL op g in the past of entry e"
is one bit test on the closure of e's frontier (see
:class:`~orbitstore.core.capabilities.AccessGraph`).

Admission (final, so every replica stores the same set): an entry is *rejected* when its
writer is neither the owner nor named by any grant (or redeem) in its causal past, nor a
device that a link op in its past (or the entry itself, a link op) links to a user who is
— no later entry can change that past, so no state could ever authorize it — and an ACL
op with a malformed payload (a link op: one not posted by its device, or whose delegation
is for another database or does not verify) is rejected. Everything else is stored, and
its *visibility* (authorized and not retracted) is a function of the whole set of ACL
ops: it can change when a revocation arrives, or when a revocation becomes void.
:meth:`CapabilityLog.visible` answers it; :meth:`CapabilityLog.take_change` tells the
database that the visibility of already stored entries may have changed (its view must
be rebuilt from the visible ones).

"e is in the past of revoke (or unlink) v" is answered by a walk back from v over the
entries of the writer it revokes (and that writer's devices) or of the device it unlinks,
done once per op and bounded below by the clock of the grants (or links) it kills (an
entry authorized by one sorts after it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from orbitstore.core.capabilities import (
    AccessGraph,
    AclOp,
    Authorized,
    Denied,
    is_acl_payload,
    parse_acl_payload,
)
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.errors import AccessDeniedError, InvalidAclOpError, InvalidDataError

KeysOf = Callable[[Any], "tuple[str, ...] | None"]
Frontier = tuple[Cid, ...]


class AclStore(Protocol):
    """What capabilities need persisted, for one log (synchronous)."""

    def get_frontiers(self, cids: Iterable[Cid]) -> dict[Cid, Frontier]:
        """The stored ACL frontier of each of ``cids`` that has one."""
        ...

    def put_frontiers(self, rows: Iterable[tuple[Cid, Frontier, bool]]) -> None:
        """Store ``(entry, frontier, is_acl_op)`` rows (idempotent)."""
        ...

    def acl_entries(self) -> list[Cid]:
        """Every stored entry that is an ACL op."""
        ...


def payload_keys(payload: Any, id_field: str = "_id") -> tuple[str, ...] | None:
    """The keys (keyvalue) or ids (documents) a payload writes; None if it cannot be
    said (then only an unscoped write right covers it)."""
    if not isinstance(payload, dict):
        return None
    if payload.get("op") == "batch":
        ops = payload.get("ops")
        if not isinstance(ops, list) or not ops:
            return None
        keys: list[str] = []
        for sub in ops:
            got = payload_keys(sub, id_field)
            if got is None:
                return None
            keys.extend(got)
        return tuple(keys)
    for name in ("key", "id"):
        value = payload.get(name)
        if isinstance(value, str):
            return (value,)
    doc = payload.get("doc")
    if isinstance(doc, dict) and isinstance(doc.get(id_field), str):
        return (doc[id_field],)
    return None


class CapabilityLog:
    """The access graph of one log, fed by the op-log (see the module docstring)."""

    def __init__(
        self,
        *,
        owner: str,
        store: AclStore,
        get_entry: Callable[[Cid], Entry | None],
        keys_of: KeysOf = payload_keys,
    ) -> None:
        self.owner = owner
        self._store = store
        self._get = get_entry
        self._keys_of = keys_of
        self._reset()

    def _reset(self) -> None:
        self.graph = AccessGraph(self.owner)
        self._frontiers: dict[Cid, Frontier] = {}
        self._interned: dict[Frontier, Frontier] = {(): ()}
        self._masks: dict[Frontier, int] = {(): 0}
        self._past_of: dict[int, set[Cid]] = {}
        self._plain: dict[Authorized, bool] = {}
        self._changed = False
        self._rows: list[tuple[Cid, Frontier, bool]] = []
        self._before: int | None = None
        self._load()
        self._known = len(self.graph)

    def _load(self) -> None:
        entries = [e for e in map(self._get, self._store.acl_entries()) if e is not None]
        entries.sort(key=lambda e: e.order_key)  # parents first
        fronts = self._store.get_frontiers(e.cid for e in entries)
        for entry in entries:
            self._add_op(entry, fronts.get(entry.cid, ()))

    # -- frontiers --------------------------------------------------------------------

    def _intern(self, frontier: Frontier) -> Frontier:
        return self._interned.setdefault(frontier, frontier)

    def mask(self, frontier: Frontier) -> int:
        got = self._masks.get(frontier)
        if got is None:
            got = self._masks[frontier] = self.graph.closure(frontier)
        return got

    def frontier(self, cid: Cid) -> Frontier:
        got = self._frontiers.get(cid)
        if got is None:
            got = self._store.get_frontiers([cid]).get(cid, ())
            got = self._remember(cid, got)
        return got

    def _remember(self, cid: Cid, frontier: Frontier) -> Frontier:
        frontier = self._intern(frontier)
        if len(self._frontiers) > 200_000:  # a cache; the store has them all
            self._frontiers.clear()
        self._frontiers[cid] = frontier
        return frontier

    def reload(self) -> None:
        """Forget memory state and re-read the store (after a rolled-back transaction)."""
        self._reset()

    def of_history(self, entries: Sequence[Entry]) -> CapabilityLog:
        """A capability log of ``entries`` alone: an ancestor-closed history in total
        order (the past of some heads, for an AS OF snapshot). Its :meth:`visible` is
        visibility in that state: only the ACL ops among ``entries`` count, so a
        revocation outside the history retracts nothing in it. Every entry was admitted
        when it was stored, and admission depends on an entry's past alone, so each is
        admitted again here (one that is not, or whose parents are not in the history,
        is left out: nothing there can show it)."""
        by_cid = {e.cid: e for e in entries}
        past = CapabilityLog(
            owner=self.owner, store=_MemoryAcl(), get_entry=by_cid.get, keys_of=self._keys_of
        )
        for entry in entries:
            got = past.admit(entry)
            if not isinstance(got, InvalidDataError):
                past.applied(entry, *got)
        past.settle()
        past.take_change()
        return past

    def check_write(
        self, writer: str, payload: Any, parents: Iterable[Cid], ts: int | None = None
    ) -> str | None:
        """Why ``writer`` may not append ``payload`` on ``parents`` (None: it may)."""
        past = self.mask(self._frontier_of(parents))
        if is_acl_payload(payload):
            try:
                op = parse_acl_payload(payload)
            except InvalidAclOpError as exc:
                return str(exc)
            assert op is not None
            return self.graph.check_new_op(writer, op, past, ts)
        verdict = self.graph.authorize(writer, self._keys_of(payload), past, ts)
        return verdict.message() if isinstance(verdict, Denied) else None

    def _new_frontier(self, entry: Entry) -> Frontier:
        return self._frontier_of(entry.next)

    def _frontier_of(self, parents: Iterable[Cid]) -> Frontier:
        candidates: set[Cid] = set()
        for p in parents:
            if p in self.graph:
                candidates.add(p)
            else:
                candidates.update(self.frontier(p))
        if len(candidates) <= 1:
            return self._intern(tuple(candidates))
        graph = self.graph
        inner = 0
        for c in candidates:
            inner |= self.mask((c,)) & ~(1 << graph.index(c))
        kept = [c for c in candidates if not inner >> graph.index(c) & 1]
        return self._intern(tuple(sorted(kept, key=bytes)))

    # -- admission (final) --------------------------------------------------------------

    def admit(self, entry: Entry) -> tuple[Frontier, AclOp | None] | InvalidDataError:
        """Decide whether to store ``entry`` (its parents are stored or admitted)."""
        acl: AclOp | None = None
        if is_acl_payload(entry.payload):
            try:
                acl = parse_acl_payload(entry.payload)
            except InvalidAclOpError as exc:
                return exc
        if acl is not None and acl.op == "link":
            if acl.to != entry.writer:
                return InvalidAclOpError(
                    "a link op is posted by the device it links (signed by the device key)"
                )
            if not acl.delegation.covers(entry.db):
                return InvalidAclOpError("this delegation is for another database")
        frontier = self._new_frontier(entry)
        if entry.writer != self.owner and not self.graph.admissible(
            entry.writer, self.mask(frontier), acl
        ):
            # Name the user a device claims, where its own link op says so.
            who = {"user": acl.user, "device": entry.writer} if acl and acl.op == "link" else {}
            return AccessDeniedError(
                f"{entry.writer} was granted no right in this entry's causal past",
                **who,
                writer=entry.writer,
                right="write" if acl is None else ("invite" if acl.op == "redeem" else "admin"),
                scope=None,
                reason="not a member",
            )
        return frontier, acl

    def admit_entry(self, entry: Entry) -> InvalidDataError | None:
        """:meth:`admit`, and record the entry if admitted (the op-log's hook)."""
        got = self.admit(entry)
        if isinstance(got, InvalidDataError):
            return got
        self.applied(entry, *got)
        return None

    def applied(self, entry: Entry, frontier: Frontier, op: AclOp | None) -> None:
        """Record an admitted entry (parents first), in memory; :meth:`settle` stores."""
        self._remember(entry.cid, frontier)
        self._rows.append((entry.cid, frontier, op is not None))
        if op is not None:
            if self._before is None:
                self._before = self.graph.valid_mask()
                self._known = len(self.graph)
            self._add_op(entry, frontier, op)

    def settle(self) -> None:
        """Store the recorded frontiers; note whether stored entries' visibility may
        have changed (once per batch: evaluating the graph costs O(ACL ops))."""
        if self._rows:
            self._store.put_frontiers(self._rows)
            self._rows = []
        if self._before is not None:
            if self._stale(self._before):
                self._changed = True
            self._before = None

    def _add_op(self, entry: Entry, frontier: Frontier, op: AclOp | None = None) -> None:
        if op is None:
            op = parse_acl_payload(entry.payload)
            if op is None:
                return
        self.graph.add(
            cid=entry.cid,
            order=entry.order_key,
            author=entry.writer,
            op=op,
            past=self.mask(frontier),
            ts=entry.ts,
        )
        self._frontiers[entry.cid] = self._intern(frontier)
        self._plain.clear()
        if op.op != "revoke":  # a grant may lower the floor of the past walks
            self._past_of.clear()

    def _stale(self, before: int) -> bool:
        """Whether adding ops may have changed the visibility of stored entries: an old
        op changed validity, or a new valid revoke exists (a new grant cannot: no stored
        entry descends from it)."""
        after = self.graph.valid_mask()
        old = (1 << self._known) - 1
        if (after ^ before) & old:
            return True
        return any(not old >> idx & 1 for idx, _ in self.graph.revokes())

    def take_change(self) -> bool:
        """True once after the visibility of stored entries may have changed."""
        changed, self._changed = self._changed, False
        if changed:
            self._past_of.clear()
        self._plain.clear()
        return changed

    # -- visibility -------------------------------------------------------------------

    def is_member(self, did: str, ts: int | None = None) -> bool:
        """Whether ``did`` holds a right now, directly or as a device linked to a user
        who does (the owner and its devices included): "may it read / replicate"."""
        return self.graph.is_member(did, ts)

    def user_of(self, did: str) -> str:
        """The user ``did`` acts for now (itself if it is no linked device)."""
        return self.graph.acting_as(did, self.graph.valid_mask())[0]

    def is_acl(self, cid: Cid) -> bool:
        return cid in self.graph

    def verdict(self, entry: Entry) -> Authorized | Denied:
        past = self.mask(self.frontier(entry.cid))
        return self.graph.authorize(entry.writer, self._keys_of(entry.payload), past, entry.ts)

    def visible(self, entry: Entry) -> bool:
        """Whether a stored entry that is not an ACL op is visible to views."""
        if entry.cid in self.graph:
            return False
        verdict = self.verdict(entry)
        if isinstance(verdict, Denied):
            return False
        killers = self.graph.killers(verdict)
        if not killers:
            return True
        cid = entry.cid
        if not any(self._in_past(cid, v) for v in killers):
            # Concurrent with every revoke that could retract it: the answer depends on
            # the verdict alone.
            plain = self._plain.get(verdict)
            if plain is None:
                plain = self._plain[verdict] = self.graph.retracted(verdict, lambda v: False)
            return not plain
        return not self.graph.retracted(verdict, lambda v: self._in_past(cid, v))

    def filter_visible(self, entries: Iterable[Entry]) -> Iterator[Entry]:
        return (e for e in entries if self.visible(e))

    def _in_past(self, cid: Cid, v: int) -> bool:
        found = self._past_of.get(v)
        if found is None:
            found = self._past_of[v] = self._walk_past(v)
        return cid in found

    def _walk_past(self, v: int) -> set[Cid]:
        """Entries in the causal past of ACL op ``v`` by the writer it revokes (and, for
        a user, its devices) or the device it unlinks, down to the clock of the oldest
        grant (or link) of that writer."""
        op = self.graph.op(v)
        floor = self.graph.oldest_grant_clock(op.to)
        targets = {op.to}
        if op.op == "revoke":
            targets |= self.graph.devices_of(op.to)
        start = self._get(self.graph.cid_of(v))
        found: set[Cid] = set()
        if start is None:
            return found
        seen: set[Cid] = set()
        stack = list(start.next)
        while stack:
            cid = stack.pop()
            if cid in seen:
                continue
            seen.add(cid)
            entry = self._get(cid)
            if entry is None or entry.clock <= floor:
                continue
            if entry.writer in targets:
                found.add(cid)
            stack.extend(entry.next)
        return found


class _MemoryAcl:
    """An :class:`AclStore` in a dict: the frontiers of a history read once
    (:meth:`CapabilityLog.of_history`)."""

    def __init__(self) -> None:
        self._rows: dict[Cid, tuple[Frontier, bool]] = {}

    def get_frontiers(self, cids: Iterable[Cid]) -> dict[Cid, Frontier]:
        rows = self._rows
        return {c: rows[c][0] for c in cids if c in rows}

    def put_frontiers(self, rows: Iterable[tuple[Cid, Frontier, bool]]) -> None:
        for cid, frontier, acl in rows:
            self._rows.setdefault(cid, (frontier, acl))

    def acl_entries(self) -> list[Cid]:
        return [c for c, (_, acl) in self._rows.items() if acl]
