"""The layer rules, checked on the source (import-linter checks them too, outside pytest)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import orbitstore

PACKAGE = Path(orbitstore.__file__).parent
PURE = ("core", "sync", "views", "query")
NO_IO = {"trio", "libp2p", "sqlite3", "os", "socket", "time", "random", "threading"}
ONLY_UNDER = {"libp2p": "net", "multiaddr": "net", "sqlite3": "storage"}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), path


def imported(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_checker_sees_imports() -> None:
    assert "cbrrr" in imported(PACKAGE / "core" / "codec.py")
    assert "sqlite3" in imported(PACKAGE / "storage" / "sqlite_errors.py")
    assert sum(1 for _ in modules()) > 20


@pytest.mark.parametrize("layer", PURE)
def test_pure_layers_do_no_io(layer: str) -> None:
    found = {
        rel: sorted(imported(path) & NO_IO)
        for rel, path in modules()
        if rel.startswith(layer + "/") and imported(path) & NO_IO
    }
    assert found == {}


@pytest.mark.parametrize("module, home", sorted(ONLY_UNDER.items()))
def test_foreign_modules_stay_in_their_layer(module: str, home: str) -> None:
    found = [
        rel
        for rel, path in modules()
        if module in imported(path) and not rel.startswith(home + "/")
    ]
    assert found == []
