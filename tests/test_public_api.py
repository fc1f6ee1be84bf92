"""The names ``import orbitstore`` gives are exactly the ones we mean to support."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import orbitstore

PUBLIC = {
    "Cid",
    "Conflict",
    "Counter",
    "Database",
    "Documents",
    "Entry",
    "Feed",
    "FeedItem",
    "EntryLimits",
    "Identity",
    "KeyValue",
    "Manifest",
    "Node",
    "NodeConfig",
    "OpLog",
    "ReceiveResult",
    "SqliteConfig",
    "YDocument",
    "open_node",
}


def test_exported_names() -> None:
    names = {
        name
        for name, value in vars(orbitstore).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert names == PUBLIC


def test_exports_are_explicit_reexports() -> None:
    """Every public name is written ``from x import Name as Name`` (PEP 484 re-export)."""
    tree = ast.parse(Path(orbitstore.__file__).read_text("utf-8"))
    reexported = {
        alias.asname
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.asname == alias.name
    }
    assert reexported == PUBLIC


def test_exports_come_from_the_package() -> None:
    for name in PUBLIC:
        assert getattr(orbitstore, name).__module__.startswith("orbitstore."), name


def test_version() -> None:
    assert orbitstore.__version__ == "0.1.0"
