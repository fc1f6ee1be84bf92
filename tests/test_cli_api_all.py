"""Every command through a real ``orbitstore serve`` process's API: each one run as its
own ``python -m orbitstore`` process on the served directory, as a user would."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import trio

from orbitstore.cli.sync_view import Progress, Waiter, bar
from orbitstore.node import open_node
from orbitstore.node.feed import Feed
from orbitstore.node.keyvalue import KeyValue
from tests.test_cli_api import _cli
from tests.test_serve import DEADLINE, serve

BIG = 1005  # more than one page (1,000) of every listing


async def _fill(home: Path) -> None:
    async with open_node(home) as node:
        kv = await node.open("big", type="keyvalue")
        assert isinstance(kv, KeyValue)
        await kv.put_many({f"k{i:05d}": i for i in range(BIG)})
        feed = await node.open("chat", type="feed")
        assert isinstance(feed, Feed)
        await feed.add_many(list(range(BIG)))
        events = await node.open("events", type="log")
        async with events.batch():
            for i in range(BIG):
                await events.append(i)
        await node.open("scratch", type="counter")


def _lines(result: Any) -> list[str]:
    assert result.returncode == 0, result.stderr
    text: str = result.stdout.decode()
    return text.splitlines()


def _json(result: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _lines(result)]


@pytest.mark.slow
async def test_every_command_goes_through_a_running_node(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "a", tmp_path / "c"
    await _fill(home)
    async with open_node(elsewhere) as node:  # a database made on another node, to import
        other = await node.open("imported", type="keyvalue")
        assert isinstance(other, KeyValue)
        await other.put("x", 1)
        imported_address = other.address
    car = tmp_path / "imported.car"
    assert (await _cli(elsewhere, "export", "imported", str(car))).returncode == 0
    direct_log = _lines(await _cli(home, "log", "events"))  # no node runs: direct
    assert len(direct_log) == BIG

    async with serve(home) as a:
        ready = await a.event("ready")
        await a.event("api")
        cli = _Cli(home)

        assert _lines(await cli("id")) == [ready["writer"]]
        # Listings longer than a page come through whole, in the direct command's order.
        keys = _lines(await cli("kv", "ls", "big"))
        assert (
            len(keys) == BIG and keys[0] == "k00000\t0" and keys[-1] == f"k{BIG - 1:05d}\t{BIG - 1}"
        )
        assert _lines(await cli("kv", "ls", "big", "--limit", "1001"))[-1].startswith("k01000")
        assert len(_lines(await cli("kv", "ls", "big", "--prefix", "k001"))) == 100
        items = _json(await cli("--json", "feed", "ls", "chat"))
        assert [i["value"] for i in items] == list(range(BIG))
        newest = _json(await cli("--json", "feed", "ls", "chat", "--reverse", "--limit", "1002"))
        assert [i["value"] for i in newest] == list(range(BIG - 1, BIG - 1003, -1))
        assert _lines(await cli("log", "events")) == direct_log
        last = _lines(await cli("log", "events", "--reverse", "--limit", "2"))
        assert last == direct_log[::-1][:2]

        # documents: find and index
        for doc in ('{"_id": "ada", "age": 36}', '{"_id": "bob", "age": 41}'):
            assert (await cli("docs", "put", "people", doc)).returncode == 0
        found = _lines(
            await cli("docs", "find", "people", '{"age": {"$gt": 30}}', "--sort", "age:desc")
        )
        assert found == ['{"_id":"bob","age":41}', '{"_id":"ada","age":36}']
        assert _lines(await cli("docs", "index", "people", "age")) == ["indexes of 'people': age"]

        # ydoc
        appended = await cli("ydoc", "append", "notes", "hello")
        assert appended.returncode == 0 and b"created the ydoc database 'notes'" in appended.stderr
        assert (await cli("ydoc", "append", "notes", " world")).returncode == 0
        assert _lines(await cli("ydoc", "text", "notes")) == ["hello world"]

        # export and import (a CAR)
        out = tmp_path / "big.car"
        exported = _lines(await cli("export", "big", str(out)))
        assert exported == [f"exported 'big': the manifest and {BIG} entries to {out}"] or (
            len(exported) == 1 and f"{out}" in exported[0]
        )
        assert out.stat().st_size > 0 and not (tmp_path / "big.car.partial").exists()
        report = _json(await cli("--json", "import", str(car), "--name", "imported"))
        assert report == [
            {
                "address": imported_address,
                "type": "keyvalue",
                "entries": 1,
                "added": 1,
                "skipped": 0,
            }
        ]
        assert _lines(await cli("kv", "get", "imported", "x")) == ["1"]
        bad = await cli("import", str(tmp_path / "missing.car"))
        assert bad.returncode == 2 and b"[os]" in bad.stderr

        # drop
        refused = await cli("drop", "scratch")
        assert refused.returncode == 2 and b"--yes" in refused.stderr
        dropped = _lines(await cli("drop", "scratch", "--yes"))
        assert dropped[0].startswith("dropped 'scratch'")
        assert "scratch" not in " ".join(_lines(await cli("ls")))
        unknown = await cli("drop", "scratch", "--yes")
        assert unknown.returncode == 2 and unknown.stderr.endswith(b"[not_found]\n")

        # membership
        created = await cli("create", "room", "--type", "feed", "--access", "capabilities")
        assert created.returncode == 0, created.stderr
        someone = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
        granted = _lines(await cli("members", "grant", "room", someone, "--scope", "s/"))
        assert granted[0].startswith(f"granted write to {someone} (scope 's/'): ")
        listed = _json(await cli("--json", "members", "ls", "room"))
        assert {"did": someone, "right": "write", "scope": "s/", "owner": False} in listed
        assert {"did": ready["writer"], "right": "owner", "scope": None, "owner": True} in listed
        assert (await cli("members", "revoke", "room", someone, "--scope", "s/")).returncode == 0
        link = _lines(await cli("members", "invite", "room"))[0]
        assert "#invite=" in link
        assert _lines(await cli("members", "uninvite", "room", link))[0].startswith("revoked")
        static = await cli("members", "ls", "big")
        assert static.returncode == 2 and static.stderr.endswith(b"[usage]\n")

        # check cannot run beside the node, and says what to do instead
        check = await cli("check")
        assert check.returncode == 2 and check.stderr.endswith(b"[node_locked]\n")
        assert b"stop that node" in check.stderr and str(a.process.pid).encode() in check.stderr

        status = _lines(await cli("sync", "status"))
        assert "big: no peers" in status
        a.process.send_signal(signal.SIGTERM)
        await a.event("stopped")
        with trio.fail_after(DEADLINE):
            assert await a.process.wait() == 0
    # What went through the API is in the directory.
    assert _lines(await _cli(home, "ydoc", "text", "notes")) == ["hello world"]


class _Cli:
    def __init__(self, home: Path) -> None:
        self.home = home

    async def __call__(self, *argv: str) -> Any:
        return await _cli(self.home, *argv)


@pytest.mark.slow
async def test_an_invite_is_redeemed_through_a_second_running_node(tmp_path: Path) -> None:
    async with serve(tmp_path / "a") as a:
        ready = await a.event("ready")
        await a.event("api")
        made = await _cli(
            tmp_path / "a", "create", "room", "--type", "feed", "--access", "capabilities"
        )
        assert made.returncode == 0, made.stderr
        address = made.stdout.decode().strip()
        link = (await _cli(tmp_path / "a", "members", "invite", "room")).stdout.decode().strip()
        async with serve(tmp_path / "b", "--bootstrap", ready["addresses"][0]) as b:
            b_ready = await b.event("ready")
            await b.event("api")
            denied = await _cli(tmp_path / "b", "feed", "add", address, '"hi"')
            assert denied.returncode == 2  # b does not even have it yet
            redeemed = await _cli(tmp_path / "b", "members", "redeem", link, "--timeout", "30")
            assert redeemed.returncode == 0, redeemed.stderr
            assert redeemed.stdout.decode() == (
                f"redeemed: {b_ready['writer']} may write {address}, named 'room' here\n"
            )
            wrote = await _cli(tmp_path / "b", "feed", "add", "room", '"from b"')  # by name
            assert wrote.returncode == 0, wrote.stderr
            waited = await _cli(tmp_path / "a", "sync", "status", "--wait", "--timeout", "30")
            assert waited.returncode == 0, waited.stderr
            assert "room: in sync with 1 peer" in waited.stdout.decode()
            # The invite, the redeem and b's item: watch waits for all three on a.
            watched = await _cli(tmp_path / "a", "watch", "room", "--since", "0", "--count", "3")
            assert watched.returncode == 0, watched.stderr
            assert _lines(await _cli(tmp_path / "a", "feed", "ls", "room"))[-1].endswith('"from b"')
            members = await _cli(tmp_path / "a", "members", "ls", "room")
            assert f"{b_ready['writer']}\twrite".encode() in members.stdout


def test_sync_status_rendering() -> None:
    assert bar(0, 4, width=8) == "[--------]" and bar(2, 4, width=8) == "[####----]"
    assert bar(0, 0, width=4) == "[####]"

    def status(missing: int, needed: int = 0, received: int = 0, synced: bool = False) -> Any:
        peer = {"has_database": True, "last_error": None, "received": received}
        return {
            "name": "notes",
            "address": "/orbitstore/x",
            "missing": missing,
            "needed": needed,
            "synced": synced,
            "peers": [peer],
            "entries": 0,
        }

    progress = Progress(start_received=5)
    progress.update(status(3, 1, received=5))
    assert (progress.done, progress.total) == (0, 4)
    progress.update(status(2, 0, received=105))
    assert (progress.done, progress.total) == (2, 4)
    progress.update(status(5, 0, received=205))  # more were announced: the total grows
    assert (progress.done, progress.total) == (2, 7)
    line = progress.line("notes", "behind by 5", status(5, received=205))
    assert (
        line == "notes: [" + "#" * 6 + "-" * 18 + "] 2/7 heads, 200 entries received — behind by 5"
    )

    snapshots = [[status(2)], [status(1, received=10)], [status(0, received=20, synced=True)]]
    drawn: list[list[str]] = []
    waiter = Waiter(
        fetch=lambda: snapshots.pop(0), timeout=10, draw=drawn.append, sleep=lambda s: None
    )
    settled, last = waiter.run()
    assert settled and last[0]["synced"] and len(drawn) == 3
    assert drawn[-1] == [
        "notes: [" + "#" * 24 + "] 2/2 heads, 20 entries received — in sync with 1 peer"
    ]

    times = iter([0.0, 5.0, 11.0])
    stuck = Waiter(
        fetch=lambda: [status(1)], timeout=10, clock=lambda: next(times), sleep=lambda s: None
    )
    assert stuck.run()[0] is False


class _Dialable:
    """What ``tests.test_bitswap.library_client`` needs of a server: where to dial."""

    def __init__(self, address: str) -> None:
        self.address, _, self.peer_id = address.rpartition("/p2p/")

    def listen_addresses(self) -> list[str]:
        return [self.address]


@pytest.mark.slow
async def test_serve_bitswap_serves_blocks_to_ipfs_peers(tmp_path: Path) -> None:
    from libp2p.bitswap.errors import TimeoutError as BitswapTimeoutError

    from orbitstore.net._libp2p_bitswap import to_libp2p_cid
    from tests.test_bitswap import library_client

    async with open_node(tmp_path / "a") as node:
        kv = await node.open("kv", type="keyvalue")
        entry = await kv.put("k", "v")
        manifest = node.store.blocks.get(kv.cid)
    for switch, served in (("--bitswap", True), ("--no-api", False)):
        async with serve(tmp_path / "a", switch, "--no-api" if served else "--no-mdns") as a:
            ready = await a.event("ready")
            server: Any = _Dialable(ready["addresses"][0])
            async with library_client(server) as (client, peer):
                session = client.new_session()
                if served:
                    with trio.fail_after(DEADLINE):
                        got = await session.get_block(
                            to_libp2p_cid(kv.cid), peer_id=peer, timeout=30
                        )
                        block = await session.get_block(to_libp2p_cid(entry.cid), timeout=30)
                    assert got == manifest and block is not None and len(block) > 0
                else:
                    with pytest.raises(BitswapTimeoutError):
                        await session.get_block(to_libp2p_cid(kv.cid), peer_id=peer, timeout=2)
            a.process.send_signal(signal.SIGTERM)
            with trio.fail_after(DEADLINE):
                assert await a.process.wait() == 0
