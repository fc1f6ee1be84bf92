"""Entries built by hand for tests: as if another node had written them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity


def entry_after(
    signer: Identity, db: Cid, payload: Any, parents: Sequence[Entry], *, ts: int | None = None
) -> Entry:
    """An entry of database ``db`` signed by ``signer`` whose parents are ``parents``
    (at least one), with the next clock after theirs."""
    return Entry.create(
        signer,
        db=db,
        clock=max(p.clock for p in parents) + 1,
        next=sorted((p.cid for p in parents), key=bytes),
        payload=payload,
        ts=ts,
    )
