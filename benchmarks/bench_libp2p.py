"""Benchmarks of the py-libp2p transport between two hosts on 127.0.0.1.

Prints one JSON object per line: ``{"name", "value", "unit", "n", "mode", ...}``.

    python benchmarks/bench_libp2p.py                # both hosts in one process (~30 s)
    python benchmarks/bench_libp2p.py --processes    # the other host in a child process
    python benchmarks/bench_libp2p.py --quick        # smoke run (a few seconds)

In one process both hosts share one trio event loop and one CPU core, so every figure
includes the work of both ends. With ``--processes`` the server (echo, sink, and a gossip
publisher that stamps each message with the shared monotonic clock) runs in a child.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from orbitstore.net.libp2p_config import Libp2pConfig
from orbitstore.net.libp2p_transport import Libp2pTransport, open_libp2p_transport
from orbitstore.net.transport import Stream

MODE = {"mode": "one-process"}
TOPIC = "bench"


def emit(name: str, value: float, unit: str, n: int, **extra: Any) -> None:
    row = {"name": name, "value": round(value, 4), "unit": unit, "n": n, **MODE, **extra}
    print(json.dumps(row), flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def read_exactly(stream: Stream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.receive_some(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def stamped(tag: bytes, i: int, padding: int = 64) -> bytes:
    """A gossip payload: 8-byte tag, send time (CLOCK_MONOTONIC, shared by processes)."""
    return tag.ljust(8, b":") + struct.pack(">dq", time.perf_counter(), i) + b"p" * padding


def make_server(transport: Libp2pTransport) -> Any:
    async def handler(stream: Stream) -> None:
        await server(stream, transport)

    return handler


async def server(stream: Stream, transport: Libp2pTransport | None = None) -> None:
    mode = await read_exactly(stream, 1)
    if mode == b"G" and transport is not None:  # publish n gossip messages at a rate
        n, rate = struct.unpack(">Id", await read_exactly(stream, 12))
        start = trio.current_time()
        for i in range(n):
            await trio.sleep_until(start + i / rate)
            await transport.publish(TOPIC, stamped(b"measure", i))
        await stream.send_all(b"D")
    elif mode == b"E":  # echo 64-byte messages
        while True:
            try:
                msg = await read_exactly(stream, 64)
            except EOFError:
                break
            await stream.send_all(msg)
    else:  # sink: count bytes until EOF, reply with the count
        total = 0
        while chunk := await stream.receive_some(1 << 20):
            total += len(chunk)
        await stream.send_all(struct.pack(">Q", total))
    await stream.close()


async def bench_rtt(a: Libp2pTransport, peer: str, n: int) -> None:
    stream = await a.open_stream(peer)
    await stream.send_all(b"E")
    message = b"x" * 64
    for _ in range(20):  # warm up
        await stream.send_all(message)
        await read_exactly(stream, 64)
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await stream.send_all(message)
        await read_exactly(stream, 64)
        samples.append((time.perf_counter() - start) * 1000)
    await stream.close()
    emit("libp2p_stream_rtt_64b_p50", statistics.median(samples), "ms", n)
    emit("libp2p_stream_rtt_64b_p99", percentile(samples, 0.99), "ms", n)


async def bench_bulk(a: Libp2pTransport, peer: str, megabytes: int) -> None:
    stream = await a.open_stream(peer)
    await stream.send_all(b"S")
    block = b"b" * (1 << 20)
    start = time.perf_counter()
    for _ in range(megabytes):
        await stream.send_all(block)
    await stream.close()
    (total,) = struct.unpack(">Q", await read_exactly(stream, 8))
    elapsed = time.perf_counter() - start
    assert total == megabytes << 20, total
    emit("libp2p_stream_bulk_throughput", megabytes / elapsed, "MiB/s", megabytes, unit_n="MiB")


class Receiver:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.count = 0
        self.changed = trio.Event()

    async def on_message(self, _peer: str, data: bytes) -> None:
        (sent,) = struct.unpack(">d", data[8:16])
        if data.startswith(b"measure:"):
            self.latencies.append((time.perf_counter() - sent) * 1000)
        self.count += 1
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, n: int, timeout: float) -> None:
        with trio.move_on_after(timeout):
            while len(self.latencies) < n:
                await self.changed.wait()


async def bench_gossip(a: Libp2pTransport, b: Libp2pTransport, n: int, rate: float) -> None:
    """``a`` publishes (here), ``b`` receives."""
    receiver = Receiver()
    await b.subscribe(TOPIC, receiver.on_message)
    await a.subscribe(TOPIC, receiver.on_message)
    with trio.fail_after(30):  # wait for the mesh: one message gets through
        warmup = 0
        while not receiver.count:
            warmup += 1
            await a.publish(TOPIC, stamped(b"warmup", warmup))
            with trio.move_on_after(0.25):
                await receiver.changed.wait()
    start = trio.current_time()  # trio's clock, not perf_counter: they differ by an offset
    for i in range(n):
        await trio.sleep_until(start + i / rate)
        await a.publish(TOPIC, stamped(b"measure", i))
    await receiver.wait_for(n, 10)
    report_gossip(receiver.latencies, n, rate)

    receiver.latencies.clear()
    start_burst = time.perf_counter()
    for i in range(n):
        await a.publish(TOPIC, stamped(b"measure", n + i))
    await receiver.wait_for(n, 30)
    got = len(receiver.latencies)
    elapsed = time.perf_counter() - start_burst
    emit("libp2p_gossip_burst_throughput", got / elapsed, "msg/s", n, delivered=got)


async def bench_gossip_remote(a: Libp2pTransport, peer: str, n: int, rate: float) -> None:
    """The child process publishes, we (``a``) receive."""
    receiver = Receiver()
    await a.subscribe(TOPIC, receiver.on_message)

    async def ask(count: int, per_second: float) -> None:
        stream = await a.open_stream(peer)
        await stream.send_all(b"G" + struct.pack(">Id", count, per_second))
        await read_exactly(stream, 1)
        await stream.close()

    with trio.fail_after(30):
        while not receiver.count:
            await ask(1, 1000.0)
            with trio.move_on_after(0.25):
                await receiver.changed.wait()
    receiver.latencies.clear()
    await ask(n, rate)
    await receiver.wait_for(n, 10)
    report_gossip(receiver.latencies, n, rate)


def report_gossip(latencies: list[float], n: int, rate: float) -> None:
    emit("libp2p_gossip_latency_p50", statistics.median(latencies), "ms", n, rate_per_s=rate)
    emit("libp2p_gossip_latency_p99", percentile(latencies, 0.99), "ms", n, rate_per_s=rate)
    emit("libp2p_gossip_delivered", len(latencies) / n * 100, "%", n, rate_per_s=rate)


@asynccontextmanager
async def child_server() -> AsyncIterator[str]:
    """Run ``--serve`` in a child process; yields its address."""
    command = [sys.executable, __file__, "--serve"]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    assert process.stdout is not None
    buffer = b""
    try:
        with trio.fail_after(60):
            while b"\n" not in buffer:
                chunk = await process.stdout.receive_some()
                if not chunk:
                    raise RuntimeError("the server process exited")
                buffer += chunk
        yield buffer.split(b"\n", 1)[0].decode().removeprefix("ADDR ")
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
            await process.stdout.aclose()


async def serve() -> None:
    async with open_libp2p_transport(Libp2pConfig(), key_path=None) as transport:
        transport.set_stream_handler(make_server(transport))
        print("ADDR " + transport.listen_addresses()[0], flush=True)
        await trio.sleep_forever()


async def main(quick: bool, processes: bool) -> None:
    rtt_n, bulk_mib, gossip_n = (200, 16, 100) if quick else (2000, 200, 1000)
    rate = 100.0
    config = Libp2pConfig()
    if processes:
        MODE["mode"] = "two-processes"
        async with child_server() as address, open_libp2p_transport(config, key_path=None) as a:
            peer = address.rsplit("/p2p/", 1)[1]
            start = time.perf_counter()
            await a.connect(address)
            emit("libp2p_connect", (time.perf_counter() - start) * 1000, "ms", 1)
            await bench_rtt(a, peer, rtt_n)
            await bench_bulk(a, peer, bulk_mib)
            await bench_gossip_remote(a, peer, gossip_n, rate)
        return
    t0 = time.perf_counter()
    async with (
        open_libp2p_transport(config, key_path=None) as a,
        open_libp2p_transport(config, key_path=None) as b,
    ):
        emit("libp2p_start_two_hosts", (time.perf_counter() - t0) * 1000, "ms", 2)
        b.set_stream_handler(make_server(b))
        start = time.perf_counter()
        await a.connect(b.listen_addresses()[0])
        emit("libp2p_connect", (time.perf_counter() - start) * 1000, "ms", 1)
        await bench_rtt(a, b.peer_id, rtt_n)
        await bench_bulk(a, b.peer_id, bulk_mib)
        await bench_gossip(a, b, gossip_n, rate)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--processes", action="store_true", help="the server in a child")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        trio.run(serve)
    else:
        trio.run(main, args.quick, args.processes)
    sys.exit(0)
