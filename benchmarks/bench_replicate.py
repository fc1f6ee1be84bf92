"""Replication over real libp2p on loopback, the replica in another OS process.

- ``replicate``: a fresh replica (child process, SQLite store, its own libp2p node)
  catches up on n feed entries from a writer (this process). Timed in the child from
  ``node.open(address)`` until ``wait_synced`` has returned and the feed view holds all
  n items: entries/s end to end (decode, verify, store, view, over Noise + Yamux).
- ``propagation``: writer and replica connected and idle; the writer ``put``s a key
  every 60 ms (longer than the 50 ms announcement coalescing, so each put is announced
  on its own); latency from the put to the replica's change notification. The put
  carries ``time.monotonic_ns()``: CLOCK_MONOTONIC is one clock for every process of a
  Linux machine.
- ``fanout``: one writer, five replicas in separate processes, writes at 100/s; every
  replica must receive every write; latency percentiles over all deliveries, and the
  CPU time per write of the writer and of the median replica (``fanout_*_cpu``: what
  the latency is made of on a busy machine, and much less noisy than it).

    python benchmarks/bench_replicate.py [--quick] [--sizes 10000,100000] [--replicate-only]
        [--threads 1,2]   # the replica's verify threads (default: picked from its cores)
    python benchmarks/bench_replicate.py --fanout-only [--quick]   # only the fan-out

``replicate_workers_cpu`` is the CPU of the replica's verification worker processes
(``replicate_replica_cpu`` is its own process only).

``BENCH_PROFILE=<dir>`` writes a cProfile of every replica process into ``<dir>``; run
the writer under ``python -m cProfile -o <file>`` to profile the sending side.

Every node is opened the production way: ``open_node(dir, config=NodeConfig(network=
Libp2pConfig(...)))``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from orbitstore.core.cid import Cid
from orbitstore.net.libp2p_config import Libp2pConfig
from orbitstore.node import NodeConfig, open_node
from orbitstore.node.feed import Feed
from orbitstore.node.keyvalue import KeyValue
from orbitstore.views.base import Lagged
from orbitstore.views.feed import add_op

CONFIG = NodeConfig(timestamps=False, network=Libp2pConfig())
DEADLINE = 600.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def emit(name: str, value: float, unit: str, n: int, **extra: Any) -> None:
    print(json.dumps({"name": name, "value": round(value, 2), "unit": unit, "n": n, **extra}))
    sys.stdout.flush()


# --- the replica (child process) --------------------------------------------------------


def worker_cpu(pid: int) -> float:
    """CPU seconds a verification worker process used (Linux /proc; 0 elsewhere). The
    workers start at the first large batch, so this is all catch-up work."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def child(args: argparse.Namespace) -> None:
    def say(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    network = Libp2pConfig(bootstrap_peers=(args.bootstrap,))
    config = NodeConfig(timestamps=False, network=network)
    if args.verify_threads:
        config = NodeConfig(timestamps=False, network=network, verify_threads=args.verify_threads)
    async with open_node(args.home, config=config) as node:
        cid = Cid.parse(args.address.rsplit("/", 1)[1])
        node.store.blocks.put(cid, bytes.fromhex(args.manifest))
        assert node.replication is not None
        transport = node.replication.transport
        if args.mode == "replicate":
            with trio.fail_after(DEADLINE):
                while not transport.connected_peers():
                    await trio.sleep(0.01)
            say({"ready": True})
            await trio.lowlevel.FdStream(sys.stdin.fileno()).receive_some()  # "go"
            start, cpu = time.perf_counter(), time.process_time()
            feed = await node.open(args.address, type="feed")
            assert isinstance(feed, Feed)
            with trio.fail_after(DEADLINE):
                async with feed.subscribe() as changes:
                    while len(feed) < args.expect:
                        await changes.__anext__()
                        while changes.receive_nowait() is not None:  # count once a batch
                            pass
                await feed.wait_synced(timeout=DEADLINE)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu
            live = getattr(getattr(feed, "verifier", None), "_live", ())  # none: older code
            workers = sum(worker_cpu(w.process.pid) for w in live)
            say(
                {
                    "seconds": elapsed,
                    "cpu_s": cpu,
                    "workers_cpu_s": workers,
                    "entries": len(feed),
                    "items": feed.count(),
                }
            )
            return
        db = await node.open(args.address, type=args.type)
        latencies: list[float] = []
        async with db.subscribe() as changes:
            with trio.fail_after(DEADLINE):
                await db.wait_synced(timeout=DEADLINE)
            while changes.receive_nowait() is not None:  # what the catch-up brought
                pass
            say({"ready": True})
            cpu = time.process_time()
            with trio.move_on_after(args.window):
                async for change in changes:
                    if isinstance(change, Lagged) or "warm" in change.value:
                        continue
                    now = time.monotonic_ns()
                    latencies.append((now - change.value["t"]) / 1e6)
                    if len(latencies) >= args.expect:
                        break
        say({"latencies": latencies, "cpu_s": time.process_time() - cpu})


# --- the writer (this process) ----------------------------------------------------------


class Child:
    def __init__(self, process: trio.Process) -> None:
        assert process.stdout is not None and process.stdin is not None
        self.process = process
        self._buffer = b""

    async def line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while b"\n" not in self._buffer:
            data = await self.process.stdout.receive_some()
            if not data:
                raise RuntimeError("the replica process exited")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        result: dict[str, Any] = json.loads(line)
        return result

    async def go(self) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(b"go\n")


async def spawn(tmp: Path, node: Any, db: Any, mode: str, **extra: Any) -> Child:
    manifest = node.store.blocks.get(db.cid)
    address = node.replication.transport.listen_addresses()[0]
    profile = os.environ.get("BENCH_PROFILE")  # a directory: cProfile every replica into it
    python = [sys.executable]
    if profile:
        python += ["-m", "cProfile", "-o", tempfile.mktemp(dir=profile, suffix=".prof")]
    command = [
        *python,
        __file__,
        "--child",
        "--home",
        tempfile.mkdtemp(dir=tmp),
        "--bootstrap",
        address,
        "--address",
        db.address,
        "--manifest",
        manifest.hex(),
        "--type",
        db.type,
        "--mode",
        mode,
    ]
    for key, value in extra.items():
        command += [f"--{key}", str(value)]
    process = await trio.lowlevel.open_process(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    return Child(process)


async def replicate(tmp: Path, n: int, threads: int = 0) -> None:
    async with open_node(tmp / f"writer-{n}-{threads}", config=CONFIG) as node:
        feed = await node.open("bench", type="feed", write=["*"])
        for start in range(0, n, 1000):
            await feed.append_many(add_op(i) for i in range(start, min(n, start + 1000)))
        extra = {"verify-threads": threads} if threads else {}
        replica = await spawn(tmp, node, feed, "replicate", expect=n, **extra)
        with trio.fail_after(DEADLINE):
            await replica.line()
            cpu = time.process_time()
            await replica.go()
            result = await replica.line()
            cpu = time.process_time() - cpu
            await replica.process.wait()
        assert result["entries"] == n, result
        emit(
            "replicate",
            n / result["seconds"],
            "entries/s",
            n,
            seconds=round(result["seconds"], 3),
            target=8000 if threads == 1 else 12000,
            threads=threads or "auto",
            load=round(os.getloadavg()[0], 2),
        )
        # CPU time per entry: much less noisy than wall time on a shared machine.
        emit(
            "replicate_replica_cpu",
            result["cpu_s"] / n * 1e6,
            "us/entry",
            n,
            threads=threads or "auto",
        )
        emit(
            "replicate_workers_cpu",
            result.get("workers_cpu_s", 0.0) / n * 1e6,
            "us/entry",
            n,
            threads=threads or "auto",
        )
        emit("replicate_writer_cpu", cpu / n * 1e6, "us/entry", n, threads=threads or "auto")


async def latencies_from(
    children: list[Child], cpu: list[float] | None = None
) -> list[list[float]]:
    """Each child's latencies; its CPU seconds while listening go into ``cpu``."""
    out: list[list[float]] = [[] for _ in children]

    async def collect(i: int, child: Child) -> None:
        line = await child.line()
        out[i] = line["latencies"]
        if cpu is not None:
            cpu.append(line["cpu_s"])

    async with trio.open_nursery() as nursery:
        for i, c in enumerate(children):
            nursery.start_soon(collect, i, c)
    return out


async def warm_up(write: Any, *key: str) -> None:
    """Writes for 2 s before measuring (the replicas ignore them): a new subscriber
    joins the gossip mesh at the next heartbeat (1 s); until then, announcements reach
    it only through anti-entropy."""
    for _ in range(20):
        await write(*key, {"warm": True, "t": 0})
        await trio.sleep(0.1)


async def propagation(tmp: Path, count: int) -> None:
    async with open_node(tmp / "writer-prop", config=CONFIG) as node:
        kv = await node.open("prop", type="keyvalue", write=["*"])
        assert isinstance(kv, KeyValue)
        await kv.put("warmup", {"t": time.monotonic_ns()})
        replica = await spawn(tmp, node, kv, "listen", expect=count, window=count * 0.06 + 60)
        with trio.fail_after(DEADLINE):
            await replica.line()
        await warm_up(kv.put, "w")
        for i in range(count):
            await kv.put(f"k{i % 10}", {"t": time.monotonic_ns()})
            await trio.sleep(0.06)
        with trio.fail_after(DEADLINE):
            (latencies,) = await latencies_from([replica])
            await replica.process.wait()
    extra = {"delivered": len(latencies), "sent": count}
    for q, target in ((0.5, 20), (0.99, 100)):
        value = percentile(latencies, q)
        emit(f"propagation_p{round(q * 100)}", value, "ms", count, **extra, target=target)


async def fanout(tmp: Path, readers: int, writes: int, rate: float) -> None:
    async with open_node(tmp / "writer-fanout", config=CONFIG) as node:
        feed = await node.open("fanout", type="feed", write=["*"])
        assert isinstance(feed, Feed)
        children = [
            await spawn(tmp, node, feed, "listen", expect=writes, window=writes / rate + 60)
            for _ in range(readers)
        ]
        with trio.fail_after(DEADLINE):
            for c in children:
                await c.line()
        await warm_up(feed.add)
        start = trio.current_time()
        writer_cpu = time.process_time()
        for i in range(writes):
            await feed.add({"t": time.monotonic_ns(), "i": i})
            await trio.sleep_until(start + (i + 1) / rate)
        writer_cpu = time.process_time() - writer_cpu
        reader_cpu: list[float] = []
        results = await latencies_from(children, reader_cpu)
        for c in children:
            await c.process.wait()
    everything = [x for r in results for x in r]
    delivered = min(len(r) for r in results)
    extra = {"readers": readers, "rate": rate, "delivered_min": delivered, "sent": writes}
    emit("fanout_delivered", 100 * delivered / writes, "%", writes, **extra)
    for q in (0.5, 0.99):
        emit(f"fanout_p{round(q * 100)}", percentile(everything, q), "ms", writes, **extra)
    emit("fanout_max", max(everything), "ms", writes, **extra)
    # CPU per write: what the latency is made of when the cores are busy (load-proof).
    emit("fanout_writer_cpu", writer_cpu / writes * 1000, "ms/write", writes, **extra)
    per_reader = sorted(reader_cpu)[len(reader_cpu) // 2] / writes * 1000
    emit("fanout_reader_cpu", per_reader, "ms/write", writes, **extra)


async def main(quick: bool, sizes: list[int] | None, only: str | None, threads: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if only != "fanout":
            for n in sizes or ([1000] if quick else [10_000, 100_000]):
                for t in threads:
                    await replicate(Path(tmp), n, t)
            if only == "replicate":
                return
            await propagation(Path(tmp), 20 if quick else 200)
        if quick:
            await fanout(Path(tmp), readers=2, writes=50, rate=100.0)
        else:
            await fanout(Path(tmp), readers=5, writes=1000, rate=100.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny workloads: a smoke run")
    parser.add_argument(
        "--sizes", help="comma-separated log sizes for the catch-up run (e.g. 10000,100000)"
    )
    parser.add_argument(
        "--replicate-only", action="store_true", help="only the catch-up run (no latencies)"
    )
    parser.add_argument("--fanout-only", action="store_true", help="only the fan-out run")
    parser.add_argument(
        "--threads",
        default="0",
        help="comma-separated verify threads of the replica for the catch-up run"
        " (0: the default, picked from the cores the process may use)",
    )
    parser.add_argument("--verify-threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("home", "bootstrap", "address", "manifest", "type", "mode"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--window", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        trio.run(child, args)
    else:
        sizes = [int(n) for n in args.sizes.split(",")] if args.sizes else None
        only = "replicate" if args.replicate_only else "fanout" if args.fanout_only else None
        threads = [int(t) for t in args.threads.split(",")]
        trio.run(main, args.quick, sizes, only, threads)
