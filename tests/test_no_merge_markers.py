"""No file of the project keeps a merge conflict's markers (docs/cli.md once did: the
docs build and the CLI help check do not see them where they sit between sections)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^(<{7} |>{7} |={7}$)", re.MULTILINE)
SKIP = {"node_modules", ".venv", ".git", ".site", "__pycache__"}
SUFFIXES = {".py", ".md", ".toml", ".yml", ".yaml", ".js", ".mjs", ".html", ".css", ".json"}


def _files() -> list[Path]:
    out = []
    for path in ROOT.rglob("*"):
        if SKIP.intersection(path.relative_to(ROOT).parts) or not path.is_file():
            continue
        if path.suffix in SUFFIXES or path.name in {"Makefile", "run"}:
            out.append(path)
    return out


def test_no_file_holds_conflict_markers() -> None:
    files = _files()
    assert any(p.name == "cli.md" for p in files)
    bad = [
        str(p.relative_to(ROOT))
        for p in files
        if p.stat().st_size < 5_000_000 and MARKER.search(p.read_text("utf-8", errors="replace"))
    ]
    assert bad == []
