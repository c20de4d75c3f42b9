"""llama-server's own routes (/completion, /props) and the OpenAI routes without /v1, as llama.cpp's clients
call them, against the real server."""

from __future__ import annotations

import json

import httpx
import openai

from server_process import RunningServer

PROMPT = "def square(x):"


def test_completion_not_streaming_reports_counts_and_timings(server: RunningServer) -> None:
    body = {"prompt": PROMPT, "n_predict": 6, "temperature": 0, "top_k": 40, "top_p": 0.9, "min_p": 0.05,
            "repeat_penalty": 1.1, "seed": 42, "cache_prompt": True, "stop": ["\n\n\n"]}  # fmt: skip
    answer = httpx.post(f"{server.base_url}/completion", json=body, timeout=60).json()
    assert answer["stop"] is True and answer["content"]
    assert answer["tokens_predicted"] == 6 and answer["stop_type"] == "limit" and answer["stopped_limit"]
    assert answer["tokens_evaluated"] == answer["timings"]["prompt_n"] > 0
    assert answer["timings"]["predicted_n"] == 6 and answer["timings"]["predicted_ms"] > 0


def test_completion_streams_content_then_a_last_stop_object(server: RunningServer) -> None:
    body = {"prompt": PROMPT, "n_predict": 6, "temperature": 0, "stream": True}
    whole = httpx.post(f"{server.base_url}/completion", json={**body, "stream": False}, timeout=60).json()
    with httpx.stream("POST", f"{server.base_url}/completion", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line.removeprefix("data: ")) for line in response.iter_lines() if line]
    assert all(event["stop"] is False for event in events[:-1]) and events[-1]["stop"] is True
    assert "".join(event["content"] for event in events) == whole["content"]
    assert events[-1]["tokens_predicted"] == 6


def test_a_stop_string_ends_with_stop_type_word(server: RunningServer) -> None:
    body = {"prompt": PROMPT, "n_predict": 12, "temperature": 0, "stop": ["return"]}  # greedy: "\n    return x"
    answer = httpx.post(f"{server.base_url}/completion", json=body, timeout=60).json()
    assert answer["stop_type"] == "word" and answer["stopped_word"] and answer["content"] == "\n    "


def test_completion_bad_input_is_a_400(server: RunningServer) -> None:
    response = httpx.post(f"{server.base_url}/completion", json={"prompt": PROMPT, "n_predict": 0}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["param"] == "n_predict"


def test_props_give_the_context_template_and_slots(server: RunningServer) -> None:
    props = httpx.get(f"{server.base_url}/props", timeout=30).json()
    assert props["default_generation_settings"]["n_ctx"] == props["n_ctx"] == 2048
    assert props["total_slots"] == 4 and props["model_alias"] == "SmolLM2-135M-Instruct.Q4_1"
    assert props["model_path"].endswith(".gguf") and "<|im_start|>" in props["chat_template"]
    assert props["default_generation_settings"]["params"]["temperature"] > 0


def test_openai_routes_answer_without_the_v1_prefix(server: RunningServer) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    assert [model.id for model in client.models.list().data] == ["SmolLM2-135M-Instruct.Q4_1"]
    chat = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert chat.usage.completion_tokens <= 2
    assert client.completions.create(model="m", prompt=PROMPT, max_tokens=2).choices[0].text
    paths = httpx.get(f"{server.base_url}/openapi.json", timeout=30).json()["paths"]
    assert "/v1/chat/completions" in paths and "/chat/completions" not in paths  # listed once
