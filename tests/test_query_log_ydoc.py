"""SQL tables of log and ydoc databases: a log's entries, a ydoc's roots (docs/query.md)."""

from __future__ import annotations

from pathlib import Path

import pycrdt
import pytest

import orbitstore
from orbitstore.errors import UsageError
from orbitstore.node.ydoc import YDocument


async def test_a_log_is_a_table_of_its_entries(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        chat = await node.open("chat")
        first = await chat.append({"text": "hi", "n": 1})
        await chat.append({"text": "yo", "n": 2})
        await chat.append("plain")
        got = chat.query("SELECT cid, writer, clock, ts, payload FROM this ORDER BY clock")
        assert got.columns == ("cid", "writer", "clock", "ts", "payload")
        assert got.rows[0] == (str(first.cid), node.id, 1, first.ts, {"text": "hi", "n": 1})
        assert [r[4] for r in got.rows] == [e.payload for e in chat.entries()]
        assert chat.query("SELECT payload.text FROM chat WHERE payload.n >= 2").rows == (("yo",),)
        assert chat.query("SELECT count(*) FROM this WHERE payload = 'plain'").rows == ((1,),)


async def test_a_log_as_of_past_heads_and_joined_with_another_database(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        chat = await node.open("chat")
        await chat.append({"user": "ann", "text": "hi"})
        past = chat.heads
        await chat.append({"user": "bob", "text": "yo"})
        users = await node.open("users", type="keyvalue")
        await users.put("ann", {"name": "Ann"})
        assert chat.query("SELECT count(*) FROM this", as_of=past).rows == ((1,),)
        joined = node.query(
            "SELECT u.value.name, c.payload.text FROM chat c JOIN users u ON u.key = c.payload.user"
        )
        assert joined.rows == (("Ann", "hi"),)
        assert node.query("SELECT count(*) FROM chat", as_of={"chat": past}).rows == ((1,),)


async def test_an_encrypted_log_has_no_table(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        secret = await node.open("secret", encrypted=True)
        await secret.append("sealed")
        with pytest.raises(UsageError, match="sealed"):
            secret.query("SELECT * FROM this")


async def test_a_ydoc_is_a_table_of_its_roots(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        notes = await node.open("notes", type="ydoc")
        assert isinstance(notes, YDocument)
        async with notes.edit() as doc:
            doc.get("body", type=pycrdt.Text).insert(0, "hello")
            meta = doc.get("meta", type=pycrdt.Map)
            meta["title"] = "Plans"
        past = notes.heads
        async with notes.edit() as doc:
            doc.get("body", type=pycrdt.Text).insert(5, " world")
        got = notes.query("SELECT name, text, fields FROM this ORDER BY name")
        assert got.rows == (("body", "hello world", None), ("meta", None, {"title": "Plans"}))
        assert notes.query("SELECT fields.title FROM notes WHERE name = 'meta'").rows == (
            ("Plans",),
        )
        old = notes.query("SELECT text FROM this WHERE name = 'body'", as_of=past)
        assert old.rows == (("hello",),)
        # the live document keeps the types the application gave its roots
        assert notes.text("body") == "hello world"
        assert node.query("SELECT text FROM notes WHERE name = 'body'").rows == (("hello world",),)


async def test_a_ydoc_table_follows_new_edits_and_refuses_live_queries(tmp_path: Path) -> None:
    async with orbitstore.open_node(tmp_path) as node:
        notes = await node.open("notes", type="ydoc")
        assert isinstance(notes, YDocument)
        assert notes.query("SELECT count(*) FROM this").rows == ((0,),)
        async with notes.edit() as doc:
            doc.get("body", type=pycrdt.Text).insert(0, "a")
        assert notes.query("SELECT text FROM this").rows == (("a",),)
        with pytest.raises(UsageError, match="live query"):
            notes.watch("SELECT text FROM this")
