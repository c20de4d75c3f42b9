"""The playground on a server that needs an API key: asked once, kept in the browser's local storage."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Dialog, expect

from server_process import RunningServer, running_server
from ui_pages import Watched, ask, open_playground

KEY = "sk-playground-test"


@pytest.fixture(scope="module")
def ui_server() -> Iterator[RunningServer]:
    with running_server("--preset", "greedy", "--api-key", KEY, "--ctx-size", "1024", "--parallel", "1") as running:
        yield running


def test_the_api_key_is_asked_once_and_kept(watched: Watched, ui_server: RunningServer) -> None:
    page = watched.page
    asked: list[str] = []

    def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept(KEY)

    page.on("dialog", answer)
    open_playground(page)
    expect(page.locator("#preset")).to_have_value("greedy")  # /v1/presets answered with the key
    assert asked == [f"{ui_server.base_url} needs an API key:"]
    assert page.evaluate(f"localStorage.getItem('codebooga.apiKey:{ui_server.base_url}')") == KEY
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    ask(page, "Hello!", 4)
    expect(page.locator("#send")).to_be_enabled()
    expect(page.locator(".message.assistant")).not_to_be_empty()
    expect(page.locator("#error")).to_be_hidden()
    assert len(asked) == 1
