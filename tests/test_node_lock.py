"""One owner per node directory, an atomic keystore, and heads that never hide entries."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from orbitstore import open_node
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.oplog import OpLog
from orbitstore.errors import NodeLockedError
from orbitstore.node.node import KEYSTORE_FILE, STORE_FILE
from orbitstore.storage.keystore import Keystore
from orbitstore.storage.sqlite import SCHEMA_VERSION, SqliteStore

RACER = Path(__file__).parent / "helpers" / "open_race.py"
DEADLINE = 60.0  # seconds for a racer to answer; far above what it needs


def _racers(kind: str, path: Path, count: int) -> list[subprocess.Popen[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, str(RACER), kind, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for proc in procs:  # every racer is started and waiting before any of them goes
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["ready"]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    return procs


def _answer(proc: subprocess.Popen[str]) -> dict[str, object]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(DEADLINE)
        assert proc.stderr is not None
        raise AssertionError(f"racer died: {proc.stderr.read()}")
    answer: dict[str, object] = json.loads(line)
    return answer


@pytest.mark.parametrize("round", range(3))
def test_processes_racing_on_a_fresh_directory_one_wins(tmp_path: Path, round: int) -> None:
    home = tmp_path / "node"
    procs = _racers("node", home, 3)
    try:
        answers = [_answer(p) for p in procs]
        winners = [a for a in answers if "opened" in a]
        losers = [a for a in answers if "error" in a]
        assert len(winners) == 1, answers
        assert len(losers) == 2, answers
        winner = winners[0]
        for lost in losers:
            assert lost["error"] == "node_locked"
            assert f"process {winner['pid']}" in str(lost["message"])
            assert "API" in str(lost["message"])
        # The keystore is whole, and it holds the key the winner writes with.
        keys = json.loads((home / KEYSTORE_FILE).read_text())
        assert list(keys["keys"]) == ["default"]
        stored = Keystore(home / KEYSTORE_FILE).get()
        assert stored is not None and stored.id == winner["opened"]
        assert not [p.name for p in home.iterdir() if p.name.endswith(".tmp")]
    finally:
        for proc in procs:
            proc.communicate("exit\n", timeout=DEADLINE)
    assert [p.returncode for p in procs] == [0, 0, 0]

    async def reopen() -> None:  # the winner is gone: its lock went with it
        async with open_node(home) as node:
            assert node.id == winner["opened"]
            db = await node.open("race")
            assert [e.payload for e in db.entries()] == [{"by": winner["pid"]}]

    trio.run(reopen)


def test_processes_racing_to_create_one_keystore_all_get_the_same_key(tmp_path: Path) -> None:
    procs = _racers("keystore", tmp_path, 4)
    answers = [_answer(p) for p in procs]
    for proc in procs:
        proc.communicate(timeout=DEADLINE)
    assert all("opened" in a for a in answers), answers
    assert len({a["opened"] for a in answers}) == 1
    stored = Keystore(tmp_path / "keystore.json").get()
    assert stored is not None and stored.id == answers[0]["opened"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_keystore_created_meanwhile_is_loaded_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    mine, theirs = Keystore(path), Keystore(path)
    assert mine.get() is None  # we looked: nothing there yet
    winner = theirs.get_or_create()  # ...and another process created it meanwhile
    assert mine._create({"default": Identity(b"\x01" * 32).seed.hex()}) is False
    assert mine.get_or_create().id == winner.id
    assert Keystore(path).get_or_create().id == winner.id


async def test_second_open_node_in_the_same_process_is_refused(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        with pytest.raises(NodeLockedError) as info:
            async with open_node(tmp_path):
                pass  # pragma: no cover
        assert f"process {os.getpid()}" in str(info.value)
        assert info.value.details["pid"] == os.getpid()
        db = await node.open("still-mine")  # the refused opener changed nothing
        await db.append(1)
    async with open_node(tmp_path) as node:  # released on close
        assert len(await node.open("still-mine")) == 1


async def test_a_cli_command_while_a_node_runs_gets_the_typed_error(tmp_path: Path) -> None:
    async with open_node(tmp_path):
        done = await trio.run_process(
            [sys.executable, "-m", "orbitstore", "--home", str(tmp_path), "id"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    err = done.stderr.decode()
    assert done.returncode == 2
    assert "[node_locked]" in err and f"process {os.getpid()}" in err
    assert "Traceback" not in err
    assert done.stdout == b""


def _other_writer_entry(db_cid: object, parents: list[Entry]) -> Entry:
    from orbitstore.core.cid import Cid

    assert isinstance(db_cid, Cid)
    return Entry.create(
        Identity(b"\x07" * 32),
        db=db_cid,
        clock=max((p.clock for p in parents), default=0) + 1,
        next=[p.cid for p in parents],
        payload="fork",
    )


async def test_heads_damaged_by_hand_are_repaired_on_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_node(tmp_path) as node:
        db = await node.open("h", write=["*"])
        first = await db.append(0)
        for n in range(1, 6):
            await db.append(n)
        fork = _other_writer_entry(db.cid, [first])  # a branch beside the chain
        await db.receive_entries([fork])
        true_heads = db.heads
        assert len(true_heads) == 2
        count = len(db)
    with sqlite3.connect(tmp_path / STORE_FILE) as conn:
        conn.execute("DELETE FROM heads")
        conn.execute("INSERT INTO heads(log, cid, clock) VALUES (1, ?, 1)", (bytes(first.cid),))
    conn.close()
    with caplog.at_level(logging.WARNING, logger="orbitstore.storage.sqlite"):
        async with open_node(tmp_path) as node:
            db = await node.open("h")
            assert db.heads == true_heads
            assert len(list(db.log.traverse(db.heads))) == count == len(db)
    assert "repaired to its 2 true heads" in caplog.text


def test_two_stores_on_one_file_overwriting_heads_lose_nothing_on_reopen(tmp_path: Path) -> None:
    """The original bug, below the lock: two writers keep their heads in memory and each
    overwrites the other's, hiding the other's entries. Reopening repairs the heads."""
    from orbitstore.core.access import StaticAccess
    from orbitstore.core.manifest import Manifest

    path = tmp_path / STORE_FILE
    a_id, b_id = Identity(b"\x0a" * 32), Identity(b"\x0b" * 32)
    manifest = Manifest(name="x", type="log", access=StaticAccess.of(["*"]), meta={})
    db, _ = manifest.to_block()
    a_store, b_store = SqliteStore(path), SqliteStore(path)
    a = OpLog(db=db, access=manifest.access, store=a_store.log_store(db), identity=a_id)
    b = OpLog(db=db, access=manifest.access, store=b_store.log_store(db), identity=b_id)
    written = []
    for n in range(20):
        written.append((a if n % 2 else b).append(n))
    a_store.close()
    b_store.close()
    with SqliteStore(path) as store:
        log = store.log_store(db)
        reader = OpLog(db=db, access=manifest.access, store=log)
        assert store.repaired_heads  # the stale heads were found...
        reached = {e.cid for e in reader.traverse(reader.heads)}
        assert reached == {e.cid for e in written}  # ...and every entry is reachable


def test_version_2_file_is_migrated_and_its_heads_checked(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE

    async def build() -> tuple[frozenset[object], int]:
        async with open_node(tmp_path) as node:
            db = await node.open("m", write=["*"])
            first = await db.append(0)
            await db.append(1)
            await db.receive_entries([_other_writer_entry(db.cid, [first])])
            return frozenset(db.heads), len(db)

    heads, count = trio.run(build)
    with sqlite3.connect(path) as conn:  # make it the version-2 file it would have been
        conn.execute("DROP INDEX entries_childless")
        conn.execute("ALTER TABLE entries DROP COLUMN has_child")
        conn.execute("UPDATE meta SET value=2 WHERE key='schema'")
        conn.execute("DELETE FROM heads")  # and lose its heads too
    conn.close()
    with SqliteStore(path) as store:
        assert store.connection.execute("SELECT value FROM meta").fetchone()[0] == SCHEMA_VERSION
        (log_id,) = store.true_heads()
        assert set(store.true_heads()[log_id]) == heads
        assert store.repaired_heads == {log_id: (2, 0)}
        assert store.databases()[0] and count == 3
