"""Every benchmark script runs with --quick and prints well-formed JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("bench_*.py"))


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
