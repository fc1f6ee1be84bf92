"""Two devices of one user on two real nodes (libp2p on 127.0.0.1): the phone pairs with
the laptop over the pairing protocol, both write to the user's database as the user, and
the laptop unlinks the phone (its later writes are refused everywhere)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

import orbitstore
from orbitstore.core.entry import Entry
from orbitstore.errors import InvalidValueError, ProtocolError, WriteNotAllowedError
from orbitstore.net.libp2p_config import Libp2pConfig
from orbitstore.node.keyvalue import KeyValue

LOOPBACK = "/ip4/127.0.0.1/tcp/0"


async def reach(node: orbitstore.Node, db: KeyValue, entry: Entry) -> None:
    """Wait (on replication progress events, 30 s at most) until ``db`` holds ``entry``."""
    assert node.replication is not None
    with trio.fail_after(30):
        async with node.replication.subscribe_progress() as events:
            while not db.log.has(entry.cid):
                await events.receive()


def config() -> orbitstore.NodeConfig:
    return orbitstore.NodeConfig(network=Libp2pConfig(listen_addresses=(LOOPBACK,)))


async def test_two_devices_of_one_user_pair_write_and_unlink(tmp_path: Path) -> None:
    async with (
        orbitstore.open_node(tmp_path / "laptop", config=config()) as laptop,
        orbitstore.open_node(tmp_path / "phone", config=config()) as phone,
    ):
        user = laptop.create_user()
        notes = await laptop.open("notes", type="keyvalue", access="capabilities")
        assert isinstance(notes, KeyValue)
        await notes.put("laptop", 1)

        offer = laptop.open_pairing(ttl=60)
        assert "/p2p/" in offer.link and offer.code in offer.link
        with pytest.raises(ProtocolError, match="wrong or expired"):
            await phone.pair(offer.link.replace(offer.code, "0000-0000"))
        delegation = await phone.pair(offer.link)
        assert delegation.user == user and phone.user_id == user
        assert phone.id in laptop.device_info()["devices"]
        with pytest.raises(ProtocolError):  # one time only
            await phone.pair(offer.link)
        with pytest.raises(InvalidValueError):
            await phone.pair("/ip4/127.0.0.1/tcp/1#pair=1234")

        mine = await phone.open(notes.address, type="keyvalue")  # manifest from the laptop
        assert isinstance(mine, KeyValue)
        await mine.wait_synced(timeout=30)
        assert mine.get("laptop") == 1
        wrote = await mine.put("phone", 2)  # links itself, writes as the user (the owner)
        await reach(laptop, notes, wrote)
        assert notes.get("phone") == 2
        assert notes.devices() == {user: sorted([laptop.id, phone.id])}

        await laptop.unlink_device(phone.id)
        await reach(phone, mine, next(iter(notes.entries(reverse=True, limit=1))))
        assert mine.devices() == {user: [laptop.id]}
        with pytest.raises(WriteNotAllowedError):
            await mine.put("stolen", 3)
        again = await notes.put("laptop-again", 4)  # the other device keeps writing
        await reach(phone, mine, again)
        assert mine.get("laptop-again") == 4 and mine.get("phone") == 2
