"""The learned keys of an encrypted database are kept sealed next to the view's
checkpoint (storage/keys.py), so reopening does not read the log again; the SQLite file
never holds an epoch key in the clear; a stale, damaged or rolled-back state is never
trusted over the log."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orbitstore.core import encryption as enc
from orbitstore.core.identity import Identity
from orbitstore.node import NodeConfig, open_node
from orbitstore.node.keyvalue import KeyValue
from orbitstore.storage.sqlite import SqliteStore

CONFIG = NodeConfig(timestamps=False)
ALICE, BOB, CAROL = (Identity(bytes([i]) * 32) for i in (61, 62, 63))


def db_file(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file() and not p.name.endswith(".json")]


async def make(home: Path) -> tuple[bytes, set[str]]:
    """An encrypted keyvalue with two epochs; returns its newest epoch key and readers."""
    async with open_node(home, identity=ALICE, config=CONFIG) as node:
        db = await node.open("kv", type="keyvalue", encrypted=True)
        assert isinstance(db, KeyValue)
        await db.announce_key(enc.announcement(BOB, db.cid))
        await db.set_readers([BOB.id])
        for i in range(50):
            await db.put(f"k{i}", f"secret {i}")
        keys = db._keys
        assert keys is not None
        return keys._keys[keys._current.cid], set(db.readers)  # type: ignore[union-attr]


async def test_reopen_takes_the_stored_keys_without_reading_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, readers = await make(tmp_path)
    from orbitstore.node import encryption as node_encryption

    learned: list[int] = []
    real = node_encryption.DatabaseKeys.learn

    def counting(self: node_encryption.DatabaseKeys, entries: object) -> set[object]:
        items = list(entries)  # type: ignore[call-overload]
        learned.append(len(items))
        return real(self, items)  # type: ignore[return-value]

    monkeypatch.setattr(node_encryption.DatabaseKeys, "learn", counting)
    async with open_node(tmp_path, identity=ALICE, config=CONFIG) as node:
        db = await node.open("kv", type="keyvalue")
        assert isinstance(db, KeyValue)
        assert sum(learned) == 0  # nothing read back from the log
        assert set(db.readers) == readers and db.is_reader
        assert db.get("k49") == "secret 49"
        await db.put("more", "after reopen")  # writes under the stored current epoch
    async with open_node(tmp_path, identity=ALICE, config=CONFIG) as node:
        db = await node.open("kv", type="keyvalue")
        assert isinstance(db, KeyValue) and db.get("more") == "after reopen"
    # At rest, the epoch key is sealed: no file of the node holds it in the clear.
    for path in db_file(tmp_path):
        assert key not in path.read_bytes(), path


async def test_a_damaged_stored_state_is_relearned_from_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, readers = await make(tmp_path)
    async with open_node(tmp_path, identity=ALICE, config=CONFIG) as node:
        assert isinstance(node.store, SqliteStore)
        conn = node.store.connection
        (state,) = conn.execute("SELECT state FROM db_keys").fetchone()
        damaged = bytes(state[:-1]) + bytes([state[-1] ^ 1])
        conn.execute("UPDATE db_keys SET state=?", (damaged,))
        if conn.in_transaction:
            conn.commit()
    async with open_node(tmp_path, identity=ALICE, config=CONFIG) as node:
        db = await node.open("kv", type="keyvalue")
        assert isinstance(db, KeyValue)
        assert set(db.readers) == readers and db.get("k0") == "secret 0"
    assert "stored keys" in caplog.text and "relearning" in caplog.text


async def test_another_identity_cannot_use_the_stored_state(tmp_path: Path) -> None:
    await make(tmp_path)
    async with open_node(tmp_path, identity=ALICE, config=CONFIG) as node:
        assert isinstance(node.store, SqliteStore)
        (state,) = node.store.connection.execute("SELECT state FROM db_keys").fetchone()
        cid = node.store.get_name("kv")
    assert cid is not None
    from orbitstore.errors import DecryptionError
    from orbitstore.node.encryption import DatabaseKeys

    spec = enc.EncryptionSpec(owner=ALICE.id)
    other = DatabaseKeys(db=cid, spec=spec, identity=CAROL, random_bytes=bytes)
    with pytest.raises(DecryptionError):
        other.import_sealed(bytes(state), lambda c: None)
    mine = DatabaseKeys(db=cid, spec=spec, identity=ALICE, random_bytes=bytes)
    mine.import_sealed(bytes(state), lambda c: None)  # the same bytes open for Alice
    assert mine.can_write()


async def test_a_rolled_back_rotation_is_not_kept_at_rest(tmp_path: Path) -> None:
    _, readers = await make(tmp_path)
    async with open_node(tmp_path, identity=ALICE, config=CONFIG) as node:
        db = await node.open("kv", type="keyvalue")
        assert isinstance(db, KeyValue)
        with pytest.raises(RuntimeError):
            async with node.writes.batch():
                await db.set_readers([])
                await db.put("lost", 1)
                raise RuntimeError("roll it back")
        assert set(db.readers) == readers
    async with open_node(tmp_path, identity=ALICE, config=CONFIG) as node:
        db = await node.open("kv", type="keyvalue")
        assert isinstance(db, KeyValue)
        assert set(db.readers) == readers and db.get("lost") is None


def test_the_state_table_is_not_a_view_table() -> None:
    conn = sqlite3.connect(":memory:")
    from orbitstore.storage import keys

    conn.execute(keys._TABLE)
    assert not keys._TABLE.split("(")[0].split()[-1].startswith("view_")
