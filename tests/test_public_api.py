"""The names ``import orbitstore`` gives are exactly the ones we mean to support, and
importing the package is cheap (each name is imported on first use)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import orbitstore

PUBLIC = {
    "AttachmentLimits",
    "AttachmentsConfig",
    "Cid",
    "Change",
    "Conflict",
    "Counter",
    "Database",
    "DatabaseStatistics",
    "DiscoveryConfig",
    "Documents",
    "Entry",
    "EntryLimits",
    "Feed",
    "FeedItem",
    "FileLayout",
    "Identity",
    "KeyValue",
    "Lagged",
    "Manifest",
    "Node",
    "NodeConfig",
    "OrbitstoreError",
    "QueryLimits",
    "QueryPlan",
    "QueryResult",
    "ReadProgress",
    "ReplicationConfig",
    "SqliteConfig",
    "Subscription",
    "SyncProgress",
    "YDocument",
    "open_node",
}


def test_exported_names() -> None:
    assert set(orbitstore.__all__) == PUBLIC
    assert {n for n in dir(orbitstore) if not n.startswith("_")} >= PUBLIC


def test_type_checking_block_matches_the_lazy_table() -> None:
    """The TYPE_CHECKING re-exports (what mypy and IDEs see) name the same objects in the
    same modules as the table ``__getattr__`` imports from."""
    tree = ast.parse(Path(orbitstore.__file__).read_text("utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If))
    seen = {
        alias.asname: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.asname == alias.name
    }
    assert seen == orbitstore._EXPORTS


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_name_resolves_from_the_package(name: str) -> None:
    value = getattr(orbitstore, name)
    assert value.__module__.startswith("orbitstore."), name
    assert value.__name__ == name


def test_internals_stay_out() -> None:
    for name in ("OpLog", "ReceiveResult", "SqliteStore", "MemoryStore", "KeyValueView"):
        with pytest.raises(AttributeError):
            getattr(orbitstore, name)


def test_import_is_cheap() -> None:
    code = (
        "import sys, orbitstore; "
        "names = ('trio', 'sqlglot', 'pycrdt', 'libp2p', 'sqlite3'); "
        "heavy = [m for m in names if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"import orbitstore imported {out}"


def test_version() -> None:
    assert isinstance(orbitstore.__version__, str) and orbitstore.__version__


def test_a_keyvalue_cli_command_imports_no_sql_or_yjs(tmp_path: Path) -> None:
    """`kv get` must start fast: neither sqlglot (SQL) nor pycrdt (ydoc) nor libp2p."""
    home = str(tmp_path / "node")
    code = (
        "import sys; from orbitstore.cli import main; "
        f"main(['--home', {home!r}, 'kv', 'put', 's', 'k', '1']); "
        "names = ('sqlglot', 'pycrdt', 'libp2p'); "
        "print('heavy:' + ','.join(m for m in names if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "heavy:", done.stdout
