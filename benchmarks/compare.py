"""Run one benchmark script from two checkouts, interleaved, and report new/old ratios.

The machine is shared and noisy: numbers from different moments are not comparable, so
old and new run in the same sitting, alternating (old, new, old, new, ...)::

    .venv/bin/python benchmarks/compare.py --old ../base --new . --rounds 3 \\
        bench_append.py [args...]

``--old``/``--new`` are project checkouts, each with its own ``.venv``. Every round runs
the script once in each; each result name's medians over the rounds are compared and
printed as JSON lines ``{"name", "old", "new", "ratio", "unit", "rounds"}`` (ratio =
new / old: above 1 is faster for rates, slower for times — the unit says which).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

_SETTINGS = ("threads", "clients", "mode", "size", "batch")


def run(checkout: Path, script: str, args: list[str]) -> list[dict[str, object]]:
    python = checkout / ".venv" / "bin" / "python"
    done = subprocess.run(
        [str(python), str(checkout / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=checkout,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, required=True)
    parser.add_argument("--new", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("script")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    opts = parser.parse_args()
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    units: dict[str, str] = {}
    for _ in range(opts.rounds):
        for side, checkout in (("old", opts.old), ("new", opts.new)):
            for line in run(checkout.resolve(), opts.script, opts.args):
                # lines of one name and size differ by their settings (threads=1/2, ...)
                extra = "".join(f",{k}={line[k]}" for k in _SETTINGS if k in line)
                name = f"{line['name']}@{line.get('n')}{extra}"
                values[(name, side)].append(float(line["value"]))  # type: ignore[arg-type]
                units[name] = str(line["unit"])
    for name, unit in units.items():
        old, new = values.get((name, "old")), values.get((name, "new"))
        if not old or not new:
            continue
        o, n = statistics.median(old), statistics.median(new)
        ratio = round(n / o, 3) if o else None
        out = {"name": name, "old": o, "new": n, "ratio": ratio, "unit": unit}
        print(json.dumps({**out, "rounds": opts.rounds}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
