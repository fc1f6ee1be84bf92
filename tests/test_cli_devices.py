"""``orbitstore devices``: init, delegate / accept by hand, ls, unlink, and user mistakes
(no tracebacks). Pairing over the network is covered in tests/test_devices_libp2p.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from test_cli import Cli

from orbitstore.node import open_node


def test_devices_init_delegate_accept_ls_and_unlink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    laptop = Cli(tmp_path / "laptop", capsys)
    phone = Cli(tmp_path / "phone", capsys)
    [made] = laptop.json("devices", "init")
    user = made["user"]
    phone_id = phone.json("id")[0]["id"]
    laptop.fails("devices", "init", code="usage")  # already a device
    phone.fails("devices", "delegate", made["device"], code="usage")  # no root key there
    phone.fails("devices", "accept", "odl-not-a-delegation", code="invalid_delegation")
    [delegated] = laptop.json("devices", "delegate", phone_id)
    assert delegated["user"] == user and delegated["device"] == phone_id
    Cli(tmp_path / "other", capsys).fails(
        "devices",
        "accept",
        delegated["delegation"],
        code="usage",  # for another key
    )
    assert user in phone.ok("devices", "accept", delegated["delegation"])
    [info] = phone.json("devices", "ls")
    assert info["user"] == user and info["linked"] and not info["holds_root"]

    async def make_db() -> str:
        async with open_node(tmp_path / "laptop") as node:
            db = await node.open("notes", type="keyvalue", access="capabilities")
            await db.append({"op": "put", "key": "k", "value": 1})
            return db.address

    trio.run(make_db)
    [row] = laptop.json("devices", "ls", "notes")
    assert row["user"] == user and [d["device"] for d in row["devices"]] == [made["device"]]
    table = laptop.lines("devices", "ls", "notes")
    assert table[0].split()[:3] == ["user", "rights", "devices"] and user in table[2]
    assert "unlinked" in laptop.ok("devices", "unlink", phone_id, "notes")
    [after] = laptop.json("devices", "ls")
    assert phone_id in after["unlinked"] and phone_id not in after["devices"]
    laptop.fails("devices", "unlink", phone_id, "nope", code="not_found")
    laptop.fails("devices", "link", "/ip4/127.0.0.1/tcp/1#pair=1", code="invalid_value")
