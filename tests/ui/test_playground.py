"""The playground at /ui and the API docs at /docs, in headless chromium against the real server and model.

Each test's page may talk to the server only (the `watched` fixture fails the test otherwise). The answers that
must hold Markdown, a code block or HTML come from a faked event stream: what the model writes is its business,
what the page does with any answer is the page's.
"""

from __future__ import annotations

import json
import time

import httpx
from playwright.sync_api import expect

from server_process import RunningServer
from ui_pages import ARTIFACTS, Watched, ask, fake_answer, open_playground


def test_browsers_are_sent_to_the_playground_and_api_clients_get_ollamas_answer(ui_server: RunningServer) -> None:
    browser_like = httpx.get(ui_server.base_url, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser_like.status_code == 307 and browser_like.headers["location"] == "/ui"
    assert httpx.get(ui_server.base_url).text == "Ollama is running"


def test_presets_lists_every_preset_and_the_servers_default(ui_server: RunningServer) -> None:
    presets = httpx.get(f"{ui_server.api_url}/presets").json()
    assert presets["default"] == "greedy"
    by_name = {preset["name"]: preset for preset in presets["data"]}
    assert {"greedy", "divine-intellect", "openai"} <= by_name.keys()
    assert by_name["greedy"]["default"] and not by_name["openai"]["default"]
    assert by_name["divine-intellect"]["sampling"]["temperature"] == 1.31


def test_the_page_loads_from_the_server_alone_without_errors(watched: Watched) -> None:
    page = watched.page
    page.goto("/")  # a browser asks for text/html: sent on to /ui
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    assert page.url.endswith("/ui")
    expect(page.locator("#preset")).to_have_value("greedy")
    expect(page.locator("#model-name")).not_to_be_empty()
    assert watched.errors == []


def test_a_chat_streams_into_the_page_with_its_figures(watched: Watched) -> None:
    page = watched.page
    open_playground(page)
    ask(page, "Write a Python function that reverses a string.", 32)
    answer = page.locator(".message.assistant")
    page.wait_for_function(
        "() => { const a = document.querySelector('.message.assistant');"
        " return a.classList.contains('streaming') && a.textContent.length > 0; }"
    )  # text on the page while the answer is still streaming
    expect(page.locator("#send")).to_be_enabled()
    assert len(answer.inner_text()) > 10
    figures = page.locator("#figures").inner_text()
    assert "TTFT" in figures and "tokens/s" in figures and "/ 2048 tokens" in figures, figures
    watched.screenshot("chat.png")
    assert watched.errors == []


def test_stop_cancels_the_answer_and_frees_the_slot(watched: Watched, ui_server: RunningServer) -> None:
    page = watched.page
    open_playground(page)
    ask(page, "Count from 1 to 1000, one number per line.", 1500)
    expect(page.locator(".message.assistant")).not_to_be_empty()
    assert httpx.get(f"{ui_server.base_url}/health").json()["slots_busy"] == 1
    page.click("#stop")
    expect(page.locator("#send")).to_be_enabled()
    deadline = time.monotonic() + 10
    while httpx.get(f"{ui_server.base_url}/health").json()["slots_busy"] != 0:
        assert time.monotonic() < deadline, "the slot was still busy 10 s after Stop"
        time.sleep(0.1)
    # What came before Stop stays rendered, as elements: a partial answer such as "1." renders as an ordered list
    # whose numbers are list markers, so its text may be empty.
    expect(page.locator(".message.assistant > *").first).to_be_attached()
    expect(page.locator("#error")).to_be_hidden()
    # ... and stays in the conversation: the next question carries it.
    with page.expect_request("**/v1/chat/completions") as sent:
        ask(page, "Go on.", 4)
    messages = sent.value.post_data_json["messages"]
    assert [message["role"] for message in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"].strip(), messages
    expect(page.locator("#send")).to_be_enabled()
    assert watched.errors == []


def test_the_chosen_preset_and_sampling_fields_reach_the_request(watched: Watched) -> None:
    page = watched.page
    open_playground(page)
    page.select_option("#preset", "openai")
    expect(page.locator("#temperature")).to_have_attribute("placeholder", "1")
    page.fill("#temperature", "0.5")
    page.fill("#system", "You answer in one word.")
    with page.expect_request("**/v1/chat/completions") as sent:
        ask(page, "Hello?", 8)
    body = sent.value.post_data_json
    assert body["preset"] == "openai" and body["temperature"] == 0.5 and "top_p" not in body
    assert body["max_tokens"] == 8 and body["stream"] and body["stream_options"] == {"include_usage": True}
    assert body["messages"][0] == {"role": "system", "content": "You answer in one word."}
    expect(page.locator("#send")).to_be_enabled()
    assert watched.errors == []


def test_code_blocks_are_highlighted_and_copied(watched: Watched) -> None:
    page = watched.page
    fake_answer(page, "Here:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nDone.")
    open_playground(page)
    ask(page, "Add two numbers in Python.", 64)
    expect(page.locator("pre code.hljs .hljs-keyword").first).to_have_text("def")
    page.click("pre button.copy")
    expect(page.locator("pre button.copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "def add(a, b):\n    return a + b\n"
    assert watched.errors == []


def test_html_in_an_answer_is_shown_as_text_never_run(watched: Watched) -> None:
    page = watched.page
    attack = '<script>window.pwned = 1</script>\n\nInline <img src=x onerror="window.pwned = 2"> and **bold**.'
    fake_answer(page, attack)
    open_playground(page)
    ask(page, "Say something dangerous.", 64)
    answer = page.locator(".message.assistant")
    expect(answer.locator("strong")).to_have_text("bold")
    expect(answer).to_contain_text("<script>window.pwned = 1</script>")
    expect(answer).to_contain_text('<img src=x onerror="window.pwned = 2">')
    assert answer.locator("script, img").count() == 0
    assert page.evaluate("window.pwned") is None
    assert watched.errors == []


def test_compare_mode_streams_two_answers_ranks_them_and_exports_json(watched: Watched) -> None:
    page = watched.page
    open_playground(page)
    page.click("#mode-compare")
    prompt = "Write a Python function that reverses a string."
    ask(page, prompt, 64)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.side .answer')]"
        ".every(a => a.classList.contains('streaming') && a.textContent.length > 0)"
    )  # both answers on the page at once, both still streaming
    expect(page.locator("#send")).to_be_enabled()
    page.locator('.side[data-side="A"] .rank button', has_text="4").click()
    page.locator('.side[data-side="B"] .rank button', has_text="1").click()
    expect(page.locator("#scores tbody tr")).to_have_count(1)
    expect(page.locator("#total-A")).to_have_text("4")
    expect(page.locator("#total-B")).to_have_text("1")
    watched.screenshot("compare.png")
    with page.expect_download() as download:
        page.click("#export")
    exported = json.loads(open(download.value.path(), encoding="utf-8").read())
    assert exported["format"] == "codebooga-rankings/1"
    (ranking,) = exported["rankings"]
    assert ranking["prompt"] == prompt and ranking["points"] == {"A": 4, "B": 1}
    assert ranking["answers"]["A"] and ranking["answers"]["A"] == ranking["answers"]["B"]  # greedy, same model
    assert exported["totals"] == {"A": 4, "B": 1}
    assert watched.errors == []


def test_docs_list_the_endpoints_offline(watched: Watched) -> None:
    page = watched.page
    page.goto("/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert {"/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/presets", "/health"} <= set(paths)
    watched.screenshot("docs.png")
    assert watched.errors == []
    assert ARTIFACTS.is_dir()
