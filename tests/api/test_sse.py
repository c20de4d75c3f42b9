"""Raw SSE framing over httpx and curl: data lines, blank-line separators, `data: [DONE]` last."""

from __future__ import annotations

import json
import shutil
import subprocess

import httpx
import pytest

from server_process import RunningServer


def test_sse_framing_and_chunk_objects(server: RunningServer) -> None:
    body = {"messages": [{"role": "user", "content": "Count to five."}], "max_tokens": 12, "stream": True}
    with httpx.stream("POST", f"{server.base_url}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = [block for block in raw.replace("\r\n", "\n").split("\n\n") if block]
    assert all(event.startswith("data: ") for event in events), events[:3]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert all("usage" not in chunk for chunk in chunks)  # not asked for, so never sent
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["choices"][0]["delta"] == {}


def test_completion_stream_ends_with_usage_then_done(server: RunningServer) -> None:
    body = {"prompt": "def f():", "max_tokens": 5, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{server.base_url}/v1/completions", json=body, timeout=60) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    last = json.loads(lines[-2].removeprefix("data: "))
    assert last["object"] == "text_completion" and last["choices"] == []
    assert last["usage"]["completion_tokens"] == 5


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_streaming_ends_with_done(server: RunningServer) -> None:
    result = subprocess.run(
        [
            "curl", "-sN", f"{server.base_url}/v1/chat/completions",
            "-H", "Content-Type: application/json",
            "-d", json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "stream": True}),
        ],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert result.stdout.rstrip().endswith("data: [DONE]")
    assert result.stdout.count("data: ") >= 3
