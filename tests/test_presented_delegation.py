"""Read control for a device whose link ops the serving node does not hold yet: the
delegation it presents decides, unless an unlinking the node holds covers it or it
expired (Hypothesis, against a reference written from docs/identity.md)."""

from __future__ import annotations

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from orbitstore.core.devices import Delegation, Unlink
from orbitstore.core.identity import Identity
from orbitstore.node import open_node
from orbitstore.storage.memory import MemoryStore

OWNER, USER, OTHER_USER, DEVICE = (Identity(bytes([i]) * 32) for i in (51, 52, 53, 54))
ROOTS = {"user": USER, "other": OTHER_USER}

unlinks = st.lists(st.tuples(st.sampled_from(["user", "other"]), st.integers(1, 10)), max_size=4)


def reference(issued: int, expires: int | None, now: int, posted: list[tuple[str, int]]) -> str:
    """docs/identity.md: an unlinking kills the delegations of its (device, user) issued
    no later than it; an expired delegation acts for nobody."""
    if expires is not None and now >= expires:
        return DEVICE.id
    if any(who == "user" and at >= issued for who, at in posted):
        return DEVICE.id
    return USER.id


@settings(max_examples=60, deadline=None)
@given(
    issued=st.integers(1, 10),
    lifetime=st.none() | st.integers(1, 10),
    now=st.integers(1, 25),
    posted=unlinks,
)
def test_a_presented_delegation_reads_for_its_user_unless_unlinked_or_expired(
    issued: int, lifetime: int | None, now: int, posted: list[tuple[str, int]]
) -> None:
    expires = None if lifetime is None else issued + lifetime
    delegation = Delegation.create(USER, DEVICE.id, issued=issued, expires=expires)

    async def principal() -> str:
        async with open_node(store=MemoryStore(), identity=OWNER) as node:
            db = await node.open("team", type="keyvalue", access="capabilities")
            await db.grant(USER.id)
            for who, at in posted:
                await db.unlink_device(Unlink.create(ROOTS[who], DEVICE.id, issued=at))
            caps = db.log.capabilities
            assert caps is not None
            assert caps.graph.principal_for(DEVICE.id) == DEVICE.id  # nothing presented
            return caps.graph.principal_for(DEVICE.id, delegation, now=now)

    assert trio.run(principal) == reference(issued, expires, now, posted)
