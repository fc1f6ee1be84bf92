"""The keystore keeps the node's seed private and stable."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from orbitstore.core.identity import Identity
from orbitstore.errors import KeystoreError
from orbitstore.storage.keystore import Keystore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_created_private_and_reopened_the_same(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "keystore.json"
    first = Keystore(path).get_or_create()
    assert mode(path) == 0o600
    again = Keystore(path)
    assert again.get_or_create().id == first.id
    assert again.get().seed == first.seed  # type: ignore[union-attr]
    assert again.names() == ["default"]
    other = again.get_or_create("other")
    assert other.id != first.id
    assert Keystore(path).names() == ["default", "other"]
    assert Keystore(path).get_or_create().id == first.id
    assert mode(path) == 0o600
    assert not path.with_name(path.name + ".tmp").exists()


def test_missing_file_has_no_keys(tmp_path: Path) -> None:
    store = Keystore(tmp_path / "none.json")
    assert store.get() is None
    assert store.names() == []


@pytest.mark.parametrize("bad_mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_permissive_mode_is_refused(tmp_path: Path, bad_mode: int) -> None:
    path = tmp_path / "keystore.json"
    Keystore(path).get_or_create()
    path.chmod(bad_mode)
    with pytest.raises(KeystoreError, match="chmod 600"):
        Keystore(path).get()
    with pytest.raises(KeystoreError):
        Keystore(path).get_or_create()


def _write(path: Path, text: str) -> None:
    path.write_text(text, "utf-8")
    path.chmod(0o600)


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "",
        "[]",
        '{"version": 2, "keys": {}}',
        '{"version": 1}',
        '{"version": 1, "keys": []}',
        '{"version": 1, "keys": {"default": "zz"}}',
        '{"version": 1, "keys": {"default": "00ff"}}',
        '{"version": 1, "keys": {"default": 7}}',
        "\udcff",
    ],
)
def test_malformed_keystore_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "keystore.json"
    if text == "\udcff":
        path.write_bytes(b"\xff\xfe not utf-8")
        path.chmod(0o600)
    else:
        _write(path, text)
    with pytest.raises(KeystoreError):
        Keystore(path).get()


def test_reads_a_hand_written_keystore(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    seed = bytes(range(32))
    _write(path, json.dumps({"version": 1, "keys": {"default": seed.hex()}}))
    found = Keystore(path).get()
    assert found is not None
    assert found.id == Identity(seed).id
