"""Keep the help text in ``docs/cli.md`` generated from the parser, so it cannot drift.

Every fenced ``text`` block of the page whose first line is ``usage: orbitstore ...`` is
replaced by the current ``--help`` of that command, rendered at a fixed width::

    .venv/bin/python -m orbitstore.cli.docgen docs/cli.md          # rewrite in place
    .venv/bin/python -m orbitstore.cli.docgen --check docs/cli.md  # exit 1 if stale

``tests/test_docs.py`` runs the check.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from orbitstore.cli.parser import build_parser

WIDTH = 90  # columns the help is wrapped at (argparse reads $COLUMNS)
_BLOCK = re.compile(r"```text\n(usage: orbitstore[^\n]*\n.*?)```", re.S)


def help_for(path: Sequence[str]) -> str:
    """The ``--help`` text of ``orbitstore <path...>`` at :data:`WIDTH` columns."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)
    try:
        parser: argparse.ArgumentParser = build_parser()
        for word in path:
            parser = _child(parser, word)
        return parser.format_help()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def _child(parser: argparse.ArgumentParser, word: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and word in action.choices:
            child: argparse.ArgumentParser = action.choices[word]
            return child
    raise KeyError(word)


def _command_path(usage_line: str) -> list[str]:
    """``usage: orbitstore kv put [-h] name`` -> ``["kv", "put"]`` (subcommands only)."""
    parser = build_parser()
    path: list[str] = []
    for word in usage_line.split()[2:]:
        try:
            parser = _child(parser, word)
        except KeyError:
            break
        path.append(word)
    return path


def render(markdown: str) -> str:
    """``markdown`` with every usage block replaced by the current help."""

    def replace(match: re.Match[str]) -> str:
        first = match.group(1).splitlines()[0]
        return "```text\n" + help_for(_command_path(first)) + "```"

    return _BLOCK.sub(replace, markdown)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [Path(a) for a in args if a != "--check"] or [Path("docs/cli.md")]
    stale = []
    for path in paths:
        text = path.read_text("utf-8")
        new = render(text)
        if new != text:
            stale.append(path)
            if not check:
                path.write_text(new, "utf-8")
    if check and stale:
        names = ", ".join(map(str, stale))
        print(f"{names}: help text is stale; run python -m orbitstore.cli.docgen", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
