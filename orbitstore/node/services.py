"""What a node shares with every database handle it opens: :class:`HandleServices`.

The handle's own parts (its log, store, view and keys) are per database; these are one
per node, passed in through the handle's constructor (``Database(services=...)``) so
production wiring happens in one place (:class:`~orbitstore.node.node.Node`) and a
handle built alone (a test) gets private defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from orbitstore.node.access import Membership
from orbitstore.node.attachments import Attachments
from orbitstore.node.query import QueryService
from orbitstore.node.verify import Verifier
from orbitstore.node.writes import NodeWrites

if TYPE_CHECKING:
    from orbitstore.node.database import Database


class SyncWaiter(Protocol):
    """What :meth:`Database.wait_synced` asks of the node's replication
    (:class:`orbitstore.node.opening.SyncWaiter`)."""

    async def wait_synced(
        self, database: Database, *, peer: str | None, timeout: float
    ) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class HandleServices:
    """The node's services, as its database handles use them."""

    writes: NodeWrites
    """The write lock and batches shared by the node's databases (node/writes.py)."""
    queries: QueryService | None = None
    """The SQL service (node/query.py); None: the handle answers no SQL."""
    sync: SyncWaiter | None = None
    """The node's replication, on a node with a transport (``wait_synced``)."""
    attachments: Attachments | None = None
    """The node's attachments (node/attachments.py); None: a local store of the handle."""
    members: Membership = field(default_factory=Membership)
    """The membership service (node/access.py), knowing the node's delegation."""
    verifier: Verifier = field(default_factory=lambda: Verifier(1, processes=False))
    """Checks received entry blocks (node/verify.py): the node's worker processes; a
    handle built alone verifies on one thread."""
