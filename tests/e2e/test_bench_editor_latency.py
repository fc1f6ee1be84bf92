"""benchmarks/bench_editor_latency.py runs (--quick) and prints its six JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_editor_latency.py"


def test_editor_latency_quick_run(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["name"] for line in lines] == [
        f"editor_latency{cadence}_{stat}"
        for cadence in ("", "_burst")
        for stat in ("p50", "p99", "max")
    ]
    for line in lines:
        assert line["unit"] == "ms" and line["n"] == 20 and line["value"] > 0
    for first in (0, 3):
        assert lines[first]["value"] <= lines[first + 1]["value"] <= lines[first + 2]["value"]
    assert not list(tmp_path.iterdir())
