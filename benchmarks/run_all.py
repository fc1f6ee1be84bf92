"""Run every ``bench_*.py`` script in this directory and print their JSON lines.

Run: ``.venv/bin/python benchmarks/run_all.py [--quick]`` (``make bench``). Each script
runs in its own interpreter, one after the other, so they do not disturb each other.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def scripts() -> list[Path]:
    return sorted(HERE.glob("bench_*.py"))


def main() -> int:
    extra = sys.argv[1:]
    status = 0
    for script in scripts():
        done = subprocess.run(
            [sys.executable, str(script), *extra], stdout=subprocess.PIPE, text=True, check=False
        )
        sys.stdout.write(done.stdout)
        sys.stdout.flush()
        if done.returncode != 0:
            print(f"{script.name} failed with status {done.returncode}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
