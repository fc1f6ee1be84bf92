"""``orbitstore check``: verify everything a node stores, and repair what can be repaired.

How it works
============

1. **The file.** SQLite's ``integrity_check`` over the whole file (page structure, every
   index against its table). Index-only damage is repaired with ``REINDEX``; damage to
   table pages is reported (the steps below then find the entries it took).
2. **The entries.** Every stored entry of every log is read in arrival order (a causal
   order) and verified again as if a peer had sent it: hash, structure, limits,
   signature, database, parents stored, clock = max(parent clocks) + 1. An entry whose
   row has lost its block is *missing*. An entry that descends from a damaged or missing
   one is *orphaned*: it is valid, but the log no longer holds its ancestry.
3. **The heads.** The true heads are the stored entries no stored entry names as a
   parent; the stored heads must be exactly those (else entries are hidden from peers).
4. **The views.** Each view is rebuilt from the log into a scratch in-memory store, with
   the same view code, and compared row by row with the live view tables (a ydoc view by
   its merged document). A view whose checkpoint lags is compared up to its checkpoint
   (the rest is applied on the next open, as usual).

Repair (``repair=True``) removes damaged, missing and orphaned entries from the log
(rows and blocks), sets the heads to the true heads of what is left, and rebuilds every
view of a repaired log from its entries. The removed entries are reported in
``CheckReport.refetch``: they are still valid on every peer that holds them, and since
our heads no longer claim them, the next sync with any such peer sends them again (a
peer sends what our heads do not cover). Keeping an orphan instead would keep a head that
claims its missing ancestor, and no peer would ever send that ancestor back.

Nothing here needs the network: repair is local, re-fetching is what sync already does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import Any

from orbitstore.core.access import CapabilitiesAccess
from orbitstore.core.capability_log import CapabilityLog
from orbitstore.core.cid import Cid
from orbitstore.core.encryption import META_KEY
from orbitstore.core.entry import Entry
from orbitstore.core.limits import DEFAULT_LIMITS, EntryLimits
from orbitstore.core.manifest import Manifest, format_address
from orbitstore.core.order import next_clock
from orbitstore.errors import InvalidDataError, StorageError
from orbitstore.node.types import database_class
from orbitstore.storage.base import NodeStore, SeqLogStore
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.storage.views import reset_view_rows, view_rows
from orbitstore.views.base import SnapshotView, View

#: ``progress(phase, done, total)``: called as the check goes (total 0 when unknown).
Progress = Callable[[str, int, int], None]

_BATCH = 1000  # entries folded into a view per call


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One thing found wrong. ``kind``: integrity, store, manifest, entry, missing,
    orphan, heads or view."""

    kind: str
    message: str
    database: str | None = None
    cid: str | None = None
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "database": self.database,
            "cid": self.cid,
            "repaired": self.repaired,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckReport:
    problems: tuple[Problem, ...] = ()
    databases: int = 0
    entries: int = 0
    repair: bool = False
    refetch: tuple[str, ...] = ()
    """CIDs removed from the logs: the next sync fetches them again from any peer."""

    @property
    def ok(self) -> bool:
        """True when nothing is wrong any more (no problem, or every one repaired)."""
        return all(p.repaired for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "databases": self.databases,
            "entries": self.entries,
            "repair": self.repair,
            "problems": [p.to_dict() for p in self.problems],
            "refetch": list(self.refetch),
        }


@dataclass(slots=True)
class _Log:
    """What the entry scan of one log found."""

    good: dict[Cid, Entry] = field(default_factory=dict)  # in arrival order
    bad: dict[Cid, Problem] = field(default_factory=dict)  # damaged, missing, orphaned
    seqs: dict[Cid, int] = field(default_factory=dict)


def check_store(
    store: NodeStore,
    *,
    repair: bool = False,
    limits: EntryLimits = DEFAULT_LIMITS,
    progress: Progress | None = None,
) -> CheckReport:
    """Check (and with ``repair``, repair) every log of ``store``. See the module doc.
    Nothing may be open on ``store`` while it repairs (the node checks that)."""
    say = progress or (lambda phase, done, total: None)
    problems: list[Problem] = []
    refetch: list[str] = []
    say("integrity", 0, 1)
    integrity = _integrity(store, repair)
    problems.extend(integrity)
    say("integrity", 1, 1)
    for log_id, (hidden, wrong) in getattr(store, "repaired_heads", {}).items():
        problems.append(
            Problem(
                kind="heads",
                message=f"log {log_id}: the stored heads hid {hidden} true head(s) and named"
                f" {wrong} wrong one(s); repaired when the store was opened",
                repaired=True,
            )
        )
    try:
        databases = store.databases()
    except StorageError as exc:
        problems.append(Problem(kind="store", message=f"cannot list the databases: {exc}"))
        return CheckReport(problems=tuple(problems), repair=repair)
    entries = 0
    for n, db in enumerate(databases):
        say("databases", n, len(databases))
        try:
            found, removed, count = _check_database(store, db, repair, limits)
        except StorageError as exc:  # the file fails us below the entries: say so, go on
            found, removed, count = [_store_problem(db, exc)], [], 0
        problems.extend(found)
        refetch.extend(removed)
        entries += count
    say("databases", len(databases), len(databases))
    if repair and integrity:  # did removing damaged rows mend the file?
        still = _integrity(store, repair=False)
        problems = [
            replace(p, repaired=not still) if p.kind == "integrity" else p for p in problems
        ]
    return CheckReport(
        problems=tuple(problems),
        databases=len(databases),
        entries=entries,
        repair=repair,
        refetch=tuple(refetch),
    )


def _store_problem(db: Cid, exc: StorageError) -> Problem:
    return Problem(
        kind="store",
        database=format_address(db),
        message=f"the file is damaged where this database lives: {exc}",
    )


def _integrity(store: NodeStore, repair: bool) -> list[Problem]:
    if not isinstance(store, SqliteStore):
        return []
    try:
        found = store.integrity_check()
        if found and repair:
            with suppress(StorageError):  # REINDEX fails on damaged table pages
                store.reindex()
            if not store.integrity_check():
                return [
                    Problem(kind="integrity", message=f"SQLite: {line}", repaired=True)
                    for line in found
                ]
    except StorageError as exc:
        return [Problem(kind="integrity", message=f"SQLite integrity_check fails: {exc}")]
    return [Problem(kind="integrity", message=f"SQLite: {line}") for line in found]


def _check_database(
    store: NodeStore, db: Cid, repair: bool, limits: EntryLimits
) -> tuple[list[Problem], list[str], int]:
    address = format_address(db)
    problems: list[Problem] = []
    manifest = _manifest(store, db, problems)
    log_store = store.log_store(db)
    scan = _scan(log_store, db, limits, address)
    problems.extend(scan.bad.values())
    true = _true_heads(scan.good.values())
    stored = log_store.get_heads()
    # With damaged entries the heads change anyway (to the true heads of what is left).
    heads_wrong = stored != true and not scan.bad
    if heads_wrong:
        hidden = len(true.keys() - stored.keys())
        wrong = len(stored.keys() - true.keys())
        problems.append(
            Problem(
                kind="heads",
                database=address,
                message=f"the stored heads hide {hidden} true head(s) and name {wrong}"
                " entries that are not heads",
                repaired=repair,
            )
        )
    view_bad = False
    if manifest is not None and not scan.bad:
        view_problem = _compare_view(store, db, manifest, scan)
        if view_problem is not None:
            problems.append(replace(view_problem, repaired=repair))
            view_bad = True
    removed: list[str] = []
    if repair and (scan.bad or stored != true or view_bad):
        # Also recomputes what the open-time heads check relies on (has_child).
        log_store.remove_entries(scan.bad)
        removed = [str(c) for c in scan.bad]
        log_store.set_heads(true)
        if manifest is not None and (scan.bad or view_bad):
            _rebuild_view(store, db, manifest, scan)
        problems = [replace(p, repaired=True) if p.kind != "manifest" else p for p in problems]
    return problems, removed, len(scan.good) + len(scan.bad)


def _manifest(store: NodeStore, db: Cid, problems: list[Problem]) -> Manifest | None:
    block = store.blocks.get(db)
    address = format_address(db)
    if block is None:
        problems.append(
            Problem(
                kind="manifest",
                database=address,
                message="the manifest block is missing; open the database by its address"
                " on a node connected to a peer that has it",
            )
        )
        return None
    try:
        return Manifest.from_block(db, block)
    except InvalidDataError as exc:
        problems.append(
            Problem(kind="manifest", database=address, message=f"the manifest is damaged: {exc}")
        )
        return None


def _scan(log_store: SeqLogStore, db: Cid, limits: EntryLimits, address: str) -> _Log:
    scan = _Log()
    for cid in log_store.missing_blocks():
        scan.bad[cid] = Problem(
            kind="missing", database=address, cid=str(cid), message="its block is gone"
        )
    for seq, cid, block in log_store.iter_since(0):
        scan.seqs[cid] = seq
        problem = _verify(cid, block, db, limits, scan)
        if problem is None:
            continue
        kind, message = problem
        scan.bad[cid] = Problem(kind=kind, database=address, cid=str(cid), message=message)
    return scan


def _verify(
    cid: Cid, block: bytes, db: Cid, limits: EntryLimits, scan: _Log
) -> tuple[str, str] | None:
    """None if the entry is sound (it joins ``scan.good``), else (kind, message)."""
    try:
        entry = Entry.from_block(cid, block, limits=limits)
    except InvalidDataError as exc:
        return "entry", f"no longer verifies: {exc}"
    if entry.db != db:
        return "entry", f"belongs to another database ({entry.db})"
    clocks = []
    for parent in entry.next:
        got = scan.good.get(parent)
        if got is None:
            why = "is damaged or missing" if parent in scan.bad else "is not stored"
            return "orphan", f"its parent {parent} {why}"
        clocks.append(got.clock)
    if entry.clock != next_clock(clocks):
        return "entry", f"clock {entry.clock} does not follow its parents"
    scan.good[cid] = entry
    return None


def _true_heads(entries: Iterable[Entry]) -> dict[Cid, int]:
    entries = list(entries)
    named = {p for e in entries for p in e.next}
    return {e.cid: e.clock for e in entries if e.cid not in named}


def _visible(store: NodeStore, db: Cid, manifest: Manifest, entries: list[Entry]) -> list[Entry]:
    """The entries a view folds: under capabilities access, only the visible ones."""
    if not isinstance(manifest.access, CapabilitiesAccess):
        return entries
    log_store = store.log_store(db)

    def get(cid: Cid) -> Entry | None:
        block = log_store.get_block(cid)
        return None if block is None else Entry.from_trusted_block(cid, block)

    caps = CapabilityLog(owner=manifest.access.owner, store=log_store, get_entry=get)
    return [e for e in entries if caps.visible(e)]


def _fold(view: View, entries: Sequence[Entry]) -> None:
    for i in range(0, len(entries), _BATCH):
        view.apply(entries[i : i + _BATCH], local=False)


def _compare_view(store: NodeStore, db: Cid, manifest: Manifest, scan: _Log) -> Problem | None:
    make_view = database_class(manifest.type)[1]
    if make_view is None or not isinstance(store, SqliteStore):
        return None
    if META_KEY in manifest.meta:  # folding needs the keys, which only an open handle has
        return None
    address = format_address(db)
    live = make_view(store, db, manifest)
    if isinstance(live, SnapshotView):
        upto = live.checkpoint()
    else:
        upto = store.get_checkpoint(db, live.name)
    entries = _visible(
        store, db, manifest, [e for c, e in scan.good.items() if scan.seqs[c] <= upto]
    )
    scratch = SqliteStore.in_memory()
    try:
        fresh = make_view(scratch, db, manifest)
        if getattr(fresh, "reads_log", False):  # conflicts are read back from the log
            scratch.log_store(db).add_entries(entries)
        _fold(fresh, entries)
        if manifest.type == "ydoc":
            from orbitstore.views.ydoc import YDocView  # pycrdt: only for ydoc databases

            assert isinstance(live, YDocView) and isinstance(fresh, YDocView)
            same = live.snapshot() == fresh.snapshot()
        else:
            same = view_rows(store, store.log_store(db).log_id) == view_rows(
                scratch, scratch.log_store(db).log_id
            )
    finally:
        scratch.close()
    if same:
        return None
    return Problem(
        kind="view",
        database=address,
        message=f"the {manifest.type} view differs from the view rebuilt from its log",
    )


def _rebuild_view(store: NodeStore, db: Cid, manifest: Manifest, scan: _Log) -> None:
    make_view = database_class(manifest.type)[1]
    if make_view is None:
        return
    log_store = store.log_store(db)
    if isinstance(store, SqliteStore):
        reset_view_rows(store, store.log_store(db).log_id)
    elif hasattr(store, "view_states"):
        store.view_states.pop((manifest.type, db), None)
    view = make_view(store, db, manifest)
    if META_KEY in manifest.meta:  # encrypted: the next open folds the log with its keys
        if not isinstance(view, SnapshotView):
            with store.transaction():
                store.set_checkpoint(db, view.name, 0)
        return
    kept = _visible(store, db, manifest, list(scan.good.values()))
    with store.transaction():
        _fold(view, kept)
        seq = log_store.last_seq()
        if isinstance(view, SnapshotView):
            view.save(seq, force=True)
        else:
            store.set_checkpoint(db, view.name, seq)
