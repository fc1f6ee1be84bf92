"""Command-line benchmarks: what one ``orbitstore`` command costs, end to end.

    python benchmarks/bench_cli.py [--quick]

Each command runs as a fresh ``python -m orbitstore`` process, as a user or a shell
script would run it, so the times include interpreter start-up, imports, opening the
node (SQLite file, keystore) and the database.

- ``cli_help``: ``orbitstore --help`` (start-up and imports only).
- ``cli_kv_put`` / ``cli_kv_get``: one put (a signed, committed entry) / one get.
- ``cli_kv_get_in_process``: the same get through ``orbitstore.cli.main`` in this process,
  imports already done: what the command itself costs (parser, node, database, output).
- ``cli_query``: ``orbitstore query`` with a filtered count over a keyvalue of ``n`` keys.
- ``cli_kv_ls``: rows per second printed by ``orbitstore kv ls`` over ``n`` keys (output
  to /dev/null), start-up included.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
from _common import emit, machine, parse_args

import orbitstore
from orbitstore.cli import main as cli_main
from orbitstore.node.keyvalue import KeyValue


def run(home: Path, *args: str) -> float:
    """Wall time of one command, in milliseconds; fails loudly if the command fails."""
    env = {**os.environ, "ORBITSTORE_HOME": str(home)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "orbitstore", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        check=False,
    )
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise SystemExit(f"orbitstore {' '.join(args)} failed: {done.stderr}")
    return elapsed


def in_process(home: Path) -> float:
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        status = cli_main(["--home", str(home), "kv", "get", "small", "k0"])
    elapsed = (time.perf_counter() - started) * 1000
    if status != 0 or out.getvalue() != "0\n":
        raise SystemExit(f"kv get in process: status {status}, printed {out.getvalue()!r}")
    return elapsed


async def fill(home: Path, n: int) -> None:
    async with orbitstore.open_node(home) as node:
        kv = await node.open("big", type="keyvalue")
        assert isinstance(kv, KeyValue)
        for base in range(0, n, 1000):
            await kv.put_many(
                {
                    f"k{i:08d}": {"i": i, "even": i % 2 == 0}
                    for i in range(base, min(n, base + 1000))
                }
            )


def main() -> None:
    args = parse_args(__doc__ or "")
    reps = 3 if args.quick else 7
    n = 2_000 if args.quick else 100_000
    extra = machine()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "node"
        emit("cli_help", [run(home, "--help") for _ in range(reps)], "ms", 1, **extra)
        run(home, "kv", "put", "small", "k0", "0")  # creates the node and the database
        puts = [run(home, "kv", "put", "small", f"k{i}", str(i)) for i in range(reps)]
        emit("cli_kv_put", puts, "ms", 1, **extra)
        gets = [run(home, "kv", "get", "small", "k0") for _ in range(reps)]
        emit("cli_kv_get", gets, "ms", 1, **extra)
        emit("cli_kv_get_in_process", [in_process(home) for _ in range(reps)], "ms", 1, **extra)
        trio.run(fill, home, n)
        sql = "SELECT count(*) FROM big WHERE value.even = true"
        emit("cli_query", [run(home, "query", sql) for _ in range(reps)], "ms", n, **extra)
        ls = [n / (run(home, "kv", "ls", "big") / 1000) for _ in range(reps)]
        emit("cli_kv_ls", ls, "rows/s", n, **extra)


if __name__ == "__main__":
    main()
