"""Every benchmark script runs with --quick and prints well-formed JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
# Benchmarks that drive a real browser: smoke-run by make test-e2e (tests/e2e), which
# installs Chromium; here only their "no browser" answer is checked.
BROWSER = {"bench_editor_latency.py"}
SCRIPTS = sorted(p for p in BENCHMARKS.glob("bench_*.py") if p.name not in BROWSER)


def test_there_are_benchmarks() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"bench_append.py", "bench_receive.py", "bench_reopen.py"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_benchmark_quick_run_prints_json_lines(script: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--quick"],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # a benchmark must not depend on, or write to, the working directory
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines, "a benchmark printed nothing"
    for line in lines:
        result = json.loads(line)
        assert isinstance(result["name"], str) and result["name"]
        assert isinstance(result["value"], int | float)
        assert isinstance(result["unit"], str) and result["unit"]
        assert isinstance(result["n"], int) and result["n"] > 0
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", sorted(BROWSER))
def test_a_browser_benchmark_without_chromium_says_so_and_fails(name: str, tmp_path: Path) -> None:
    env = {**os.environ, "ORBITSTORE_CHROMIUM": str(tmp_path / "no-chromium")}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), "--quick"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "cannot run: no Chromium at" in done.stderr and "apt-get install" in done.stderr
