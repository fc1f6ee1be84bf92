"""AS OF snapshots of capabilities databases show what the live view showed then: entries
retracted by a revocation in the snapshot's past are left out, a revocation outside it
retracts nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.node import open_node
from orbitstore.node.keyvalue import KeyValue

OWNER = Identity(b"\x01" * 32)
ALICE = Identity(b"\x02" * 32)
SQL = "SELECT key, value FROM this ORDER BY key"


def _put(db: KeyValue, who: Identity, key: str, value: Any, parents: list[Cid]) -> Entry:
    """An entry by ``who`` on ``parents`` (as if it came from another node)."""
    clocks = [e.clock for e in (db.get_entry(p) for p in parents) if e is not None]
    return Entry.create(
        who,
        db=db.cid,
        clock=max(clocks, default=0) + 1,
        next=sorted(parents, key=bytes),
        payload={"op": "put", "key": key, "value": value},
    )


def _rows(db: KeyValue, as_of: Any = None) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in db.query(SQL, as_of=as_of).rows]


async def test_as_of_leaves_out_entries_a_revocation_in_its_past_retracts(
    tmp_path: Path,
) -> None:
    async with open_node(tmp_path, identity=OWNER) as node:
        db = await node.open("team", type="keyvalue", access="capabilities")
        assert isinstance(db, KeyValue)
        await db.put("o", "owner")
        grant = await db.grant(ALICE.id, "write")
        first = _put(db, ALICE, "k", "alice-1", [grant.cid])
        assert not (await db.receive_entries([first])).rejected
        await db.revoke(ALICE.id)
        # Alice, not knowing, writes on the old parents: concurrent with the revoke
        late = _put(db, ALICE, "k", "alice-2", [first.cid])
        assert not (await db.receive_entries([late])).rejected
        revoked = db.heads  # the revoke and Alice's retracted entry
        assert len(revoked) == 2
        shown = _rows(db)
        assert shown == [("k", "alice-1"), ("o", "owner")]  # the live view retracts it
        await db.put("o", "later")  # now those heads are a past state
        assert _rows(db, as_of=revoked) == shown
        # Before the revoke, Alice's write was visible: a revocation outside the
        # snapshot's past retracts nothing there.
        assert _rows(db, as_of=[late.cid]) == [("k", "alice-2"), ("o", "owner")]
        assert _rows(db, as_of=[first.cid]) == [("k", "alice-1"), ("o", "owner")]
