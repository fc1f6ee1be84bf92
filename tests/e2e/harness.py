"""Two real orbitstore nodes and a real Chromium, for the browser tests and the
editor-latency benchmark.

:class:`NodeProcess` runs ``orbitstore run`` (the ``make run`` job: demo databases, the
web console, libp2p on 127.0.0.1) in its own process and reads its ``--json`` event
lines; :func:`launch_chromium` starts Debian's Chromium (``/usr/bin/chromium``) through
the Python ``playwright`` package without ``playwright install``: Playwright's driver
ships inside its wheel, the browser is the system one. ``make test-e2e`` installs both.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

CHROMIUM = os.environ.get("ORBITSTORE_CHROMIUM", "/usr/bin/chromium")
# What works headless as root on a machine without a GPU or network: no sandbox (root),
# no QUIC, nothing that calls home. Playwright gives every launch a fresh profile
# (its own --user-data-dir in a temporary directory).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEADLINE = 60.0


class ChromiumMissingError(RuntimeError):
    """Chromium or Playwright is not installed (``make test-e2e`` installs both)."""


def check_chromium() -> str:
    """The Chromium executable; ChromiumMissingError saying what to install otherwise."""
    path = CHROMIUM if os.path.isabs(CHROMIUM) else shutil.which(CHROMIUM)
    if not path or not os.access(path, os.X_OK):
        raise ChromiumMissingError(
            f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y"
            " chromium), or run `make test-e2e`, which does; ORBITSTORE_CHROMIUM names"
            " another executable"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        raise ChromiumMissingError(
            "the Python package playwright is not installed: run `make test-e2e`"
            " (pip install -e '.[e2e]'); no `playwright install` is needed"
        ) from exc
    return path


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=check_chromium(), headless=True, args=CHROMIUM_ARGS
    )


class NodeProcess:
    """``orbitstore --home HOME --json run`` with the API on 127.0.0.1, no mDNS."""

    def __init__(
        self,
        home: Path,
        *,
        api_port: int = 0,
        join: Path | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        command = [sys.executable, "-m", "orbitstore", "--home", str(home), "--json", "run"]
        command += ["--api", f"127.0.0.1:{api_port}", "--listen", "/ip4/127.0.0.1/tcp/0"]
        command += ["--no-mdns", "--status-interval", "3600", *extra]
        if join is not None:
            command += ["--join", str(join)]
        self.home = home
        #: The node's log (stderr), beside its directory.
        self.log = home.with_name(home.name + ".log")
        with self.log.open("a") as log:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._seen: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        ready = self.event("ready")
        self.peer_id: str = ready["peer_id"]
        self.addresses: list[str] = ready["addresses"]
        (self.url,) = self.event("console")["urls"]
        self.api_port = int(self.url.rsplit(":", 1)[1].strip("/"))

    @property
    def dial_address(self) -> str:
        """A ``/ip4/127.0.0.1/tcp/<port>/p2p/<peer id>`` address of this node."""
        return self.addresses[0]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self._events.put(json.loads(line))
        self._events.put(None)

    def event(self, name: str, timeout: float = DEADLINE) -> dict[str, Any]:
        """The next event ``name`` (earlier ones of other names are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                event = self._events.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise TimeoutError(f"no {name!r} event from {self.home} in {timeout} s") from None
            if event is None:
                raise RuntimeError(f"orbitstore run in {self.home} exited ({self.process.wait()})")
            if event.get("event") == name:
                return event

    def stop(self) -> None:
        """SIGINT, as Ctrl-C; killed if it does not stop within the deadline."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=DEADLINE)
        if self.process.stdout is not None:
            self.process.stdout.close()
