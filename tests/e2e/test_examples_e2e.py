"""The web examples in Chromium: examples/collab_editor's two nodes edited from two
pages, and examples/app_backend's notes app on two nodes."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import open_console
from tests.e2e.harness import DEADLINE, NodeProcess

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@contextmanager
def example(*command: str, lines: int) -> Iterator[list[str]]:
    """Run an example script; yield the first ``lines`` lines it prints; SIGINT at exit."""
    process = subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield [process.stdout.readline().strip() for _ in range(lines)]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_collab_editor_two_pages_on_its_two_nodes_edit_one_document(browser: Browser) -> None:
    script = str(EXAMPLES / "collab_editor" / "two_nodes.py")
    with example(script, "--port-a", "0", "--port-b", "0", lines=2) as printed:
        urls = [line.split(": ", 1)[1] for line in printed]
        pages = [open_console(browser, url) for url in urls]
        for page in pages:
            expect(page.locator("#notes-status")).to_have_text("connected")
        pages[0].locator("#notes-text").press_sequentially("one ")
        # Page B types once A's words reached it: this test is about the example's two
        # nodes; typing while the other's characters arrive is tests/e2e/
        # test_console_two_nodes.py's (it can still interleave under load: see CHANGELOG).
        expect(pages[1].locator("#notes-text")).to_have_value("one ")
        pages[1].locator("#notes-text").press("End")
        pages[1].locator("#notes-text").press_sequentially("two ")
        for page in pages:
            expect(page.locator("#notes-text")).to_have_value(_both("one ", "two "))
        values = [page.locator("#notes-text").input_value() for page in pages]
        assert values[0] == values[1]


def _both(first: str, second: str):  # type: ignore[no-untyped-def]
    import re

    return re.compile(f"^(?=.*{re.escape(first)})(?=.*{re.escape(second)}).*$", re.S)


def note(page: Page, text: str):  # type: ignore[no-untyped-def]
    return page.locator("#notes li", has_text=text)


def test_app_backend_notes_replicate_between_two_nodes(
    browser: Browser, nodes: list[NodeProcess]
) -> None:
    serve = str(EXAMPLES / "app_backend" / "serve.py")
    api_a, api_b = (n.url.rstrip("/") for n in nodes)
    with (
        example(serve, "--api", api_a, "--port", "0", lines=1) as (line_a,),
        example(serve, "--api", api_b, "--port", "0", lines=1) as (line_b,),
    ):
        a, b = (open_console(browser, line.split()[2]) for line in (line_a, line_b))
        for page, text in ((a, "written on A"), (b, "written on B")):
            page.locator("#text").fill(text)
            page.locator("#add button").click()
        for page in (a, b):
            expect(note(page, "written on A")).to_have_count(1)
            expect(note(page, "written on B")).to_have_count(1)
        note(b, "written on A").get_by_role("button", name="delete").click()
        expect(note(a, "written on A")).to_have_count(0)
        expect(note(a, "written on B")).to_have_count(1)
        assert a.errors == b.errors == []  # type: ignore[attr-defined]
