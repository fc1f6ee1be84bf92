"""Writers as users with their devices over HTTP, the CLI (direct and through a running
``serve``) and sync status; ``private`` databases created over the CLI and HTTP."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import trio

from orbitstore.cli.output import utc, writer_lines
from orbitstore.cli.sync_view import refusals
from orbitstore.core import codec
from orbitstore.core.access import CapabilitiesAccess
from orbitstore.core.acl_ops import AclOp
from orbitstore.core.devices import Delegation
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.privacy import META_KEY
from orbitstore.node import open_node
from orbitstore.node.keyvalue import KeyValue
from orbitstore.node.replication import topic_for
from orbitstore.server import ApiConfig
from orbitstore.storage.memory import MemoryStore
from orbitstore.testing.network import MemoryNetwork
from tests.helpers.api import asgi_client
from tests.test_cli import Cli
from tests.test_cli_api import _cli
from tests.test_devices_nodes import open_copy, sync
from tests.test_replication_hardening import CONFIG, peer_status
from tests.test_serve import serve
from tests.test_server_http import create, error_of

PHONE = Identity(b"\x21" * 32)
REPLICA = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"


async def _laptop_and_lost_phone(home: Path) -> dict[str, Any]:
    """A node directory whose user has two devices in the capabilities database
    ``notes``: this node (linked) and a phone (unlinked)."""
    async with (
        open_node(home) as laptop,
        open_node(store=MemoryStore(), identity=PHONE) as phone,
    ):
        user = laptop.create_user()
        phone.accept_delegation(laptop.delegate_device(PHONE.id).to_text())
        a = await laptop.open("notes", type="keyvalue", access="capabilities")
        assert isinstance(a, KeyValue)
        await a.put("from", "laptop")
        b = await open_copy(phone, a)
        await sync(a, b)
        await b.put("phone", 1)
        await sync(a, b)
        statement = await laptop.unlink_device(PHONE.id)
        assert laptop.device is not None and laptop.device.delegation is not None
        return {
            "user": user,
            "laptop": laptop.id,
            "linked_since": laptop.device.delegation.issued,
            "unlinked_since": statement.issued,
        }


def _check_writers(writers: list[dict[str, Any]], setup: dict[str, Any]) -> None:
    [row] = writers
    assert row["user"] == setup["user"]
    assert row["rights"] == [{"right": "owner", "scope": None}]
    devices = {d["device"]: d for d in row["devices"]}
    laptop, phone = devices[setup["laptop"]], devices[PHONE.id]
    assert laptop["linked"] and laptop["since"] == setup["linked_since"] and laptop["links"]
    assert not phone["linked"] and phone["since"] == setup["unlinked_since"]
    assert phone["links"] == [] and len(phone["unlinks"]) == 1


# -- HTTP ----------------------------------------------------------------------------------


async def test_writers_over_http_as_users_with_devices(tmp_path: Path) -> None:
    setup = await _laptop_and_lost_phone(tmp_path / "laptop")
    async with open_node(tmp_path / "laptop") as node, asgi_client(node, ApiConfig()) as api:
        got = await api.get("/v1/databases/notes/writers")
        assert got.status_code == 200, got.text
        assert got.json()["address"] == (await node.open("notes", type="keyvalue")).address
        _check_writers(got.json()["writers"], setup)
        info = (await api.get("/v1/databases/notes")).json()
        _check_writers(info["writers"], setup)
        # A static database: its writers, each a user without devices.
        await create(api, "plain", "log", write=["*", node.id])
        plain = (await api.get("/v1/databases/plain/writers")).json()["writers"]
        assert [w["user"] for w in plain] == sorted(["*", node.id])
        assert all(w["devices"] == [] for w in plain)
        error_of(await api.get("/v1/databases/nope/writers"), 404, "not_found")
        spec = (await api.get("/openapi.json")).json()
        assert "get" in spec["paths"]["/v1/databases/{db}/writers"]


async def test_create_private_over_http(tmp_path: Path) -> None:
    async with open_node(tmp_path / "n") as node, asgi_client(node, ApiConfig()) as api:
        made = await create(api, "secret", "keyvalue", private=True, replicas=[REPLICA])
        assert made["meta"][META_KEY]["replicas"] == [REPLICA]
        assert META_KEY in node.manifest("secret").meta
        await create(api, "public", "keyvalue")
        for body, status, code in [
            ({"private": True, "replicas": ["not-a-did"]}, 400, "invalid_value"),
            ({"private": True, "replicas": [1]}, 400, "invalid_value"),
            ({"private": True, "replicas": [{"a": 1}]}, 400, "invalid_value"),
            ({"private": True, "replicas": REPLICA}, 400, "invalid_value"),  # not a list
            ({"private": "yes"}, 400, "invalid_value"),
            ({"replicas": [REPLICA]}, 400, "usage"),  # replicas without private
            ({"private": True, "write": ["*"]}, 400, "usage"),  # anyone would read
        ]:
            r = await api.post("/v1/databases", json={"name": "x", "type": "log", **body})
            error_of(r, status, code)
        assert "x" not in node.databases()
        exists = {"name": "public", "type": "keyvalue", "private": True}
        error_of(await api.post("/v1/databases", json=exists), 400, "usage")


# -- CLI -----------------------------------------------------------------------------------


def test_info_shows_users_with_devices_directly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = trio.run(_laptop_and_lost_phone, tmp_path / "laptop")
    cli = Cli(tmp_path / "laptop", capsys)
    [info] = cli.json("info", "notes")
    _check_writers(info["users"], setup)
    text = cli.ok("info", "notes")
    assert f"  {setup['user']} (owner)" in text
    assert f"    device {PHONE.id} unlinked since {utc(setup['unlinked_since'])}" in text
    assert f"    device {setup['laptop']} linked since {utc(setup['linked_since'])}" in text
    [row] = cli.lines("devices", "ls", "notes")[2:]
    assert row.split()[:3] == [setup["user"], "owner", "1"]  # one device linked now
    assert row.endswith(f"{setup['laptop']}, {PHONE.id} (unlinked)")


def test_create_private_directly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(tmp_path / "n", capsys)
    [made] = cli.json("create", "secret", "--type", "keyvalue", "--private", "--replica", REPLICA)
    [info] = cli.json("info", "secret")
    assert info["address"] == made["address"]
    assert info["meta"][META_KEY]["replicas"] == [REPLICA]
    cli.fails("create", "x", "--type", "log", "--replica", REPLICA, code="usage")
    cli.fails(
        "create", "x", "--type", "log", "--private", "--replica", "nope", code="invalid_value"
    )
    cli.fails("create", "x", "--type", "log", "--private", "--write", "*", code="usage")


@pytest.mark.slow
async def test_info_and_create_private_through_a_running_node(tmp_path: Path) -> None:
    home = tmp_path / "laptop"
    setup = await _laptop_and_lost_phone(home)
    async with serve(home) as served:
        await served.event("api")
        got = await _cli(home, "--json", "info", "notes")
        assert got.returncode == 0, got.stderr
        _check_writers(json.loads(got.stdout)["users"], setup)
        text = (await _cli(home, "info", "notes")).stdout.decode()
        assert f"    device {PHONE.id} unlinked since {utc(setup['unlinked_since'])}" in text
        made = await _cli(home, "create", "s", "--type", "log", "--private", "--replica", REPLICA)
        assert made.returncode == 0, made.stderr
        meta = json.loads((await _cli(home, "--json", "info", "s")).stdout)["meta"]
        assert meta[META_KEY]["replicas"] == [REPLICA]
        bad = await _cli(home, "create", "t", "--type", "log", "--private", "--replica", "x")
        assert bad.returncode == 2 and bad.stderr.endswith(b"[invalid_value]\n")
        assert b"Traceback" not in bad.stderr


def test_writer_lines_and_refusals_render() -> None:
    writers = [
        {
            "user": "did:key:u",
            "rights": [{"right": "write", "scope": "s/"}],
            "devices": [{"device": "did:key:d", "linked": True, "since": 0}],
        },
        {"user": "did:key:v", "rights": [], "devices": []},
    ]
    assert writer_lines(writers) == [
        "did:key:u (write 's/')\n    device did:key:d linked since 1970-01-01 00:00:00 UTC",
        "did:key:v (no rights)",
    ]
    failure = {"code": "protocol", "message": "m", "user": "did:key:u", "device": "did:key:d"}
    status = {
        "peers": [
            {"peer": "p1", "last_failure": failure},
            {"peer": "p2", "last_failure": {**failure, "device": None}},
            {"peer": "p3", "last_failure": {**failure, "user": None, "device": None}},
            {"peer": "p4", "last_failure": None},
        ]
    }
    assert refusals(status) == [
        "p1: protocol by device did:key:d of user did:key:u",
        "p2: protocol by did:key:u",
    ]


# -- sync status ---------------------------------------------------------------------------

VICTIM, STRANGER = Identity(b"\x22" * 32), Identity(b"\x23" * 32)


async def test_a_refused_write_in_sync_status_names_its_user_and_device(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A device of a user who is no member posts its link op and a write: both are
    refused, and the peer's last failure (and ``GET /v1/sync``) name the user and the
    device."""
    manifest = Manifest(name="team", type="log", access=CapabilitiesAccess.of(VICTIM.id), meta={})
    db_cid, block = manifest.to_block()
    net = MemoryNetwork(rng=random.Random(7))
    store = MemoryStore()
    store.blocks.put(db_cid, block)
    async with (
        net.open_transport("victim") as tv,
        open_node(store=store, identity=VICTIM, transport=tv, config=CONFIG) as node,
        net.open_transport("evil") as te,
    ):
        db = await node.open(f"/orbitstore/{db_cid}")
        await te.connect("mem/victim")
        delegation = Delegation.create(STRANGER, PHONE.id, issued=1)
        link = Entry.create(
            PHONE, db=db_cid, clock=1, next=[], payload=AclOp.link(delegation).to_payload()
        )
        write = Entry.create(PHONE, db=db_cid, clock=2, next=[link.cid], payload="hi")
        blocks = [(e.cid, e.block) for e in (link, write)]
        # No heads: nothing to sync afterwards, so the refusal stays the last failure.
        await te.publish(topic_for(db_cid), announcement_for(db_cid, [], blocks))
        assert node.replication is not None
        with trio.fail_after(30):
            while not any(
                p.peer == "evil" and p.last_failure is not None
                for d in node.replication.statistics().databases
                for p in d.peers
            ):
                await trio.sleep(0.1)
        failure = peer_status(node, "evil").last_failure
        assert (failure.user, failure.device) == (STRANGER.id, PHONE.id), failure
        assert f"device {PHONE.id} of user {STRANGER.id}" in failure.message
        assert len(db) == 0
        async with asgi_client(node, ApiConfig()) as api:
            status = (await api.get(f"/v1/databases/{db_cid}/sync")).json()
        [peer] = [p for p in status["peers"] if p["peer"] == "evil"]
        assert peer["last_failure"]["user"] == STRANGER.id
        assert peer["last_failure"]["device"] == PHONE.id
        assert refusals(status) == [f"evil: protocol by device {PHONE.id} of user {STRANGER.id}"]


def announcement_for(db: Any, heads: list[Any], blocks: list[tuple[Any, bytes]]) -> bytes:
    return codec.encode({"db": db, "heads": heads, "entries": [[c, b] for c, b in blocks]})
