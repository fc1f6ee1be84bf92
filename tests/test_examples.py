"""Every example runs as its docstring says, and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# script, arguments, a line fragment its output must hold
RUNS = [
    ("chat.py", ["--demo"], "bob sees: <alice> hi, anyone here? | <bob> hello alice!"),
    ("offline_todo.py", [], "both sides hold the same todos: True"),
    ("documents_quickstart.py", [], "ann"),
    ("keyvalue_and_feed.py", [], "users:"),
    ("query_demo.py", [], "live: [{'busy': 1}]"),
    ("ydoc_edit.py", [], "same document on both nodes: True"),
    ("replication_demo.py", [], "heads equal: True"),
]


@pytest.mark.parametrize(("script", "args", "expected"), RUNS, ids=[r[0] for r in RUNS])
def test_example_runs(script: str, args: list[str], expected: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,  # examples must not write into the current directory
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert expected in done.stdout, done.stdout[-3000:]
    assert list(tmp_path.iterdir()) == [], "the example left files in the current directory"


def test_every_example_is_run() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py")} - {"wire_format_example.py"}
    assert scripts == {r[0] for r in RUNS}
