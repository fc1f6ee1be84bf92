"""The ``orbitstore`` command line: every command's happy path, ``--json`` output, and user
mistakes (exit status 2, ``error: ... [code]``, never a traceback)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orbitstore.cli import build_parser, main
from orbitstore.cli.parser import DATABASE_TYPES
from orbitstore.node.types import available_types

ROOT = Path(__file__).resolve().parent.parent


class Cli:
    """Runs ``main`` against one node directory and captures what it prints."""

    def __init__(self, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.home = home
        self.capsys = capsys

    def run(self, *args: str, json_lines: bool = False) -> tuple[int, str, str]:
        argv = ["--home", str(self.home), *(["--json"] if json_lines else []), *args]
        code = main(argv)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def ok(self, *args: str) -> str:
        code, out, err = self.run(*args)
        assert code == 0, err
        assert "error" not in err
        return out

    def lines(self, *args: str) -> list[str]:
        return self.ok(*args).splitlines()

    def json(self, *args: str) -> list[Any]:
        code, out, err = self.run(*args, json_lines=True)
        assert code == 0, err
        return [json.loads(line) for line in out.splitlines()]

    def fails(self, *args: str, code: str) -> str:
        status, out, err = self.run(*args)
        assert status == 2, (out, err)
        assert "Traceback" not in err
        assert f"[{code}]" in err.splitlines()[-1], err
        assert err.splitlines()[-1].startswith("error: ")
        return err


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path / "node", capsys)


# -- node-wide commands ---------------------------------------------------------------------


def test_demo_writes_reads_back_and_queries(cli: Cli) -> None:
    out = cli.ok("demo", "--count", "3")
    assert "3 entries in total order" in out
    assert 'keyvalue \'demo_settings\': language="en", runs=1, theme="dark"' in out
    table = out.splitlines()[-4:]
    assert table[0].split() == ["key", "value", "clock"]
    assert table[2].split() == ["runs", "1", "1"]
    assert table[3].split() == ["theme", "dark", "1"]
    assert "6 entries in total order" in cli.ok("demo", "--count", "3")  # same log, reopened
    assert cli.json("kv", "get", "demo_settings", "runs") == [{"key": "runs", "value": 2}]
    assert all(isinstance(obj, dict) for obj in cli.json("demo", "--count", "1"))


def test_id_create_ls_and_info(cli: Cli) -> None:
    me = cli.ok("id").strip()
    assert me.startswith("did:key:z6Mk")
    address = cli.ok("create", "people", "--type", "documents", "--meta", '{"indexes": ["age"]}')
    address = address.strip()
    assert address.startswith("/orbitstore/bafy")
    (created,) = cli.json("create", "open", "--type", "feed", "--write", "*", "--write", me)
    assert created["type"] == "feed" and created["writers"] == ["*", me]
    assert cli.json("ls") == [
        {"name": "open", "type": "feed", "address": created["address"]},
        {"name": "people", "type": "documents", "address": address},
    ]
    cli.ok("docs", "put", "people", '{"_id": "a", "age": 3}')
    (info,) = cli.json("info", address)  # by address, too
    assert info["name"] == "people" and info["type"] == "documents"
    assert info["entries"] == 1 and len(info["heads"]) == 1
    assert info["writers"] == [me] and info["meta"] == {"indexes": ["age"]}
    assert info["statistics"]["documents"] == 1 and info["statistics"]["indexes"] == ["age"]
    text = cli.ok("info", "people")
    assert "type: documents" in text and f"  {me} (write)" in text and "  documents: 1" in text
    # One list of who may write, with rights: users (the manifest's writers are in it).
    assert "\nusers:\n" in text and "writers:" not in text
    text = cli.ok("info", "open")
    assert f"users:\n  * (write)\n  {me} (write)\n" in text and "writers:" not in text


def test_info_of_every_type(cli: Cli) -> None:
    cli.ok("kv", "put", "k", "a", "1")
    cli.ok("feed", "add", "f", "1")
    cli.ok("counter", "inc", "c", "7")
    cli.ok("ydoc", "append", "y", "hi")
    cli.ok("append", "l", "1")
    stats = {name: cli.json("info", name)[0]["statistics"] for name in "kfcyl"}
    assert stats["k"]["keys"] == 1
    assert stats["f"]["items"] == 1
    assert stats["c"]["value"] == 7
    assert stats["y"]["ignored"] == 0 and stats["y"]["captured"] == 0
    assert stats["l"]["entries"] == 1


def test_append_and_log(cli: Cli) -> None:
    assert cli.ok("append", "events", '{"n": 1}').startswith("bafy")
    cli.ok("append", "events", '{"n": 2}')
    lines = cli.lines("log", "events", "--reverse", "--limit", "1")
    assert len(lines) == 1 and lines[0].endswith('{"n":2}')
    entries = cli.json("log", "events")
    assert [e["payload"] for e in entries] == [{"n": 1}, {"n": 2}]
    assert [e["clock"] for e in entries] == [1, 2]
    # `log` shows the raw operations of a database of any type
    cli.ok("kv", "put", "settings", "theme", '"dark"')
    (op,) = cli.json("log", "settings")
    assert op["payload"] == {"op": "put", "key": "theme", "value": "dark"}


# -- keyvalue -------------------------------------------------------------------------------


def test_kv_put_get_ls_del(cli: Cli) -> None:
    code, out, err = cli.run("kv", "put", "settings", "theme", '"dark"')
    assert code == 0 and out.startswith("bafy")
    assert "note: created the keyvalue database 'settings'" in err
    cli.ok("kv", "put", "settings", "size", "12")
    cli.ok("kv", "put", "settings", "ui.font", '{"family": "mono", "px": 13}')
    assert cli.ok("kv", "get", "settings", "theme") == '"dark"\n'
    assert cli.ok("kv", "get", "settings", "ui.font") == '{"family":"mono","px":13}\n'
    assert cli.lines("kv", "ls", "settings") == [
        "size\t12",
        'theme\t"dark"',
        'ui.font\t{"family":"mono","px":13}',
    ]
    assert cli.lines("kv", "ls", "settings", "--prefix", "ui.") == [
        'ui.font\t{"family":"mono","px":13}'
    ]
    assert cli.json("kv", "ls", "settings", "--limit", "2") == [
        {"key": "size", "value": 12},
        {"key": "theme", "value": "dark"},
    ]
    assert cli.ok("kv", "del", "settings", "theme").startswith("bafy")
    cli.fails("kv", "get", "settings", "theme", code="not_found")
    assert [row["key"] for row in cli.json("kv", "ls", "settings")] == ["size", "ui.font"]
    (put,) = cli.json("kv", "put", "settings", "x", "null")
    assert put["key"] == "x" and put["cid"].startswith("bafy")
    assert cli.json("kv", "get", "settings", "x") == [{"key": "x", "value": None}]


def test_bytes_and_links_round_trip_as_dag_json(cli: Cli) -> None:
    cid = cli.ok("kv", "put", "blobs", "a", '{"/": {"bytes": "aGVsbG8"}}').strip()
    link = json.dumps({"/": cid})
    cli.ok("kv", "put", "blobs", "b", json.dumps({"prev": {"/": cid}, "raw": {"/": {"bytes": ""}}}))
    assert cli.ok("kv", "get", "blobs", "a") == '{"/":{"bytes":"aGVsbG8"}}\n'
    assert cli.json("kv", "get", "blobs", "b")[0]["value"] == {
        "prev": json.loads(link),
        "raw": {"/": {"bytes": ""}},
    }
    rows = cli.json("query", "SELECT key, value FROM blobs ORDER BY key")
    assert rows[0] == {"key": "a", "value": {"/": {"bytes": "aGVsbG8"}}}


# -- feed -----------------------------------------------------------------------------------


def test_feed_add_and_ls(cli: Cli) -> None:
    ids = [cli.ok("feed", "add", "chat", json.dumps({"text": f"m{i}"})).strip() for i in range(4)]
    assert all(i.startswith("bafy") for i in ids)
    assert cli.lines("feed", "ls", "chat") == [f'{ids[i]}\t{{"text":"m{i}"}}' for i in range(4)]
    newest = cli.json("feed", "ls", "chat", "--reverse", "--limit", "2")
    assert [item["value"]["text"] for item in newest] == ["m3", "m2"]
    assert newest[0]["id"] == ids[3] and newest[0]["writer"].startswith("did:key:")
    between = cli.json("feed", "ls", "chat", "--gt", ids[0], "--lt", ids[3])
    assert [item["id"] for item in between] == ids[1:3]
    (added,) = cli.json("feed", "add", "chat", '"plain"')
    assert added["value"] == "plain" and added["clock"] == 5
    other = cli.ok("feed", "add", "elsewhere", "1").strip()
    cli.fails("feed", "ls", "chat", "--gt", other, code="not_found")
    cli.fails("feed", "ls", "chat", "--lt", "bafynotanid", code="invalid_value")


# -- documents ------------------------------------------------------------------------------


def test_docs_put_get_find_index_rm(cli: Cli) -> None:
    for doc in (
        {"_id": "ann", "age": 31, "city": "Oslo"},
        {"_id": "bob", "age": 25, "city": "Rome"},
        {"_id": "cy", "age": 40, "city": "Oslo"},
    ):
        out = cli.ok("docs", "put", "people", json.dumps(doc))
        assert out.startswith(f"{doc['_id']}\tbafy")
    assert cli.ok("docs", "get", "people", "bob") == '{"_id":"bob","age":25,"city":"Rome"}\n'
    found = cli.json("docs", "find", "people", '{"city": "Oslo"}', "--sort", "age:desc")
    assert [d["_id"] for d in found] == ["cy", "ann"]
    found = cli.json("docs", "find", "people", "{}", "--sort", "age", "--limit", "2")
    assert [d["_id"] for d in found] == ["bob", "ann"]
    found = cli.json("docs", "find", "people", "{}", "--sort", "age", "--skip", "1")
    assert [d["_id"] for d in found] == ["ann", "cy"]
    older = cli.lines("docs", "find", "people", '{"age": {"$gte": 31}}')
    assert [json.loads(line)["_id"] for line in older] == ["ann", "cy"]
    assert cli.ok("docs", "index", "people", "age") == "indexes of 'people': age\n"
    plan = cli.json("query", "--explain", "SELECT id FROM people WHERE doc.age > 30")
    assert any(step["access"] == "index" and step["path"] == "$.age" for step in plan)
    assert cli.ok("docs", "rm", "people", "bob").startswith("bafy")
    cli.fails("docs", "get", "people", "bob", code="not_found")
    assert [d["_id"] for d in cli.json("docs", "find", "people", "{}")] == ["ann", "cy"]


# -- counter and ydoc -------------------------------------------------------------------------


def test_counter_inc_and_get(cli: Cli) -> None:
    assert cli.ok("counter", "inc", "visits") == "1\n"
    assert cli.ok("counter", "inc", "visits", "10") == "11\n"
    assert cli.ok("counter", "inc", "visits", "-4") == "7\n"
    assert cli.ok("counter", "get", "visits") == "7\n"
    assert cli.json("counter", "get", "visits") == [{"value": 7}]


def test_ydoc_append_and_text(cli: Cli) -> None:
    (first,) = cli.lines("ydoc", "append", "notes", "Hello, ")
    assert first.startswith("bafy")
    cli.ok("ydoc", "append", "notes", "world")
    cli.ok("ydoc", "append", "notes", "title", "--field", "title")
    assert cli.ok("ydoc", "text", "notes") == "Hello, world\n"
    assert cli.json("ydoc", "text", "notes", "--field", "title") == [
        {"field": "title", "text": "title"}
    ]
    assert cli.ok("ydoc", "text", "notes", "--field", "empty") == "\n"
    assert cli.json("ydoc", "append", "notes", "") == [{"field": "text", "entries": []}]
    assert len(cli.json("log", "notes")) == 3  # one entry per append


# -- query ----------------------------------------------------------------------------------


def test_query_table_json_params_and_joins(cli: Cli) -> None:
    cli.ok("docs", "put", "users", '{"_id": "u1", "name": "Ann", "age": 31}')
    cli.ok("docs", "put", "users", '{"_id": "u2", "name": "Bartholomew", "age": 25}')
    cli.ok("kv", "put", "theme", "u1", '"dark"')
    cli.ok("counter", "inc", "hits", "3")
    cli.ok("ydoc", "append", "pad", "not a table")
    lines = cli.lines("query", "SELECT id, doc.name AS name, doc.age FROM users ORDER BY id")
    assert lines == [
        "id  name         doc.age",
        "--  -----------  -------",
        "u1  Ann          31",
        "u2  Bartholomew  25",
    ]
    rows = cli.json(
        "query",
        "SELECT u.doc.name AS name, t.value AS theme FROM users u"
        " LEFT JOIN theme t ON t.key = u.id WHERE u.doc.age > ? ORDER BY u.id",
        "--param",
        "20",
    )
    assert rows == [{"name": "Ann", "theme": "dark"}, {"name": "Bartholomew", "theme": None}]
    assert cli.json("query", "SELECT value FROM hits") == [{"value": 3}]
    assert cli.json("query", "SELECT id FROM users WHERE doc.name = ?", "--param", '"Ann"') == [
        {"id": "u1"}
    ]
    assert cli.lines("query", "SELECT id FROM users WHERE id = 'zz'") == ["id", "--"]


# -- help and docs ----------------------------------------------------------------------------


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((*prefix, name))
                found.extend(_commands(sub, (*prefix, name)))
    return found


def test_every_command_has_help_and_a_docs_entry(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = (ROOT / "docs" / "cli.md").read_text("utf-8")
    commands = _commands(build_parser())
    assert ("kv", "put") in commands and ("query",) in commands
    for command in commands:
        assert main([*command, "--help"]) == 0
        out = capsys.readouterr().out
        words = " ".join(command)
        assert out.startswith(f"usage: orbitstore {words}")
        assert f"## orbitstore {words}\n" in docs, f"`{words}` is missing from docs/cli.md"
        assert f"usage: orbitstore {words} " in docs, f"help of `{words}` not in docs/cli.md"


def test_parser_lists_every_database_type() -> None:
    assert list(DATABASE_TYPES) == available_types()


# -- mistakes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["kv", "put", "settings", "k", "{bad"], "invalid_value"),
        (["kv", "put", "settings", "k", "dark"], "invalid_value"),
        (["kv", "put", "settings", "", "1"], "invalid_value"),
        (["kv", "get", "nowhere", "k"], "not_found"),
        (["kv", "ls", "nowhere"], "not_found"),
        (["feed", "ls", "settings"], "wrong_database_type"),
        (["docs", "put", "settings", '{"_id": "a"}'], "wrong_database_type"),
        (["counter", "inc", "settings"], "wrong_database_type"),
        (["ydoc", "text", "settings"], "wrong_database_type"),
        (["append", "settings", "1"], "wrong_database_type"),
        (["query", "SELECT nope FROM settings"], "query"),
        (["query", "DELETE FROM settings"], "query"),
        (["query", "SELECT * FROM missing_table"], "query"),
        (["query", "SELECT key FROM settings WHERE key = ?", "--param", "x"], "invalid_value"),
        (["docs", "put", "people", "[1, 2]"], "invalid_value"),
        (["docs", "put", "people", '{"name": "no id"}'], "invalid_value"),
        (["docs", "find", "people", '{"$bogus": 1}'], "query"),
        (["docs", "find", "people", "{}", "--sort", "age:sideways"], "invalid_value"),
        (["create", "settings", "--type", "feed"], "usage"),
        (["create", "x", "--type", "documents", "--meta", "[]"], "invalid_value"),
        (["create", "x", "--type", "documents", "--meta", '{"merge": "x"}'], "invalid_value"),
        (["create", "x", "--type", "feed", "--write", "not-a-did"], "invalid_value"),
        (
            ["info", "/orbitstore/bafyreigtzfqzsg4p5l6wh3tgtqhqpcfxsdymeu7w3fahnk5oq5b4i2jcvu"],
            "not_found",
        ),
        (["info", "nowhere"], "not_found"),
        (["log", "nowhere"], "not_found"),
        (["kv", "put", "settings"], "usage"),
        (["kv"], "usage"),
        (["frobnicate"], "usage"),
        (["kv", "ls", "settings", "--limit", "-1"], "usage"),
        (["counter", "inc", "c", "many"], "usage"),
        (["create", "x", "--type", "table"], "usage"),
        (["demo", "--count", "0"], "invalid_value"),
    ],
)
def test_mistakes_exit_2_with_an_error_line(cli: Cli, args: list[str], code: str) -> None:
    cli.ok("kv", "put", "settings", "k", "1")
    cli.ok("docs", "put", "people", '{"_id": "a"}')
    cli.fails(*args, code=code)
    assert "nowhere" not in cli.ok("ls")  # reads never create a database


def test_errors_are_json_with_json(cli: Cli) -> None:
    cli.ok("kv", "put", "settings", "k", "1")
    code, out, err = cli.run("feed", "add", "settings", "1", json_lines=True)
    assert code == 2 and out == ""
    error = json.loads(err)["error"]
    assert error["code"] == "wrong_database_type"
    assert error["expected"] == "feed" and error["actual"] == "keyvalue"
    code, _, err = cli.run("kv", "put", json_lines=True)
    assert code == 2 and json.loads(err.splitlines()[-1])["error"]["code"] == "usage"


def test_a_home_that_is_a_file_is_an_error_not_a_traceback(tmp_path: Path, capsys: Any) -> None:
    home = tmp_path / "file"
    home.write_text("not a directory")
    assert main(["--home", str(home), "id"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.rstrip().endswith("[os]")


# -- the installed entry point -----------------------------------------------------------------


def test_python_dash_m_orbitstore_runs(tmp_path: Path) -> None:
    env = {**os.environ, "ORBITSTORE_HOME": str(tmp_path / "node")}
    env.pop("ORBITSTORE_DEBUG", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orbitstore", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    put = run("kv", "put", "settings", "theme", '"dark"')
    assert put.returncode == 0, put.stderr
    got = run("kv", "get", "settings", "theme")
    assert (got.returncode, got.stdout) == (0, '"dark"\n')
    bad = run("kv", "get", "settings", "nope")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr == "error: no key 'nope' in 'settings' [not_found]\n"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("orbitstore ")


def test_global_options_may_follow_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "node"
    assert main(["kv", "put", "s", "k", "7", "--home", str(home)]) == 0
    capsys.readouterr()
    assert main(["kv", "get", "s", "k", "--json", "--home", str(home)]) == 0
    assert json.loads(capsys.readouterr().out) == {"key": "k", "value": 7}
    assert main(["--home", str(home), "ls", "--json"]) == 0
    assert [row["name"] for row in map(json.loads, capsys.readouterr().out.splitlines())] == ["s"]
    # before the command still works, and a user mistake after it is still a clean error
    assert main(["--home", str(home), "--json", "kv", "get", "s", "k"]) == 0
    capsys.readouterr()
    assert main(["kv", "get", "nope", "k", "--home", str(home)]) == 2
    assert "Traceback" not in capsys.readouterr().err
