"""Attachments: storing a file as UnixFS blocks, and fetching one lazily over libp2p.

- ``unixfs_build``: the DAG builder alone (chunk, hash, encode; no storage); MB/s.
- ``attach_sqlite``: ``db.attach(bytes)`` into a node's SQLite file (build, hash again
  on ``put_many``, commit); MB/s of file bytes, wall and CPU (``cpu_mb_s``).
- ``read_local``: reading the attachment back from the store (every block re-hashed);
  MB/s.
- ``lazy_fetch_libp2p``: a replica in this process reads an attachment that another
  process (a node with Bitswap on) holds, over libp2p on 127.0.0.1 (TCP, Noise, Yamux):
  wants, blocks verified by hash, stored; MB/s of file bytes, and ``cpu_mb_s``: file
  bytes per CPU second of both processes together (steadier than wall time on a
  shared machine). Each process has its own core on an idle 2-core machine.

Random bytes (incompressible); 256 KiB chunks, 174 links (kubo's layout).

Run: ``.venv/bin/python benchmarks/bench_attach.py [--quick]``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
from _common import emit, parse_args

from orbitstore.core.unixfs import build_file
from orbitstore.net.libp2p_config import BitswapConfig, Libp2pConfig
from orbitstore.node import open_node
from orbitstore.node.config import NodeConfig

MB = 1_000_000


def _timed(fn: object) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()  # type: ignore[operator]
    return time.perf_counter() - wall, time.process_time() - cpu


async def bench_local(size: int, reps: int) -> None:
    data = os.urandom(size)
    build = []
    for _ in range(reps):
        wall, _cpu = _timed(lambda: build_file(data))
        build.append(size / MB / wall)
    emit("unixfs_build", build, "MB/s", size)
    attach, attach_cpu, read = [], [], []
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as tmp:
            async with open_node(Path(tmp) / "node") as node:
                db = await node.open("files")
                wall, cpu = time.perf_counter(), time.process_time()
                cid = await db.attach(data)
                attach.append(size / MB / (time.perf_counter() - wall))
                attach_cpu.append(size / MB / (time.process_time() - cpu))
                wall = time.perf_counter()
                got = await db.read_attachment(cid)
                read.append(size / MB / (time.perf_counter() - wall))
                assert got == data
    emit("attach_sqlite", attach, "MB/s", size, cpu_mb_s=round(sorted(attach_cpu)[reps // 2], 1))
    emit("read_local", read, "MB/s", size)


async def serve(size: int) -> None:
    """The holder (a child process): attach ``size`` random bytes, print where, wait."""
    config = NodeConfig(network=Libp2pConfig(bitswap=BitswapConfig(enabled=True)))
    async with open_node(None, config=config) as node:
        db = await node.open("files")
        cid = await db.attach(os.urandom(size))
        assert node.replication is not None
        address = node.replication.transport.listen_addresses()[0]
        print(json.dumps({"address": address, "cid": str(cid)}), flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)  # until the parent closes it


def _child_cpu(pid: int) -> float:
    """CPU seconds (user + system) a child process used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench_fetch(size: int, reps: int) -> None:
    runs, cpu_runs = [], []
    for _ in range(reps):
        holder = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(size)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert holder.stdout is not None and holder.stdin is not None
            ready = json.loads(await trio.to_thread.run_sync(holder.stdout.readline))
            config = NodeConfig(network=Libp2pConfig())
            async with open_node(None, config=config) as node:
                assert node.replication is not None
                await node.replication.connect(ready["address"])
                wall, cpu, child = time.perf_counter(), time.process_time(), _child_cpu(holder.pid)
                data = await node.attachments.read(ready["cid"])
                runs.append(size / MB / (time.perf_counter() - wall))
                used = time.process_time() - cpu + _child_cpu(holder.pid) - child
                cpu_runs.append(size / MB / used)
                assert len(data) == size
        finally:
            if holder.stdin is not None:
                holder.stdin.close()
            holder.wait(timeout=30)
    # cpu_mb_s: file bytes per CPU second of both processes together (the machine is
    # shared and loaded: wall time is noisy, CPU time much less so).
    cpu = sorted(cpu_runs)[len(cpu_runs) // 2]
    emit("lazy_fetch_libp2p", runs, "MB/s", size, processes=2, cpu_mb_s=round(cpu, 1))


async def main() -> None:
    args = parse_args(__doc__ or "")
    size = 4 * 1024 * 1024 if args.quick else 64 * 1024 * 1024
    reps = 1 if args.quick else 3
    await bench_local(size, reps)
    await bench_fetch(size, reps)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        trio.run(serve, int(sys.argv[2]))
    else:
        trio.run(main)
