"""The command line talks to a running ``orbitstore serve`` through its API (api.json)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from orbitstore.cli import main
from orbitstore.cli.apifile import API_FILE, running_api, write_api_file
from orbitstore.cli.sync_view import sync_state
from orbitstore.node import open_node
from orbitstore.storage.lock import DirectoryLock
from tests.test_serve import DEADLINE, serve


def test_a_stale_api_file_is_ignored(tmp_path: Path) -> None:
    assert running_api(tmp_path) is None  # no file
    write_api_file(tmp_path, url="http://127.0.0.1:1", token="t" * 20)
    assert stat.S_IMODE((tmp_path / API_FILE).stat().st_mode) == 0o600
    assert running_api(tmp_path) is None  # nobody holds the lock
    with DirectoryLock.acquire(tmp_path):  # held by this (live) process: counts
        api = running_api(tmp_path)
        assert api is not None and api.pid == os.getpid() and api.token == "t" * 20
    (tmp_path / API_FILE).write_text(json.dumps({"url": "x", "pid": 2**22 + 7}))
    assert running_api(tmp_path) is None  # a dead pid
    (tmp_path / API_FILE).write_text("{not json")
    assert running_api(tmp_path) is None


async def _cli(home: Path, *argv: str) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "orbitstore", "--home", str(home), *argv]
    with trio.fail_after(DEADLINE):
        return await trio.run_process(
            command, capture_stdout=True, capture_stderr=True, check=False
        )


@pytest.mark.slow
async def test_cli_writes_go_through_the_api_and_replicate(tmp_path: Path) -> None:
    async with open_node(tmp_path / "a") as node:
        notes = await node.open("notes", type="keyvalue")
        address, manifest = notes.address, node.store.blocks.get(notes.cid)
    assert manifest is not None
    async with open_node(tmp_path / "b") as node:
        node.store.blocks.put(notes.cid, manifest)

    async with serve(tmp_path / "a", "--open", "notes") as a:
        ready = await a.event("ready")
        await a.event("api")
        assert running_api(tmp_path / "a") is not None
        async with serve(
            tmp_path / "b", "--no-api", "--bootstrap", ready["addresses"][0], "--open", address
        ) as b:
            b_ready = await b.event("ready")
            await b.event("open", address=address)
            put = await _cli(tmp_path / "a", "kv", "put", "notes", "theme", '"dark"')
            assert put.returncode == 0, put.stderr
            await b.event("status", entries=1, missing=0)  # reached b over libp2p
            got = await _cli(tmp_path / "a", "kv", "get", "notes", "theme")
            assert (got.returncode, got.stdout) == (0, b'"dark"\n')
            missing = await _cli(tmp_path / "a", "kv", "get", "notes", "nope")
            assert missing.returncode == 2 and missing.stderr.endswith(b"[not_found]\n")
            inc = await _cli(tmp_path / "a", "--json", "counter", "inc", "hits", "3")
            assert inc.returncode == 0, (inc.stdout, inc.stderr)
            assert json.loads(inc.stdout) == {"value": 3}, inc.stderr
            assert b"created the counter database 'hits'" not in inc.stdout
            listed = await _cli(tmp_path / "a", "ls")
            assert b"notes\tkeyvalue\t" in listed.stdout and b"hits\tcounter\t" in listed.stdout
            status = await a.event("status", name="notes", synced=True, missing=0)
            while not status["peers"]:
                status = await a.event("status", name="notes", synced=True, missing=0)
            sync = await _cli(tmp_path / "a", "sync", "status")
            assert sync.returncode == 0, sync.stderr
            lines = sync.stdout.decode().splitlines()
            assert "notes: in sync with 1 peer" in lines and "hits: no peers" in lines
            peers = await _cli(tmp_path / "a", "peers")
            assert f"connected: {b_ready['peer_id']}".encode() in peers.stdout
            connect = await _cli(tmp_path / "a", "connect", b_ready["addresses"][0])
            assert connect.stdout == f"connected: {b_ready['peer_id']}\n".encode()
            info = await _cli(tmp_path / "a", "--json", "info", "notes")
            shown = json.loads(info.stdout)
            assert (shown["address"], shown["entries"]) == (address, 1)
            wrong = await _cli(tmp_path / "a", "counter", "get", "notes")
            assert wrong.returncode == 2 and wrong.stderr.endswith(b"[wrong_database_type]\n")
            doc = await _cli(tmp_path / "a", "docs", "put", "people", '{"_id": "ada", "age": 36}')
            assert doc.returncode == 0, doc.stderr
            patched = await _cli(
                tmp_path / "a", "docs", "patch", "people", "ada", "--set", '{"age": 37}'
            )
            assert patched.returncode == 0, patched.stderr
            got_doc = await _cli(tmp_path / "a", "--json", "docs", "get", "people", "ada")
            assert json.loads(got_doc.stdout) == {"_id": "ada", "age": 37}
            async with trio.open_nursery() as nursery:
                watched: list[subprocess.CompletedProcess[bytes]] = []

                async def watch() -> None:
                    watched.append(
                        await _cli(tmp_path / "a", "watch", "notes", "--since", "0", "--count", "2")
                    )

                nursery.start_soon(watch)
                assert (
                    await _cli(tmp_path / "a", "kv", "put", "notes", "lang", '"en"')
                ).returncode == 0
            (done,) = watched
            assert done.returncode == 0, done.stderr
            lines = done.stdout.decode().splitlines()
            seqs = [int(line.split("\t")[0]) for line in lines]
            assert len(seqs) == 2 and seqs[0] < seqs[1]  # the cursor only grows
            assert '"theme"' in lines[0] and '"lang"' in lines[1]
            # `check` reads the store file itself: it refuses beside the node.
            check = await _cli(tmp_path / "a", "check")
            assert check.returncode == 2 and check.stderr.endswith(b"[node_locked]\n")
        a.process.send_signal(signal.SIGTERM)
        await a.event("stopped")
        with trio.fail_after(DEADLINE):
            assert await a.process.wait() == 0
    assert not (tmp_path / "a" / API_FILE).exists()
    # No node runs: the command opens the directory itself, as before.
    got = await _cli(tmp_path / "a", "kv", "get", "notes", "theme")
    assert (got.returncode, got.stdout) == (0, b'"dark"\n')


def test_sync_state_in_words() -> None:
    def status(**kw: object) -> dict[str, object]:
        return {"peers": [], "needed": 0, "missing": 0, "synced": False, **kw}

    def peer(error: str | None = None, has: bool = True) -> dict[str, object]:
        return {"has_database": has, "last_error": error}

    assert sync_state(status()) == "no peers"
    assert sync_state(status(peers=[peer(has=False)])) == "no peers"
    assert sync_state(status(peers=[peer()], needed=3)) == "behind by 3"
    assert sync_state(status(peers=[peer("reset")])) == "peer unreachable"
    assert sync_state(status(peers=[peer(), peer()], synced=True)) == "in sync with 2 peers"
    assert sync_state(status(peers=[peer()])) == "syncing with 1 peer"


@pytest.mark.slow
async def test_serve_refuses_to_open_an_unknown_name(tmp_path: Path) -> None:
    async with serve(tmp_path / "a", "--no-api", "--open", "typo") as a:
        with trio.fail_after(DEADLINE):
            assert await a.process.wait() == 2  # a usage error, not a traceback
    async with open_node(tmp_path / "a") as node:
        assert "typo" not in node.databases()


def test_without_a_node_docs_patch_opens_the_directory_and_network_commands_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(tmp_path)]
    assert main([*home, "docs", "put", "people", '{"_id": "ada", "age": 36}']) == 0
    assert main([*home, "docs", "patch", "people", "ada", "--set", '{"age": 37}']) == 0
    capsys.readouterr()
    assert main([*home, "docs", "get", "people", "ada"]) == 0
    assert capsys.readouterr().out == '{"_id":"ada","age":37}\n'
    assert main([*home, "docs", "patch", "people", "bob", "--set", '{"a": 1}']) == 2
    assert capsys.readouterr().err.endswith("[not_found]\n")
    for command in (["peers"], ["connect", "/x"], ["sync", "status"], ["watch", "people"]):
        assert main([*home, *command]) == 2
        assert "needs a running node" in capsys.readouterr().err


def test_the_api_path_imports_no_heavy_module() -> None:
    code = (
        "import sys, orbitstore.cli, orbitstore.cli.remote, orbitstore.cli.parser\n"
        "heavy = ('httpx', 'trio', 'libp2p', 'starlette', 'sqlglot', 'pycrdt')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert result.stdout == b"[]\n"  # `kv get` through the API stays quick
