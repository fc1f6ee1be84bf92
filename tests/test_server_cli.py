"""``orbitstore serve --api``: a real node process serves the HTTP API on 127.0.0.1."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
import trio

from orbitstore.cli.serve import _api_config, add_arguments
from orbitstore.errors import UsageError
from tests.test_serve import DEADLINE, serve


def _args(*argv: str) -> object:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_api_option_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORBITSTORE_API_TOKEN", raising=False)
    assert _api_config(_args("--no-api")) is None
    default = _api_config(_args())  # on by default, for this machine's command line
    assert (default.host, default.port) == ("127.0.0.1", 0) and len(default.token) >= 16
    with pytest.raises(UsageError, match="contradict"):
        _api_config(_args("--no-api", "--api", "4500"))
    config = _api_config(_args("--api", "4500"))
    assert (config.host, config.port, config.token) == ("127.0.0.1", 4500, None)
    with pytest.raises(UsageError, match="needs a token"):
        _api_config(_args("--api", "0.0.0.0:4500"))
    monkeypatch.setenv("ORBITSTORE_API_TOKEN", "t" * 20)
    assert _api_config(_args("--api", "0.0.0.0:4500")).token == "t" * 20


@pytest.mark.slow
async def test_serve_with_api(tmp_path: Path) -> None:
    async with serve(tmp_path / "a", "--open", "notes", "--type", "keyvalue", "--api", "0") as a:
        ready = await a.event("ready")
        api = await a.event("api")
        (url,) = api["urls"]
        assert url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=url) as client:
            with trio.fail_after(DEADLINE):
                node = (await client.get("/v1/node")).json()
                assert node["peer_id"] == ready["peer_id"] and node["networked"] is True
                put = await client.put("/v1/databases/notes/keys/a", json={"value": 1})
                assert put.status_code == 200
                await a.event("status", entries=1)
        a.process.send_signal(signal.SIGTERM)
        await a.event("stopped")
        with trio.fail_after(DEADLINE):
            assert await a.process.wait() == 0
