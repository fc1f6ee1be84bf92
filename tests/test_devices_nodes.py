"""Users with several devices on real nodes (in memory and on disk): linking, writing
as the user, unlinking a lost device, persistence, and the device API surface."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from orbitstore.core.devices import Delegation
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.errors import KeystoreError, UsageError, WriteNotAllowedError
from orbitstore.node import open_node
from orbitstore.node.keyvalue import KeyValue
from orbitstore.node.node import Node
from orbitstore.storage.memory import MemoryStore

LAPTOP = Identity(b"\x11" * 32)
PHONE = Identity(b"\x12" * 32)
FRIEND = Identity(b"\x13" * 32)


async def sync(a: KeyValue, b: KeyValue) -> None:
    """Exchange every entry both ways (as a sync session would)."""
    blocks_a = [(e.cid, e.block) for e in a.entries()]
    blocks_b = [(e.cid, e.block) for e in b.entries()]
    await b.receive(blocks_a)
    await a.receive(blocks_b)


async def open_copy(node: Any, db: KeyValue) -> KeyValue:
    """Open ``db`` on another in-memory node (its manifest copied over)."""
    cid, block = db.manifest.to_block()
    node.store.blocks.put(cid, block)
    got = await node.open(db.address, type="keyvalue")
    assert isinstance(got, KeyValue)
    return got


def raw(db: KeyValue, who: Identity, payload: Any, parents: list[Entry]) -> Entry:
    return Entry.create(
        who,
        db=db.cid,
        clock=max((p.clock for p in parents), default=0) + 1,
        next=sorted((p.cid for p in parents), key=bytes),
        payload=payload,
    )


@asynccontextmanager
async def owner_and_user_devices() -> AsyncIterator[tuple[Node, Node, Node, str, KeyValue]]:
    """A friend's node owning a capabilities database ``team``, and a user whose first
    device is the laptop and whose phone is linked: ``(owner, laptop, phone, user, team)``."""
    async with (
        open_node(store=MemoryStore(), identity=FRIEND) as owner,
        open_node(store=MemoryStore(), identity=LAPTOP) as laptop,
        open_node(store=MemoryStore(), identity=PHONE) as phone,
    ):
        user = laptop.create_user()
        phone.accept_delegation(laptop.delegate_device(PHONE.id))
        team = await owner.open("team", type="keyvalue", access="capabilities")
        assert isinstance(team, KeyValue)
        yield owner, laptop, phone, user, team


async def test_two_devices_of_one_user_write_as_the_user_and_a_lost_one_is_unlinked() -> None:
    async with (
        open_node(store=MemoryStore(), identity=LAPTOP) as laptop,
        open_node(store=MemoryStore(), identity=PHONE) as phone,
    ):
        user = laptop.create_user()
        assert laptop.user_id == user and laptop.id == LAPTOP.id
        phone.accept_delegation(laptop.delegate_device(PHONE.id).to_text())
        assert phone.user_id == user

        a = await laptop.open("notes", type="keyvalue", access="capabilities")
        assert isinstance(a, KeyValue)
        assert a.manifest.access.to_manifest()["owner"] == user  # owned by the user
        await a.put("from", "laptop")  # the laptop's link op is posted first
        b = await open_copy(phone, a)
        await sync(a, b)
        await b.put("phone", 1)  # the phone links itself, then writes as the owner
        await sync(a, b)
        assert a.get("phone") == 1 and b.get("from") == "laptop"
        assert a.devices() == {user: sorted([LAPTOP.id, PHONE.id])}
        assert a.user_of(PHONE.id) == user and a.is_member(PHONE.id)
        rows = a.writers()
        assert rows[0]["user"] == user
        assert {d["device"] for d in rows[0]["devices"]} == {LAPTOP.id, PHONE.id}
        assert all(d["linked"] and d["links"] and not d["unlinks"] for d in rows[0]["devices"])
        phone_since = next(d for d in rows[0]["devices"] if d["device"] == PHONE.id)["since"]
        assert phone_since == phone.device.delegation.issued  # type: ignore[union-attr]

        # The phone is lost. It writes on old heads, concurrently with the unlinking.
        stale = [b.get_entry(h) for h in b.heads]
        concurrent = raw(b, PHONE, {"op": "put", "key": "thief", "value": 1}, stale)  # type: ignore[arg-type]
        await b.receive_entries([concurrent])
        statement = await laptop.unlink_device(PHONE.id)
        assert statement.device == PHONE.id
        await a.receive_entries([concurrent])
        assert a.get("thief") is None  # concurrent with the unlinking: excluded
        assert a.get("phone") == 1  # before it: kept
        assert a.devices() == {user: [LAPTOP.id]}
        assert not a.is_member(PHONE.id) and a.is_member(LAPTOP.id)
        # writers() still shows the phone, unlinked, since the unlinking's issue time.
        devices = {d["device"]: d for d in a.writers()[0]["devices"]}
        assert devices[LAPTOP.id]["linked"] and not devices[PHONE.id]["linked"]
        assert devices[PHONE.id]["since"] == statement.issued
        assert devices[PHONE.id]["links"] == [] and len(devices[PHONE.id]["unlinks"]) == 1
        await a.put("after", "laptop")  # the user's other device keeps writing
        # After it: refused on the thief's own node once it knows, and everywhere.
        await sync(a, b)
        assert b.get("thief") is None
        with pytest.raises(WriteNotAllowedError):
            await b.put("later", 1)
        later = raw(
            b, PHONE, {"op": "put", "key": "later", "value": 1}, [a.get_entry(h) for h in a.heads]
        )  # type: ignore[misc]
        result = await a.receive_entries([later])
        assert result.rejected or a.get("later") is None
        # Re-posting its old delegation does not re-link it (unlinking is by issue time).
        relink = raw(
            b,
            PHONE,
            {"acl": {"op": "link", "delegation": phone.device.delegation.to_value()}},
            [a.get_entry(h) for h in a.heads],
        )  # type: ignore[union-attr,misc]
        await a.receive_entries([relink])
        after = raw(b, PHONE, {"op": "put", "key": "relinked", "value": 1}, [relink])
        await a.receive_entries([after])
        assert a.get("relinked") is None
        assert a.get("after") == "laptop"


async def test_a_users_grant_covers_all_its_devices() -> None:
    async with owner_and_user_devices() as (_owner, _laptop, phone, user, team):
        await team.grant(user, "write", scope="u/")
        b = await open_copy(phone, team)
        await sync(team, b)
        await b.put("u/phone", True)
        with pytest.raises(WriteNotAllowedError):
            await b.put("other", True)  # the user's scope applies to its devices
        await sync(team, b)
        assert team.get("u/phone") is True
        # Revoking the user revokes every device of it.
        await team.revoke(user, "write", scope="u/")
        await sync(team, b)
        with pytest.raises(WriteNotAllowedError):
            await b.put("u/again", True)
        assert not team.is_member(PHONE.id)


async def test_pairing_desk_refuses_wrong_codes_and_pairs_once() -> None:
    from orbitstore.core import pairing

    root = Identity(b"\x21" * 32)
    desk = pairing.PairingDesk(peer="12D3KooWpeer")
    code = desk.open(b"\x01\x02\x03\x04\x05", 0.0, ttl=60)
    assert pairing.normalize_code(code.lower()) == code and len(code) == 9
    wrong = pairing.request(PHONE, "0000-0000", "12D3KooWpeer")
    with pytest.raises(Exception, match="wrong or expired"):
        pairing.parse_answer(desk.answer(wrong, now=1.0, root=root, issued=1), PHONE.id)
    other_peer = pairing.request(PHONE, code, "12D3KooWother")  # bound to the peer id
    with pytest.raises(Exception, match="wrong or expired"):
        pairing.parse_answer(desk.answer(other_peer, now=1.0, root=root, issued=1), PHONE.id)
    good = pairing.request(PHONE, code, "12D3KooWpeer")
    delegation = pairing.parse_answer(desk.answer(good, now=2.0, root=root, issued=5), PHONE.id)
    assert delegation.user == root.id and delegation.device == PHONE.id
    with pytest.raises(Exception, match="wrong or expired"):  # one time only
        pairing.parse_answer(desk.answer(good, now=3.0, root=root, issued=6), PHONE.id)
    late = desk.open(b"\x09" * 5, 10.0, ttl=5)
    request = pairing.request(PHONE, late, "12D3KooWpeer")
    with pytest.raises(Exception, match="wrong or expired"):  # expired
        pairing.parse_answer(desk.answer(request, now=16.0, root=root, issued=7), PHONE.id)
    # Too many wrong guesses close every open code.
    kept = desk.open(b"\x07" * 5, 20.0, ttl=60)
    for _ in range(pairing.MAX_FAILURES):
        desk.answer(wrong, now=21.0, root=root, issued=8)
    assert desk.codes == []
    with pytest.raises(Exception, match="wrong or expired"):
        pairing.parse_answer(
            desk.answer(
                pairing.request(PHONE, kept, "12D3KooWpeer"), now=22.0, root=root, issued=9
            ),
            PHONE.id,
        )


async def test_device_state_persists_and_rejects_a_foreign_delegation(tmp_path: Path) -> None:
    async with open_node(tmp_path / "laptop") as laptop:
        user = laptop.create_user()
        phone_id = Identity(b"\x31" * 32).id
        laptop.delegate_device(phone_id)
    async with open_node(tmp_path / "laptop") as laptop:
        assert laptop.user_id == user
        info = laptop.device_info()
        assert info["holds_root"] and phone_id in info["devices"]
        with pytest.raises(UsageError):
            laptop.accept_delegation(
                Delegation.create(Identity(b"\x32" * 32), Identity(b"\x33" * 32).id, issued=1)
            )
    async with open_node(tmp_path / "other") as other:
        other_id = other.id
    (tmp_path / "other" / "device.json").write_text(
        (tmp_path / "laptop" / "device.json").read_text()
    )
    with pytest.raises(KeystoreError):
        async with open_node(tmp_path / "other"):
            pass
    assert other_id != user


async def test_encryption_epochs_are_sealed_to_each_device_of_a_user() -> None:
    async with (
        open_node(store=MemoryStore(), identity=LAPTOP) as laptop,
        open_node(store=MemoryStore(), identity=PHONE) as phone,
    ):
        user = laptop.create_user()
        phone.accept_delegation(laptop.delegate_device(PHONE.id))
        a = await laptop.open("secret", type="keyvalue", access="capabilities", encrypted=True)
        assert isinstance(a, KeyValue)
        await a.put("one", 1)
        b = await open_copy(phone, a)
        await sync(a, b)
        await b.announce_key()  # posts the phone's link op first, then its key
        await sync(a, b)
        await a.set_readers([user])  # the user: every linked device that announced
        assert a.readers == {LAPTOP.id, PHONE.id}
        await sync(a, b)
        assert b.get("one") == 1  # history too
        await b.put("two", 2)
        await sync(a, b)
        assert a.get("two") == 2
        await laptop.unlink_device(PHONE.id)  # a new epoch without the phone
        assert a.readers == {LAPTOP.id}
        await a.put("three", 3)
        await sync(a, b)
        assert b.get("three") is None and a.get("three") == 3


async def test_an_invite_redeemed_on_a_device_admits_the_user_and_its_devices() -> None:
    async with owner_and_user_devices() as (_owner, laptop, phone, user, team):
        link = await team.invite(scope="u/")
        a = await open_copy(laptop, team)
        await sync(team, a)
        redeemed = await a.redeem(link)  # for the user, not the laptop's own key
        assert redeemed.payload["acl"]["to"] == user
        await a.put("u/laptop", 1)
        b = await open_copy(phone, team)
        await sync(a, b)
        await b.put("u/phone", 2)
        await sync(team, a)
        await sync(team, b)
        assert team.get("u/laptop") == 1 and team.get("u/phone") == 2
        [row] = [w for w in team.writers() if w["user"] == user]
        assert row["rights"] == [{"right": "write", "scope": "u/"}]
        assert {d["device"] for d in row["devices"]} == {LAPTOP.id, PHONE.id}
