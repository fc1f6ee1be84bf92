"""``orbitstore attach`` / ``orbitstore cat``: directly on a node directory, and through
running nodes' APIs, where ``cat`` on a replica fetches the file lazily from the node
that attached it (two ``orbitstore serve`` processes over libp2p on 127.0.0.1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orbitstore.cli import main
from orbitstore.core.unixfs import build_file
from tests.test_cli_api import _cli
from tests.test_serve import serve


def test_attach_then_cat_on_the_node_directory(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    data = os.urandom(600_000)
    (tmp_path / "in.bin").write_bytes(data)
    home = str(tmp_path / "node")
    assert main(["--home", home, "attach", str(tmp_path / "in.bin")]) == 0
    cid = capsysbinary.readouterr().out.decode().strip()
    assert cid == str(build_file(data)[0])
    assert main(["--home", home, "cat", cid]) == 0
    assert capsysbinary.readouterr().out == data
    assert main(["--home", home, "--json", "cat", cid, "-o", str(tmp_path / "out.bin")]) == 0
    assert json.loads(capsysbinary.readouterr().out) == {
        "file": str(tmp_path / "out.bin"),
        "size": len(data),
    }
    assert (tmp_path / "out.bin").read_bytes() == data
    # Mistakes: typed, one line, no traceback, and no half-written output file.
    assert main(["--home", home, "cat", "bafy-not-a-cid"]) == 2
    assert capsysbinary.readouterr().err.endswith(b"[invalid_cid]\n")
    missing = str(build_file(b"never attached")[0])
    assert main(["--home", home, "cat", missing, "-o", str(tmp_path / "gone.bin")]) == 2
    assert b"[attachment_unavailable]" in capsysbinary.readouterr().err
    assert not (tmp_path / "gone.bin").exists()
    assert not (tmp_path / "gone.bin.partial").exists()
    assert main(["--home", home, "attach", str(tmp_path / "nope")]) == 2
    assert b"cannot read" in capsysbinary.readouterr().err


@pytest.mark.slow
async def test_cat_on_a_replica_fetches_through_the_apis(tmp_path: Path) -> None:
    data = os.urandom(1_200_000)
    (tmp_path / "photo.jpg").write_bytes(data)
    async with serve(tmp_path / "a", "--bitswap") as a:
        ready = await a.event("ready")
        await a.event("api")
        async with serve(tmp_path / "b", "--bootstrap", ready["addresses"][0]) as b:
            await b.event("ready")
            await b.event("api")
            put = await _cli(tmp_path / "a", "--json", "attach", str(tmp_path / "photo.jpg"))
            assert put.returncode == 0, put.stderr
            answer = json.loads(put.stdout)
            assert answer == {"cid": str(build_file(data)[0]), "size": len(data)}
            got = await _cli(tmp_path / "b", "cat", answer["cid"])
            assert got.returncode == 0, got.stderr
            assert got.stdout == data
            out = tmp_path / "copy.jpg"
            again = await _cli(tmp_path / "b", "cat", answer["cid"], "--output", str(out))
            assert again.returncode == 0, again.stderr
            assert out.read_bytes() == data
            bad = await _cli(tmp_path / "b", "cat", "Qm-nope")
            assert bad.returncode == 2 and bad.stderr.endswith(b"[invalid_cid]\n")
