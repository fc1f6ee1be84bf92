"""Two orbitstore nodes for the collaborative editor: open one URL per browser.

Starts two ``orbitstore run`` nodes on this machine (the ``make run`` job: the demo
databases, the web console, libp2p on 127.0.0.1; node B joins node A), prints the two
console URLs, and keeps both running until Ctrl-C. Type in the Notes panel of one
browser and the text appears in the other, through both nodes: browser A -> node A
(y-websocket) -> gossip -> node B -> browser B. Each editor also lists who else is
editing, on either node (awareness over gossip, never stored).

Run from the project's root (after ``make run`` or ``make test`` made ``.venv``)::

    .venv/bin/python examples/collab_editor/two_nodes.py            # or: make collab-editor

``--dir DIR`` keeps the two node directories in DIR (default: a temporary directory,
removed on exit); ``--port-a``/``--port-b`` pick the API ports (default 4402 and 4412,
as ``make run``); ``--once`` starts both, checks that both consoles answer, prints the
URLs and stops (what tests/test_examples_web.py runs).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

START_TIMEOUT = 60.0


def start(home: Path, port: int, join: Path | None) -> tuple[subprocess.Popen[str], str]:
    """``orbitstore run`` in ``home``; its process and console URL (read from --json)."""
    command = [sys.executable, "-m", "orbitstore", "--home", str(home), "--json", "run"]
    command += ["--api", f"127.0.0.1:{port}", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"]
    command += ["--status-interval", "3600"]
    if join is not None:
        command += ["--join", str(join)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        event: dict[str, Any] = json.loads(line) if line.startswith("{") else {}
        if event.get("event") == "console":
            return process, str(event["urls"][0])
    raise SystemExit(f"the node in {home} stopped before it served its console ({process.wait()})")


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, default=None, help="where the node directories go")
    parser.add_argument("--port-a", type=int, default=4402, help="node A's API/console port")
    parser.add_argument("--port-b", type=int, default=4412, help="node B's API/console port")
    parser.add_argument("--once", action="store_true", help="start, check, print, stop")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="collab-editor-") as tmp:
        base = args.dir if args.dir is not None else Path(tmp)
        processes = []
        try:
            a, url_a = start(base / "node-a", args.port_a, None)
            processes.append(a)
            b, url_b = start(base / "node-b", args.port_b, base / "node-a")
            processes.append(b)
            for url in (url_a, url_b):
                with urllib.request.urlopen(url, timeout=START_TIMEOUT) as page:
                    assert page.status == 200
            print(f"browser A: {url_a}\nbrowser B: {url_b}", flush=True)
            if not args.once:
                print("type in the Notes panel of either; Ctrl-C stops both nodes", flush=True)
                stopping = {signal.SIGINT, signal.SIGTERM}
                signal.pthread_sigmask(signal.SIG_BLOCK, stopping)  # after the nodes started
                signal.sigwait(stopping)
        except KeyboardInterrupt:
            pass
        finally:
            for process in reversed(processes):
                stop(process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
