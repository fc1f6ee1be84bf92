"""`orbitstore check`: finds damaged entries, wrong heads and wrong views; repairs them,
and a repaired replica fetches what it removed again from a peer."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pycrdt
import pytest
import trio

from orbitstore import open_node
from orbitstore.cli import main
from orbitstore.core.identity import Identity
from orbitstore.node.check import check_store
from orbitstore.node.node import STORE_FILE
from orbitstore.storage.sqlite import SqliteStore
from orbitstore.testing.network import MemoryNetwork
from orbitstore.testing.pairs import open_memory_pair


async def _fill(home: Path) -> None:
    async with open_node(home) as node:
        kv = await node.open("kv", type="keyvalue", write=["*"])
        for n in range(12):
            await kv.put(f"k{n % 7}", {"n": n})
        await kv.delete("k3")
        docs = await node.open("docs", type="documents", meta={"indexes": ["age"]})
        await docs.put({"_id": "a", "age": 3})
        await docs.put({"_id": "b", "age": 5, "city": "Oslo"})
        await docs.delete("a")
        feed = await node.open("feed", type="feed")
        for n in range(5):
            await feed.add({"n": n})
        counter = await node.open("counter", type="counter")
        await counter.increment(5)
        await counter.decrement(2)
        ydoc = await node.open("ydoc", type="ydoc")
        for n in range(8):
            async with ydoc.edit() as doc:
                text = doc.get("text", type=pycrdt.Text)
                text.insert(len(text) // 2, f"w{n} ")
        log = await node.open("log")
        await log.append_many(range(4))


def _sql(home: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    with sqlite3.connect(home / STORE_FILE) as conn:
        conn.execute(sql, params)
    conn.close()


def _cli(home: Path, *args: str, capsys: Any) -> tuple[int, list[dict[str, Any]]]:
    code = main(["--home", str(home), "--json", "check", *args])
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines()]


async def test_a_sound_node_of_every_type_checks_ok(tmp_path: Path) -> None:
    await _fill(tmp_path)
    async with open_node(tmp_path) as node:
        report = node.check()
    assert report.problems == ()
    assert report.ok and report.databases == 6 and report.entries == 13 + 3 + 5 + 2 + 8 + 4


def test_a_tampered_view_is_found_and_rebuilt(tmp_path: Path, capsys: Any) -> None:
    trio.run(_fill, tmp_path)
    _sql(tmp_path, "UPDATE view_kv SET json='666' WHERE key='k1'")
    _sql(tmp_path, "DELETE FROM view_feed WHERE idx=0 AND clock=2")
    code, lines = _cli(tmp_path, capsys=capsys)
    assert code == 1
    kinds = sorted((p["problem"]["kind"], p["problem"]["database"]) for p in lines[:-1])
    assert [k for k, _ in kinds] == ["view", "view"]
    assert lines[-1]["summary"]["ok"] is False
    code, lines = _cli(tmp_path, "--repair", capsys=capsys)
    assert code == 0 and all(p["problem"]["repaired"] for p in lines[:-1])
    assert _cli(tmp_path, capsys=capsys) == (
        0,
        [{"summary": lines[-1]["summary"] | {"repair": False}}],
    )

    async def counts() -> tuple[int, Any]:
        async with open_node(tmp_path) as node:
            feed = await node.open("feed", type="feed")
            kv = await node.open("kv", type="keyvalue")
            return feed.count(), kv.get("k1")

    assert trio.run(counts) == (5, {"n": 8})


async def test_heads_and_children_both_wrong_are_found_and_repaired(tmp_path: Path) -> None:
    await _fill(tmp_path)
    # Wrong in a way the open-time check cannot see: has_child agrees with the bad heads.
    _sql(tmp_path, "UPDATE entries SET has_child=1")
    _sql(tmp_path, "DELETE FROM heads")
    async with open_node(tmp_path) as node:
        report = node.check()
        assert not report.ok
        assert {p.kind for p in report.problems} == {"heads"}
        assert len(report.problems) == 6
        assert node.check(repair=True).ok
        assert node.check().problems == ()
    async with open_node(tmp_path) as node:
        log = await node.open("log")
        assert len(list(log.log.traverse(log.heads))) == len(log) == 4


async def test_repair_refuses_while_databases_are_open(tmp_path: Path) -> None:
    from orbitstore.errors import UsageError

    async with open_node(tmp_path) as node:
        await node.open("x")
        with pytest.raises(UsageError, match="close the open databases"):
            node.check(repair=True)


def _flip_block(path: Path, cid: bytes) -> None:
    with sqlite3.connect(path) as conn:
        (data,) = conn.execute("SELECT data FROM blocks WHERE cid=?", (cid,)).fetchone()
        damaged = bytearray(data)
        damaged[len(damaged) // 2] ^= 0x40  # one bit of rot in the middle of the entry
        conn.execute("UPDATE blocks SET data=? WHERE cid=?", (bytes(damaged), cid))
    conn.close()


async def test_a_damaged_entry_is_removed_and_fetched_again_from_a_peer(tmp_path: Path) -> None:
    net = MemoryNetwork(rng=random.Random(3), latency=(0.0, 0.001))
    writer_store = SqliteStore(tmp_path / "w.sqlite")
    replica_path = tmp_path / "r.sqlite"
    ids = Identity(b"\x01" * 32), Identity(b"\x02" * 32)

    async def sync(replica_store: SqliteStore) -> tuple[Any, Any]:
        async with open_memory_pair(
            network=net, names=("w", "r"), identities=ids, stores=(writer_store, replica_store)
        ) as pair:
            w_node, r_node = pair.nodes
            w = await w_node.open("kv", type="keyvalue")
            if len(w) == 0:
                for n in range(30):
                    await w.put(f"k{n}", n)
            await pair.connect()
            r = await r_node.open(w.address, type="keyvalue")
            with trio.fail_after(30):
                await r.wait_synced(timeout=30)
            return (len(r), dict(r.items())), (len(w), w.heads == r.heads)

    first = SqliteStore(replica_path)
    (count, _), _ = await sync(first)
    assert count == 30
    tenth = first.connection.execute("SELECT cid FROM entries ORDER BY seq LIMIT 1 OFFSET 9")
    (tenth_cid,) = tenth.fetchone()
    first.close()
    _flip_block(replica_path, bytes(tenth_cid))

    with SqliteStore(replica_path) as damaged:
        found = check_store(damaged)
        kinds = [p.kind for p in found.problems]
        assert kinds == ["entry"] + ["orphan"] * 20, kinds  # a chain: all later ones hang on it
        repaired = check_store(damaged, repair=True)
        assert repaired.ok and len(repaired.refetch) == 21
        assert check_store(damaged).problems == ()

    again = SqliteStore(replica_path)
    (count, items), (w_count, same_heads) = await sync(again)
    assert count == w_count == 30 and same_heads
    assert items == {f"k{n}": n for n in range(30)}
    assert check_store(again).problems == ()
    again.close()
    writer_store.close()


async def test_a_memory_node_is_checked_and_repaired_too() -> None:
    async with open_node() as node:
        db = await node.open("kv", type="keyvalue")
        await db.put("a", 1)
        await db.put("b", 2)
        cid = db.cid
        await db.aclose()
        assert node.check().problems == ()
        node.store.log_store(cid).set_heads({})
        report = node.check()
        assert [p.kind for p in report.problems] == ["heads"] and not report.ok
        assert node.check(repair=True).ok
        assert node.check().problems == ()
        assert len(node.store.log_store(cid).get_heads()) == 1


async def test_heads_repaired_on_open_are_reported_by_check(tmp_path: Path) -> None:
    await _fill(tmp_path)
    _sql(tmp_path, "DELETE FROM heads")
    async with open_node(tmp_path) as node:
        report = node.check()
    assert report.ok and len(report.problems) == 6
    assert all(p.kind == "heads" and p.repaired for p in report.problems)
