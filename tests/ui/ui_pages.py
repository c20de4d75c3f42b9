"""What the browser tests share: a watched page and the few steps every playground test takes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Page, Route, expect

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
"""Screenshots of each run (gitignored); docs/images/ holds the ones the README shows."""


@dataclass
class Watched:
    """A page and what it did that it must not: console errors, uncaught exceptions, requests to other hosts."""

    page: Page
    errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=path, full_page=True)
        return path


def open_playground(page: Page) -> None:
    page.goto("/ui")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def ask(page: Page, prompt: str, max_tokens: int) -> None:
    page.fill("#max_tokens", str(max_tokens))
    page.fill("#prompt", prompt)
    page.click("#send")


def fake_answer(page: Page, text: str) -> None:
    """Answer every chat request with `text` as the server would stream it, in three pieces."""
    cut = [0, len(text) // 3, 2 * len(text) // 3, len(text)]
    events = [
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text[a:b]}}]}
        for a, b in zip(cut, cut[1:])
    ]
    usage = {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}
    events.append({"object": "chat.completion.chunk", "choices": [], "usage": usage})
    body = "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"

    def answer(route: Route) -> None:
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    page.route("**/v1/chat/completions", answer)
