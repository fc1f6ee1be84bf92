"""Private databases over real libp2p on 127.0.0.1 (in-process hosts, the production
wiring of ``open_node``): a member is served; a non-member is refused the manifest, the
heads and the entries; a named replica keeps serving a member while the writer is
offline; Bitswap withholds a private database's blocks."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from test_bitswap import presences_of, raw_client, serving, wants

import orbitstore
from orbitstore.core.access import StaticAccess
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.privacy import ReadSpec
from orbitstore.errors import AccessDeniedError, NotFoundError
from orbitstore.net.libp2p_config import Libp2pConfig
from orbitstore.node.privacy import PublicBlocks
from orbitstore.node.sync_status import SyncProgress
from orbitstore.storage.memory import MemoryBlockStore

LOOPBACK = "/ip4/127.0.0.1/tcp/0"
ALICE, BOB, MALLORY, PIN = (Identity(bytes([i]) * 32) for i in (31, 32, 33, 34))

pytestmark = pytest.mark.slow


def config(*peers: str) -> orbitstore.NodeConfig:
    return orbitstore.NodeConfig(
        network=Libp2pConfig(listen_addresses=(LOOPBACK,), bootstrap_peers=peers)
    )


def dial(node: orbitstore.Node) -> str:
    assert node.replication is not None
    transport = node.replication.transport
    address = transport.listen_addresses()[0]
    return address if "/p2p/" in address else f"{address}/p2p/{transport.peer_id}"


async def test_member_served_and_non_member_refused(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path / "a", config=config(), identity=ALICE) as a:
        team = await a.open("team", type="feed", write=[ALICE.id, BOB.id], private=True)
        await team.add("the plan")
        async with orbitstore.open_node(tmp_path / "b", config=config(dial(a)), identity=BOB) as b:
            replica = await b.open(team.address, type="feed")
            await replica.wait_synced(timeout=30)
            assert [i.value for i in replica.items()] == ["the plan"]
        async with orbitstore.open_node(
            tmp_path / "m", config=config(dial(a)), identity=MALLORY
        ) as m:
            assert m.replication is not None
            with pytest.raises(NotFoundError, match="1 refused") as info:
                await m.open(team.address, type="feed")
            assert "private database" in str(info.value)
            # Nothing of the database reached Mallory's store.
            assert m.store.blocks.get(team.cid) is None
            assert all(m.store.blocks.get(e.cid) is None for e in team.log.traverse())
        # Mallory got the manifest out of band (say, she was a member once): the sync
        # itself is refused, typed, in her sync status; no heads, no entries.
        async with orbitstore.open_node(
            tmp_path / "m2", config=config(dial(a)), identity=MALLORY
        ) as m:
            m.store.blocks.put(team.cid, team.manifest.to_block()[1])
            mine = await m.open(team.address, type="feed")
            assert m.replication is not None
            assert a.replication is not None
            with trio.fail_after(30):
                async with (
                    a.replication.subscribe_progress() as refused,
                    m.replication.subscribe_progress() as events,
                ):
                    m.replication.request_sync(mine, a.replication.peer_id)
                    while True:
                        event = await events.receive()
                        if getattr(event, "kind", None) == "failed":
                            break
                    while True:  # Alice's side names who she refused
                        seen = await refused.receive()
                        if getattr(seen, "kind", None) == "failed":
                            break
            assert isinstance(seen, SyncProgress) and seen.failure is not None
            assert seen.failure.user == MALLORY.id
            (status,) = m.replication.statistics().databases
            (peer,) = status.peers
            assert peer.last_failure is not None
            assert peer.last_failure.code == AccessDeniedError.code
            assert peer.heads_known == frozenset() and not peer.has_database
            assert len(mine.log) == 0 and mine.heads == frozenset()
        # Alice logged and counted no session with Mallory that served anything.
        assert a.replication is not None
        stats = a.replication.statistics()
        assert stats.manifests_served == 1  # Bob's only


async def test_replica_serves_a_member_while_the_writer_is_offline(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path / "pin", config=config(), identity=PIN) as pin:
        async with orbitstore.open_node(
            tmp_path / "a", config=config(dial(pin)), identity=ALICE
        ) as a:
            team = await a.open(
                "team", type="feed", write=[ALICE.id, BOB.id], private=True, replicas=[PIN.id]
            )
            for i in range(3):
                await team.add(f"note {i}")
            assert pin.replication is not None
            await pin.replication.connect(dial(a))
            held = await pin.open(team.address, type="feed")
            await held.wait_synced(timeout=30)
            assert held.heads == team.heads
            address, heads = team.address, team.heads
        # The writer is offline; Bob reaches the replica only.
        async with orbitstore.open_node(
            tmp_path / "b", config=config(dial(pin)), identity=BOB
        ) as b:
            mine = await b.open(address, type="feed")
            await mine.wait_synced(timeout=30)
            assert mine.heads == heads
            assert [i.value for i in mine.items()] == [f"note {i}" for i in range(3)]
            # And Mallory, who reaches the replica too, is refused there as well.
            async with orbitstore.open_node(
                tmp_path / "m", config=config(dial(pin)), identity=MALLORY
            ) as m:
                with pytest.raises(NotFoundError, match="1 refused"):
                    await m.open(address, type="feed")


async def test_bitswap_withholds_private_blocks() -> None:
    private = Manifest(
        name="p",
        type="feed",
        access=StaticAccess.of([ALICE.id]),
        meta={"read": ReadSpec.of().to_meta()},
    )
    public = Manifest(name="q", type="feed", access=StaticAccess.of([ALICE.id]))
    store = MemoryBlockStore()
    cids = {}
    for name, manifest in (("private", private), ("public", public)):
        db, block = manifest.to_block()
        entry = Entry.create(ALICE, db=db, clock=1, next=(), payload={"n": name})
        store.put(db, block)
        store.put(entry.cid, entry.block)
        cids[name] = (db, entry.cid)
    async with serving(PublicBlocks(store)) as server, raw_client(server) as client:  # type: ignore[arg-type]
        asked = [*cids["private"], *cids["public"]]
        replies = await client.exchange(wants(*asked, want_have=True))
    found = dict(presences_of(replies))
    assert found == {
        cids["private"][0]: False,
        cids["private"][1]: False,
        cids["public"][0]: True,
        cids["public"][1]: True,
    }
    assert AccessDeniedError.code == "access_denied"
