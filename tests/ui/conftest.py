"""Browser tests: Debian's headless chromium, driven by Playwright, against one real server per module.

Playwright's own browser download needs the internet; Debian's `chromium` package does not come from there, so
the tests drive it through `executable_path` and install it with apt when it is missing (as root; otherwise they
fail saying how to install it). Every page routes requests for any host but the server to a failure, and each
test ends by asserting none happened: the playground and /docs must work on a machine without internet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Route, expect, sync_playwright

from server_process import RunningServer, running_server
from ui_pages import Watched

CHROMIUM = Path("/usr/bin/chromium")
expect.set_options(timeout=30_000)  # answers stream from a real model on a shared CPU


def _install_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM}: run `sudo apt-get install -y chromium`")
    quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=quiet, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=quiet, timeout=900)
    assert CHROMIUM.exists(), f"apt-get installed chromium but {CHROMIUM} is missing"
    return CHROMIUM


@pytest.fixture(scope="session")
def chromium() -> Path:
    return _install_chromium()


@pytest.fixture(scope="module")
def ui_server() -> Iterator[RunningServer]:
    """Greedy decoding, so answers are the same every run; two slots, so compare mode's answers stream together."""
    with running_server("--preset", "greedy", "--ctx-size", "2048", "--parallel", "2") as running:
        yield running


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium))
        yield launched
        launched.close()


@pytest.fixture()
def watched(browser: Browser, ui_server: RunningServer) -> Iterator[Watched]:
    context = browser.new_context(
        base_url=ui_server.base_url,
        viewport={"width": 1280, "height": 800},
        permissions=["clipboard-read", "clipboard-write"],
        accept_downloads=True,
    )
    page = context.new_page()
    page.set_default_timeout(30_000)
    watched = Watched(page)
    server_host = urlsplit(ui_server.base_url).netloc

    def only_the_server(route: Route) -> None:
        if urlsplit(route.request.url).netloc in (server_host, ""):
            route.continue_()
        else:
            watched.foreign_requests.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_server)
    page.on("console", lambda message: message.type == "error" and watched.errors.append(message.text))
    page.on("pageerror", lambda error: watched.errors.append(str(error)))
    yield watched
    context.close()
    assert watched.foreign_requests == [], "the page asked hosts other than the server"
