"""The web console in a real Chromium, one page on each of two real nodes (separate
``orbitstore run`` processes replicating over libp2p on 127.0.0.1).

Every wait is on a DOM condition with Playwright's deadline (30 s), never a sleep.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import open_console
from tests.e2e.harness import NodeProcess

pytestmark = pytest.mark.e2e


def editor_connected(page: Page) -> None:
    expect(page.locator("#notes-status")).to_have_text("connected")


def test_two_browsers_on_two_nodes_edit_one_document(
    browser: Browser, nodes: list[NodeProcess]
) -> None:
    a, b = (open_console(browser, n.url) for n in nodes)
    editor_connected(a)
    editor_connected(b)
    a.locator("#notes-text").press_sequentially("alpha from A. ")
    b.locator("#notes-text").press_sequentially("beta from B. ")
    # Both editors live in different pages: wait on each for both texts in full (with
    # their last key, the trailing space: a page that has every key but the other's last
    # one is not done yet), then compare them.
    for page in (a, b):
        page.wait_for_function(
            """() => {
              const v = document.getElementById("notes-text").value;
              return v.includes("alpha from A. ") && v.includes("beta from B. ");
            }"""
        )
    text_a, text_b = a.locator("#notes-text").input_value(), b.locator("#notes-text").input_value()
    assert text_a == text_b
    assert sorted(text_a.split(". ")) == sorted(["alpha from A", "beta from B", ""])
    assert a.errors == b.errors == []  # type: ignore[attr-defined]


# Both words are full of the letter the other one starts with: whichever run of text
# comes first in the document, its typist types right before the other's run, the same
# letter as the one after the caret, while that run grows (the race of issue #10).
WORD_A = "tatta "
WORD_B = "tutti "
KEY_HELD_MS = 30
ROUNDS = 6


def test_typing_at_the_same_time_on_two_nodes_keeps_both_texts_intact(
    browser: Browser, nodes: list[NodeProcess]
) -> None:
    a, b = (open_console(browser, n.url) for n in nodes)
    editor_connected(a)
    editor_connected(b)
    text_a, text_b = WORD_A * 4, WORD_B * 4
    wanted = [text_a + text_b, text_b + text_a]
    for round_ in range(ROUNDS):
        a.locator("#notes-text").focus()
        b.locator("#notes-text").focus()
        # The first key on each page at once, then one key on A, one key on B, ..., each
        # held down for a moment as a person's are: each page types while the other's
        # characters arrive (a node-to-node trip takes longer than a key press).
        for key_a, key_b in zip(text_a, text_b, strict=True):
            a.keyboard.press(key_a, delay=KEY_HELD_MS)
            b.keyboard.press(key_b, delay=KEY_HELD_MS)
        for page in (a, b):
            page.wait_for_function(
                """(n) => document.getElementById("notes-text").value.length === n""",
                arg=len(text_a) + len(text_b),
            )
        got = [page.locator("#notes-text").input_value() for page in (a, b)]
        assert got[0] == got[1], f"round {round_}: the pages differ"
        assert got[0] in wanted, f"round {round_}: interleaved: {got[0]!r}"
        # Page A empties the document for the next round; B sees it empty.
        a.keyboard.press("Control+A")
        a.keyboard.press("Backspace")
        for page in (a, b):
            expect(page.locator("#notes-text")).to_have_value("")
    assert a.errors == b.errors == []  # type: ignore[attr-defined]


def test_chat_on_page_a_shows_a_message_sent_from_node_b(
    browser: Browser, nodes: list[NodeProcess]
) -> None:
    a, b = (open_console(browser, n.url) for n in nodes)
    b.locator("#chat-author").fill("bea")
    b.locator("#chat-text").fill("hello from node B")
    b.locator("#chat-form button").click()
    expect(b.locator("#chat-text")).to_have_value("")  # accepted by node B
    message = a.locator("#chat-messages li", has_text="hello from node B")
    expect(message).to_have_count(1)
    expect(message.locator("b")).to_have_text("bea")
    assert a.errors == b.errors == []  # type: ignore[attr-defined]


def add_todo(page: Page, title: str) -> None:
    page.locator("#todo-title").fill(title)
    page.locator("#todo-form button").click()
    expect(todo(page, title)).to_have_count(1)


def todo(page: Page, title: str):  # type: ignore[no-untyped-def]
    return page.locator("#todo-list li").filter(has=page.locator("span.title", has_text=title))


def test_todos_edited_on_both_sides_while_disconnected_merge(
    browser: Browser, nodes: list[NodeProcess], tmp_path: Path
) -> None:
    node_a, node_b = nodes
    a, b = (open_console(browser, n.url) for n in nodes)
    for title in ("tick me", "rename me", "delete me"):
        add_todo(a, title)
        expect(todo(b, title)).to_have_count(1)

    # Disconnect: node B stops. A ticks one todo and adds one meanwhile.
    node_b.stop()
    todo(a, "tick me").locator("input[type=checkbox]").check()
    expect(todo(a, "tick me")).to_have_class("done")
    add_todo(a, "added on A")

    # Node B comes back on its old API port but joins nobody: still disconnected.
    node_b = nodes[1] = NodeProcess(tmp_path / "b", api_port=node_b.api_port)
    b.reload()
    expect(todo(b, "rename me")).to_have_count(1)
    b.once("dialog", lambda dialog: dialog.accept("renamed on B"))
    todo(b, "rename me").get_by_role("button", name="rename").click()
    expect(todo(b, "renamed on B")).to_have_count(1)
    todo(b, "delete me").get_by_role("button", name="delete").click()
    expect(todo(b, "delete me")).to_have_count(0)
    add_todo(b, "added on B")
    expect(todo(b, "added on A")).to_have_count(0)  # really apart
    expect(todo(a, "added on B")).to_have_count(0)

    # Reconnect through B's API; both pages converge on every edit of both sides.
    response = httpx.post(f"{node_b.url}v1/peers", json={"address": node_a.dial_address})
    assert response.status_code == 200, response.text
    want = ["added on A", "added on B", "renamed on B", "tick me"]
    for page in (a, b):
        for title in want:
            expect(todo(page, title)).to_have_count(1)
        expect(todo(page, "delete me")).to_have_count(0)
        expect(todo(page, "rename me")).to_have_count(0)
        titles = page.locator("#todo-list li span.title")
        assert sorted(titles.all_text_contents()) == want
        expect(todo(page, "tick me")).to_have_class("done")
        expect(todo(page, "tick me").locator("input[type=checkbox]")).to_be_checked()
    assert a.errors == b.errors == []  # type: ignore[attr-defined]


def test_the_editor_shows_who_else_is_editing_on_the_other_node(
    browser: Browser, nodes: list[NodeProcess]
) -> None:
    a, b = (open_console(browser, n.url) for n in nodes)
    a.locator("#chat-author").fill("ada")
    a.locator("#chat-author").dispatch_event("change")
    b.locator("#chat-author").fill("bea")
    b.locator("#chat-author").dispatch_event("change")
    # Each page's presence reaches the other over its own node and gossip.
    expect(a.locator("#notes-presence li")).to_have_text(["bea"])
    expect(b.locator("#notes-presence li")).to_have_text(["ada"])
    b.close()  # B's tab goes away: A stops showing it
    expect(a.locator("#notes-presence li")).to_have_count(0)
    # Presence is never written to the log: the notes database holds no entry.
    info = httpx.get(f"{nodes[0].url}v1/databases/notes").json()
    assert info["entries"] == 0, info
    assert a.errors == b.errors == []  # type: ignore[attr-defined]


def test_the_editor_shows_the_other_pages_caret_and_selection_with_its_name(
    browser: Browser, nodes: list[NodeProcess]
) -> None:
    a, b = (open_console(browser, n.url) for n in nodes)
    editor_connected(a)
    editor_connected(b)
    b.locator("#chat-author").fill("bea")
    b.locator("#chat-author").dispatch_event("change")
    b.locator("#notes-text").press_sequentially("hello world")
    expect(a.locator("#notes-text")).to_have_value("hello world")
    # B's caret, after "world", on A's page: a caret labelled with B's name, no selection.
    caret = a.locator("#notes-cursors .remote-caret")
    expect(caret).to_have_count(1)
    expect(caret.locator(".remote-name")).to_have_text("bea")
    expect(a.locator("#notes-cursors .remote-selection")).to_have_count(0)
    # B selects "world" backwards: A shows that selection, B's caret at its start.
    for _ in range(5):
        b.keyboard.press("Shift+ArrowLeft")
    expect(a.locator("#notes-cursors .remote-selection")).to_have_text("world")
    expect(a.locator("#notes-cursors .remote-selection + .remote-caret")).to_have_count(0)
    expect(a.locator("#notes-cursors .remote-caret + .remote-selection")).to_have_count(1)
    # The caret sits where the text it follows is drawn on A's textarea: on the first
    # line, right of the left edge.
    box, area = caret.bounding_box(), a.locator("#notes-text").bounding_box()
    assert box is not None and area is not None
    assert area["x"] < box["x"] < area["x"] + area["width"]
    assert area["y"] <= box["y"] < area["y"] + 40
    # B's caret leaves A's page when B's editor loses focus, and with B's tab.
    b.locator("#chat-text").focus()
    expect(a.locator("#notes-cursors .remote-caret")).to_have_count(0)
    expect(a.locator("#notes-presence li")).to_have_text(["bea"])
    b.close()
    expect(a.locator("#notes-presence li")).to_have_count(0)
    assert a.errors == []  # type: ignore[attr-defined]
