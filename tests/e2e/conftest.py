"""Fixtures of the browser tests: one Chromium per session, two ``orbitstore run``
nodes per test (joined over libp2p on 127.0.0.1), a page on each node's console.

Not collected by ``make test`` (``norecursedirs`` in pyproject.toml); ``make test-e2e``
installs Chromium and Playwright and runs ``pytest tests/e2e``. A missing browser is a
failure here, never a skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.e2e.harness import NodeProcess, check_chromium, launch_chromium

# Every DOM wait's deadline (Playwright's expect defaults to 5 s: too short for two nodes
# and a browser on a loaded 2-core machine).
expect.set_options(timeout=30_000)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    check_chromium()
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = launch_chromium(playwright)
    yield browser
    browser.close()


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    """Node A, and node B joined to it (``make run`` twice)."""
    started: list[NodeProcess] = []
    try:
        started.append(NodeProcess(tmp_path / "a"))
        started.append(NodeProcess(tmp_path / "b", join=tmp_path / "a"))
        yield started
    finally:
        for node in started:
            node.stop()


def open_console(browser: Browser, url: str) -> Page:
    """A page on ``url`` in its own browser context (its own storage), errors collected."""
    page = browser.new_context().new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.errors = errors  # type: ignore[attr-defined]
    return page
