"""npm packages for the interop tests that run real JavaScript software (Node.js).

Each interop directory (``tests/interop``, ``tests/interop_ipfs``) pins its packages in a
``package-lock.json``; :func:`installed` runs ``npm ci`` there on first use. Tests that
need them are marked :data:`NEEDS_NODE_JS`: skipped only when ``node`` or ``npm`` is not
installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

#: Marks of a test that runs a Node.js program: slow, and skipped without node or npm.
NEEDS_NODE_JS = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("node") is None or shutil.which("npm") is None,
        reason="Node.js and npm are needed to run the JavaScript interop programs",
    ),
]


def installed(directory: Path, packages: tuple[str, ...], *, timeout: float = 300) -> Path:
    """``directory/node_modules``, with ``npm ci`` run first if any of ``packages`` is
    missing there."""
    modules = directory / "node_modules"
    if not all((modules / name).is_dir() for name in packages):
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=directory,
            check=True,
            timeout=timeout,
        )
    return modules
