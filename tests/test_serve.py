"""``orbitstore serve`` (orbitstore/cli/serve.py) in real OS processes on 127.0.0.1."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from orbitstore.cli.serve import DEFAULT_LISTEN, add_parser, cmd_serve
from orbitstore.errors import InvalidValueError
from orbitstore.node import open_node

DEADLINE = 60.0  # a fresh process imports libp2p in ~1 s; much longer on a loaded VM


class Served:
    def __init__(self, process: trio.Process) -> None:
        assert process.stdout is not None
        self.process = process
        self._stdout = process.stdout
        self._buffer = b""

    async def event(self, kind: str, **match: Any) -> dict[str, Any]:
        """The next JSON line of this ``event`` kind whose fields match."""
        with trio.fail_after(DEADLINE):
            while True:
                while b"\n" not in self._buffer:
                    data = await self._stdout.receive_some()
                    assert data, f"serve exited before printing {kind} {match}"
                    self._buffer += data
                line, _, self._buffer = self._buffer.partition(b"\n")
                event: dict[str, Any] = json.loads(line)
                if event["event"] == kind and all(event.get(k) == v for k, v in match.items()):
                    return event


@asynccontextmanager
async def serve(home: Path, *args: str) -> AsyncIterator[Served]:
    command = [
        sys.executable,
        "-m",
        "orbitstore.cli.serve",
        "--home",
        str(home),
        "--json",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-mdns",
        "--status-interval",
        "0.05",
        *args,
    ]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    served = Served(process)
    try:
        yield served
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
            await served._stdout.aclose()


@pytest.mark.slow
async def test_serve_replicates_prints_status_and_stops_on_signals(tmp_path: Path) -> None:
    async with open_node(tmp_path / "a") as node:
        chat = await node.open("chat", type="feed", write=["*"])
        await chat.add_many(["hello", "world"])
        await chat.add("!")
        address, manifest = chat.address, node.store.blocks.get(chat.cid)
    assert manifest is not None
    # The reader holds the manifest (until manifests are fetched from peers).
    async with open_node(tmp_path / "b") as node:
        node.store.blocks.put(chat.cid, manifest)

    async with serve(tmp_path / "a", "--open", "chat") as a:
        ready = await a.event("ready")
        assert ready["addresses"] and all("/p2p/" in x for x in ready["addresses"])
        opened = await a.event("open")
        assert (opened["name"], opened["type"], opened["address"]) == ("chat", "feed", address)
        await a.event("status", entries=2, peers=[])
        async with serve(
            tmp_path / "b", "--bootstrap", ready["addresses"][0], "--open", address
        ) as b:
            await b.event("ready")
            await b.event("open", address=address, type="feed")
            synced = await b.event("status", entries=2, missing=0, synced=True)
            (peer,) = synced["peers"]
            assert peer["peer"] == ready["peer_id"] and peer["received"] == 2
            # The writer sees the reader as a peer too.
            status = await a.event("status", synced=True)
            while not status["peers"]:
                status = await a.event("status", synced=True)
            b.process.send_signal(signal.SIGINT)
            await b.event("stopped")
            with trio.fail_after(DEADLINE):
                assert await b.process.wait() == 0
        a.process.send_signal(signal.SIGTERM)
        await a.event("stopped")
        with trio.fail_after(DEADLINE):
            assert await a.process.wait() == 0


def test_serve_arguments() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--open", "a", "--open", "b", "--no-mdns"])
    assert args.open == ["a", "b"] and args.mdns is False and args.dht is False
    assert args.listen is None  # means DEFAULT_LISTEN
    assert DEFAULT_LISTEN.startswith("/ip4/0.0.0.0/tcp/")
    assert parser.parse_args(["serve"]).mdns is True


async def test_serve_refuses_a_bad_status_interval(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--status-interval", "0"])
    with pytest.raises(InvalidValueError):
        await cmd_serve(args, tmp_path)
