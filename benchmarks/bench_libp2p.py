"""Benchmarks of the py-libp2p transport between two hosts on 127.0.0.1 (one process).

Prints one JSON object per line: ``{"name", "value", "unit", "n", ...}``.

    python benchmarks/bench_libp2p.py            # full run (~1 minute)
    python benchmarks/bench_libp2p.py --quick    # smoke run (a few seconds)

Both hosts share one trio event loop and one CPU core, so every figure includes the work
of both ends; two processes on an idle 2-core machine do better.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import sys
import time
from typing import Any

import trio

from orbitstore.net.libp2p_config import Libp2pConfig
from orbitstore.net.libp2p_transport import Libp2pTransport, open_libp2p_transport
from orbitstore.net.transport import Stream


def emit(name: str, value: float, unit: str, n: int, **extra: Any) -> None:
    row = {"name": name, "value": round(value, 4), "unit": unit, "n": n, **extra}
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


async def server(stream: Stream) -> None:
    mode = await read_exactly(stream, 1)
    if mode == b"E":  # echo 64-byte messages
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


async def bench_rtt(a: Libp2pTransport, b: Libp2pTransport, n: int) -> None:
    stream = await a.open_stream(b.peer_id)
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


async def bench_bulk(a: Libp2pTransport, b: Libp2pTransport, megabytes: int) -> None:
    stream = await a.open_stream(b.peer_id)
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


async def bench_gossip(a: Libp2pTransport, b: Libp2pTransport, n: int, rate: float) -> None:
    topic = "bench"
    latencies: list[float] = []
    changed = trio.Event()

    async def on_message(_peer: str, data: bytes) -> None:
        nonlocal changed
        (sent,) = struct.unpack(">d", data[8:16])
        if data.startswith(b"measure:"):
            latencies.append((time.perf_counter() - sent) * 1000)
        changed.set()
        changed = trio.Event()

    await b.subscribe(topic, on_message)
    await a.subscribe(topic, on_message)
    warmup = 0
    with trio.fail_after(30):  # wait for the mesh: one message gets through
        while True:
            warmup += 1
            await a.publish(topic, b"warmup::" + struct.pack(">dq", time.perf_counter(), warmup))
            with trio.move_on_after(0.25):
                await changed.wait()
                break
    interval = 1.0 / rate
    start = trio.current_time()  # trio's clock, not perf_counter: they differ by an offset
    for i in range(n):
        await trio.sleep_until(start + i * interval)
        await a.publish(topic, b"measure:" + struct.pack(">dq", time.perf_counter(), i) + b"p" * 64)
    with trio.move_on_after(10):
        while len(latencies) < n:
            await changed.wait()
    emit("libp2p_gossip_latency_p50", statistics.median(latencies), "ms", n, rate_per_s=rate)
    emit("libp2p_gossip_latency_p99", percentile(latencies, 0.99), "ms", n, rate_per_s=rate)
    emit("libp2p_gossip_delivered", len(latencies) / n * 100, "%", n, rate_per_s=rate)

    burst = n
    received_before = len(latencies)
    start = time.perf_counter()
    for i in range(burst):
        await a.publish(topic, b"measure:" + struct.pack(">dq", time.perf_counter(), i) + b"q" * 64)
    with trio.move_on_after(30):
        while len(latencies) < received_before + burst:
            await changed.wait()
    elapsed = time.perf_counter() - start
    got = len(latencies) - received_before
    emit("libp2p_gossip_burst_throughput", got / elapsed, "msg/s", burst, delivered=got)


async def main(quick: bool) -> None:
    config = Libp2pConfig()
    t0 = time.perf_counter()
    async with (
        open_libp2p_transport(config, key_path=None) as a,
        open_libp2p_transport(config, key_path=None) as b,
    ):
        emit("libp2p_start_two_hosts", (time.perf_counter() - t0) * 1000, "ms", 2)
        b.set_stream_handler(server)
        start = time.perf_counter()
        await a.connect(b.listen_addresses()[0])
        emit("libp2p_connect", (time.perf_counter() - start) * 1000, "ms", 1)
        await bench_rtt(a, b, 200 if quick else 2000)
        await bench_bulk(a, b, 16 if quick else 200)
        await bench_gossip(a, b, 100 if quick else 1000, rate=100.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    args = parser.parse_args()
    trio.run(main, args.quick)
    sys.exit(0)
