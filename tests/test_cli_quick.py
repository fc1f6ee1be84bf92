"""Read-only commands answered from the store file without a node (orbitstore.cli.quick):
the same output and errors as the full open, for every kind of database, and no trio."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from orbitstore.cli import main, quick
from orbitstore.core import codec, encryption, privacy
from orbitstore.core.cid import Cid
from orbitstore.core.manifest import format_address
from orbitstore.node import node as node_module
from orbitstore.node.keyvalue import KeyValue
from orbitstore.node.node import open_node
from orbitstore.storage import readonly
from orbitstore.storage import sqlite as sqlite_store
from orbitstore.storage.lock import DirectoryLock
from orbitstore.views import keyvalue_ops


async def _fill(home: Path) -> None:
    async with open_node(home) as node:
        kv = await node.open("kv", type="keyvalue")
        assert isinstance(kv, KeyValue)
        await kv.put_many({"a": 1, "b": {"x": [1, 2.5, None]}, "c": "text", "d": b"\x00\x01"})
        await kv.put("é/ü", "unicode")
        await kv.delete("c")
        for i in range(5):
            await kv.put(f"p{i}", i)
        await node.open("empty", type="keyvalue")
        counter = await node.open("cnt", type="counter")
        await counter.increment(5)  # type: ignore[attr-defined]
        await counter.increment(-2)  # type: ignore[attr-defined]
        feed = await node.open("f", type="feed")
        await feed.add("hello")  # type: ignore[attr-defined]
        caps = await node.open("caps", type="keyvalue", access="capabilities")
        await caps.put("k", "v")  # type: ignore[attr-defined]
        secret = await node.open("secret", type="keyvalue", encrypted=True)
        await secret.put("k", "sealed")  # type: ignore[attr-defined]
        private = await node.open("private", type="keyvalue", private=True)
        await private.put("k", "mine")  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("quick") / "node"
    trio.run(_fill, path)
    return path


@pytest.fixture
def used(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """What each quick.run answered (None: it fell back to the full path; an exception:
    it raised the command's error itself)."""
    answers: list[object] = []
    real = quick.run

    def spy(*args: Any) -> int | None:
        try:
            answer = real(*args)
        except Exception as exc:
            answers.append(exc)
            raise
        answers.append(answer)
        return answer

    monkeypatch.setattr(quick, "run", spy)
    yield answers


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _both(
    home: Path,
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    used: list[object],
) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    argv = ["--home", str(home), *args]
    quick_answer = _run(argv, capsys)
    with monkeypatch.context() as m:
        m.setattr(quick, "HANDLERS", {})
        full_answer = _run(argv, capsys)
    return quick_answer, full_answer


QUICK = [
    ["kv", "get", "kv", "a"],
    ["kv", "get", "kv", "b"],
    ["kv", "get", "kv", "d"],
    ["kv", "get", "kv", "é/ü"],
    ["kv", "get", "caps", "k"],
    ["kv", "ls", "kv"],
    ["kv", "ls", "kv", "--prefix", "p"],
    ["kv", "ls", "kv", "--prefix", "p", "--limit", "2"],
    ["kv", "ls", "kv", "--limit", "0"],
    ["kv", "ls", "empty"],
    ["counter", "get", "cnt"],
    ["ls"],
    # the errors: unknown key, deleted key, unknown database, the wrong type
    ["kv", "get", "kv", "nope"],
    ["kv", "get", "kv", "c"],
    ["kv", "get", "empty", "a"],
    ["kv", "get", "nodb", "a"],
    ["kv", "ls", "nodb"],
    ["counter", "get", "nodb"],
    ["kv", "get", "cnt", "a"],
    ["kv", "ls", "f"],
    ["counter", "get", "kv"],
    ["kv", "get", "/orbitstore/not-a-cid", "k"],  # not an address: a name
]


@pytest.mark.parametrize("args", QUICK + [["--json", *a] for a in QUICK], ids=" ".join)
def test_quick_path_prints_what_the_full_path_prints(
    home: Path,
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    used: list[object],
) -> None:
    fast, full = _both(home, args, capsys, monkeypatch, used)
    assert used[0] is not None  # answered from the file, not opened
    assert fast == full
    assert "Traceback" not in fast[2]
    if fast[0]:
        assert fast[0] == 2 and (fast[2].startswith(("error: ", '{"error"')))


# Reads the file cannot answer as the full open would: they fall back, with its answer.
FALLBACK = [
    ["kv", "get", "secret", "k"],  # encrypted: the keys
    ["kv", "get", "private", "k"],  # private: its read control
    ["kv", "get", "kv", "x" * 1025],  # an invalid key: check_key says why
    ["feed", "ls", "f"],  # not covered
]


@pytest.mark.parametrize("args", FALLBACK, ids=lambda a: " ".join(a)[:40])
def test_reads_it_cannot_answer_fall_back(
    home: Path,
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    used: list[object],
) -> None:
    fast, full = _both(home, args, capsys, monkeypatch, used)
    assert used[0] is None
    assert fast == full
    assert "Traceback" not in fast[2]


def test_an_address_reads_like_the_name(
    home: Path, capsys: pytest.CaptureFixture[str], used: list[object]
) -> None:
    _, out, _ = _run(["--home", str(home), "--json", "ls"], capsys)
    address = next(json.loads(line)["address"] for line in out.splitlines() if '"kv"' in line)
    assert _run(["--home", str(home), "kv", "get", address, "a"], capsys) == (0, "1\n", "")
    assert used == [0, 0]


def test_an_address_this_node_lacks_falls_back(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    used: list[object],
) -> None:
    address = format_address(Cid.for_block(codec.encode({"not": "stored"})))
    fast, full = _both(home, ["kv", "get", address, "k"], capsys, monkeypatch, used)
    assert used[0] is None
    assert fast == full
    assert fast[0] == 2 and "is not in this node's store" in fast[2]


def test_a_view_behind_its_log_falls_back_and_is_caught_up(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    used: list[object],
) -> None:
    home = tmp_path / "node"
    trio.run(_fill, home)
    with sqlite3.connect(home / "orbitstore.sqlite") as conn:  # as if a crash lost it
        conn.execute("DELETE FROM view_checkpoints WHERE view='keyvalue'")
        conn.execute("DELETE FROM view_kv")
    argv = ["--home", str(home), "kv", "get", "kv", "a"]
    assert _run(argv, capsys) == (0, "1\n", "")
    assert used == [None]  # the full open folded the log in again
    assert _run(argv, capsys) == (0, "1\n", "")
    assert used == [None, 0]  # and from then on the file answers


def test_a_fresh_directory_goes_the_full_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], used: list[object]
) -> None:
    status, _, err = _run(["--home", str(tmp_path / "new"), "kv", "get", "kv", "a"], capsys)
    assert status == 2 and "no database named 'kv'" in err
    assert used == [None]
    assert (tmp_path / "new" / "keystore.json").is_file()  # what the full open creates


def test_a_held_directory_lock_is_reported_like_the_full_path(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    used: list[object],
) -> None:
    with DirectoryLock.acquire(home):
        fast, full = _both(home, ["kv", "get", "kv", "a"], capsys, monkeypatch, used)
    assert fast == full
    assert fast[0] == 2 and "[node_locked]" in fast[2]


def test_the_quick_path_imports_no_trio_and_no_node(home: Path) -> None:
    script = (
        "import sys\n"
        "from orbitstore.cli import main\n"
        f"status = main(['--home', {str(home)!r}, 'kv', 'get', 'kv', 'a'])\n"
        "heavy = sorted(m for m in sys.modules if m == 'trio' or m.startswith('orbitstore.node')"
        " or m in ('http.client', 'sqlglot', 'pycrdt'))\n"
        "print(status, heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == ["1", "0 []"]


def test_the_constants_it_copies_are_the_real_ones() -> None:
    assert quick.STORE_FILE == node_module.STORE_FILE
    assert quick.KEYSTORE_FILE == node_module.KEYSTORE_FILE
    assert set(quick.SEALED_META) == {encryption.META_KEY, privacy.META_KEY}
    assert quick.MAX_KEY_BYTES == keyvalue_ops.MAX_KEY_BYTES
    assert readonly.SCHEMA_VERSION == sqlite_store.SCHEMA_VERSION


def test_every_quick_command_is_a_command_with_an_api_path() -> None:
    from orbitstore.cli import remote

    assert set(quick.HANDLERS) <= set(remote.HANDLERS)
