"""Keep the documentation in step with the code."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

import orbitstore.errors
from orbitstore.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _error_classes() -> list[type[orbitstore.errors.OrbitstoreError]]:
    return [
        obj
        for obj in vars(orbitstore.errors).values()
        if inspect.isclass(obj) and issubclass(obj, orbitstore.errors.OrbitstoreError)
    ]


def test_every_error_is_documented_with_its_code() -> None:
    text = (DOCS / "errors.md").read_text("utf-8")
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `(\w+)` \| `(\w+)` \|", text, flags=re.MULTILINE)
    }
    classes = _error_classes()
    assert len(classes) > 20
    for cls in classes:
        assert cls.__name__ in rows, f"{cls.__name__} is missing from docs/errors.md"
        assert rows[cls.__name__] == cls.code, f"wrong code for {cls.__name__} in errors.md"
    assert set(rows) == {cls.__name__ for cls in classes}, "errors.md lists unknown errors"


def test_every_cli_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text("utf-8")
    parser = build_parser()
    actions = [a for a in parser._actions if a.choices and isinstance(a.choices, dict)]
    commands = sorted(actions[0].choices)
    assert commands
    for command in commands:
        assert f"## orbitstore {command}\n" in text, f"`{command}` is missing from docs/cli.md"
        assert f"usage: orbitstore {command}" in text, f"help of `{command}` not in cli.md"


def test_wire_format_example_is_what_the_code_produces() -> None:
    spec = importlib.util.spec_from_file_location(
        "wire_format_example", ROOT / "examples" / "wire_format_example.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (DOCS / "wire-format.md").read_text("utf-8")
    pattern = r"<!-- example:begin -->\n```text\n(.*?)```\n<!-- example:end -->"
    found = re.search(pattern, text, re.S)
    assert found, "wire-format.md lost its example markers"
    assert found.group(1) == module.render(), (
        "docs/wire-format.md is stale: regenerate it with examples/wire_format_example.py"
    )


def test_readme_example_runs(tmp_path: Path) -> None:
    """The README's Python example is real: run it (in a scratch directory)."""
    import subprocess
    import sys

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "dark" in done.stdout and "alan" in done.stdout and "/orbitstore/b" in done.stdout


def test_cli_help_blocks_are_generated_from_the_parser() -> None:
    """Every `usage: orbitstore ...` block of cli.md is the command's current --help."""
    from orbitstore.cli import docgen

    text = (DOCS / "cli.md").read_text("utf-8")
    assert docgen.render(text) == text, "run: .venv/bin/python -m orbitstore.cli.docgen docs/cli.md"
