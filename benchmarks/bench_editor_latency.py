"""editor_latency: a keystroke in browser A until it is visible in browser B, through
two orbitstore nodes.

Two ``orbitstore run`` processes (node B joined to node A over libp2p on 127.0.0.1), a
headless Chromium (Debian's ``/usr/bin/chromium`` through the Python ``playwright``
package) with the web console of node A in one page and of node B in another. Each
round presses one key in A's editor and waits until B's editor shows it; the next key
is pressed only then (a fast typist, no overlap). The path of a keystroke: Yjs update
in page A -> y-websocket -> node A appends a signed entry -> gossip announcement with the
entry inline -> node B verifies and applies it -> y-websocket -> page B's textarea.

Two cadences: ``typing`` presses a key every 100 ms (a fast typist, 10 keys/s; a key
whose predecessor has not shown yet waits for it), ``burst`` presses the next key as
soon as the previous one shows (about 20 keys/s here): keys then fall within the
node's announcement coalescing interval (``ReplicationConfig.announce_interval``,
50 ms), and some wait for it.

Both timestamps are taken inside the pages (``performance.timeOrigin + now()``, one
clock for every page of the machine): at A's ``keydown`` and at B's ``remote-change``
event (fired by the console once the remote edit is in the textarea), so Playwright's
own round trips are not counted. Prints p50, p99 and max in ms per cadence
(``editor_latency_p50`` is the typing cadence; target: p50 < 50 ms on loopback).

Run: ``.venv/bin/python benchmarks/bench_editor_latency.py [--quick]`` after ``make
test-e2e`` has installed Chromium and Playwright. Without them it says so and exits 1.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _common import machine, parse_args  # noqa: E402

from tests.e2e.harness import ChromiumMissingError, NodeProcess, check_chromium  # noqa: E402

WARMUP = 5
TYPING_INTERVAL = 0.1
DEADLINE_MS = 30_000

RECORD_KEYS = """() => {
  window.__keys = [];
  document.getElementById("notes-text").addEventListener("keydown",
    () => window.__keys.push(performance.timeOrigin + performance.now()));
}"""
RECORD_ARRIVALS = """() => {
  window.__arrivals = [];
  const area = document.getElementById("notes-text");
  area.addEventListener("remote-change",
    () => window.__arrivals.push([performance.timeOrigin + performance.now(), area.value.length]));
}"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "")
    try:
        check_chromium()
    except ChromiumMissingError as exc:
        print(f"bench_editor_latency: cannot run: {exc}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    from tests.e2e.harness import launch_chromium

    keys = 20 if args.quick else 300
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        home = Path(tmp)
        nodes = [NodeProcess(home / "a")]
        try:
            nodes.append(NodeProcess(home / "b", join=home / "a"))
            browser = launch_chromium(playwright)
            pages = [browser.new_context().new_page() for _ in nodes]
            for page, node in zip(pages, nodes, strict=True):
                page.set_default_timeout(DEADLINE_MS)
                page.goto(node.url)
                page.wait_for_function(
                    "() => document.getElementById('notes-status').textContent === 'connected'"
                )
            a, b = pages
            a.evaluate(RECORD_KEYS)
            b.evaluate(RECORD_ARRIVALS)
            area = a.locator("#notes-text")
            area.focus()
            results = {}
            typed = 0
            for cadence, interval in (("", TYPING_INTERVAL), ("_burst", 0.0)):
                first = typed + WARMUP
                start = time.monotonic()
                for i in range(WARMUP + keys):
                    # The typist's pace (a workload rate, not a wait for replication).
                    time.sleep(max(0.0, start + i * interval - time.monotonic()))
                    area.press("abcdefghijklmnopqrstuvwxyz"[typed % 26])
                    typed += 1
                    b.wait_for_function(
                        "(n) => document.getElementById('notes-text').value.length >= n",
                        arg=typed,
                    )
                results[cadence] = (first, typed)
            pressed: list[float] = a.evaluate("() => window.__keys")
            arrivals: list[list[float]] = b.evaluate("() => window.__arrivals")
            browser.close()
        finally:
            for node in nodes:
                node.stop()
    # The first arrival at which B's text had i + 1 characters shows keystroke i.
    seen: dict[int, float] = {}
    for when, length in arrivals:
        for i in range(int(length)):
            seen.setdefault(i, when)
    extra = {"machine": machine(), "path": "chromium A -> node A -> gossip -> node B -> chromium B"}
    for cadence, (first, last) in results.items():
        latencies = [seen[i] - pressed[i] for i in range(first, last)]
        rate = {"keys_per_s": 1 / TYPING_INTERVAL} if not cadence else {"keys_per_s": "max"}
        for name, value in (
            (f"editor_latency{cadence}_p50", statistics.median(latencies)),
            (f"editor_latency{cadence}_p99", percentile(latencies, 0.99)),
            (f"editor_latency{cadence}_max", max(latencies)),
        ):
            print_line(name, value, keys, {**extra, **rate})
    return 0


def print_line(name: str, value: float, n: int, extra: dict[str, object]) -> None:
    import json

    line = {"name": name, "value": round(value, 2), "unit": "ms", "n": n, **extra}
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    sys.exit(main())
