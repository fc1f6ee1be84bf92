"""Every example runs as its docstring says, and prints what it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TUTORIALS = ROOT / "docs" / "tutorials"

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


# docs/tutorials/*.md: the Python programs they show, and a line of the output they print
TUTORIAL_RUNS = {
    "app-backend.md": "resolved on the phone: {'_id': '1', 'done': True, 'title': 'buy oat milk an",
    "chat.md": "<bob> thanks for the invite\nbob may write: True",
    "shared-editing.md": "same text: True - both edits kept: True",
}


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", page.read_text("utf-8"), re.S | re.M)


@pytest.mark.parametrize("page", sorted(TUTORIAL_RUNS))
def test_tutorial_program_runs(page: str, tmp_path: Path) -> None:
    """Each tutorial's Python program is complete and prints what the page shows."""
    blocks = _python_blocks(TUTORIALS / page)
    assert len(blocks) == 1, f"{page}: expected one complete program"
    done = subprocess.run(
        [sys.executable, "-c", blocks[0]],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert TUTORIAL_RUNS[page] in done.stdout, done.stdout[-3000:]
    assert TUTORIAL_RUNS[page].split("\n")[-1] in (TUTORIALS / page).read_text("utf-8")


def test_every_tutorial_is_run_and_in_the_nav() -> None:
    pages = {p.name for p in TUTORIALS.glob("*.md")}
    assert pages == set(TUTORIAL_RUNS)
    nav = (ROOT / "mkdocs.yml").read_text("utf-8")
    for page in pages:
        assert f"tutorials/{page}" in nav, f"{page} is not in the mkdocs.yml nav"
