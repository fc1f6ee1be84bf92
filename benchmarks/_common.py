"""Shared helpers for the benchmark scripts (not a benchmark itself).

Every benchmark prints one JSON object per line::

    {"name": ..., "value": ..., "unit": ..., "n": <workload size>, ...extra}

Values are medians over ``reps`` repetitions; ``runs`` lists every repetition so the
spread on a shared, noisy machine is visible.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from typing import Any


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="tiny workloads: a smoke run of a few seconds"
    )
    return parser.parse_args()


def emit(name: str, runs: list[float], unit: str, n: int, **extra: Any) -> None:
    """Print one result line: the median of ``runs`` and the runs themselves."""
    value = statistics.median(runs)
    digits = 1 if value >= 100 else 3
    line = {
        "name": name,
        "value": round(value, digits),
        "unit": unit,
        "n": n,
        "runs": [round(r, digits) for r in runs],
        **extra,
    }
    print(json.dumps(line), flush=True)


def machine() -> dict[str, Any]:
    """Facts about the interpreter, for the record (no paths, no host names)."""
    return {"python": platform.python_version(), "implementation": sys.implementation.name}
