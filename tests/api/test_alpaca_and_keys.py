"""A second server as a CodeBooga deployment runs it: Alpaca template forced, API keys required, one web
origin allowed (CORS)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from server_process import RunningServer, running_server

PREAMBLE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)
KEYS = ("sk-first-key", "sk-second-key")
ORIGIN = "https://chat.example"
# what the openai SDK in a browser sends before its first POST
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os,x-stainless-lang,"
    "x-stainless-package-version,x-stainless-retry-count,x-stainless-timeout",
}


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[RunningServer]:
    with running_server(
        "--chat-template", "alpaca", "--api-key", KEYS[0], "--ctx-size", "1024", "--parallel", "2",
        "--cors-origin", ORIGIN,
        env={"CODEBOOGA_API_KEYS": "ignored-when-flags-given"},
    ) as running:
        yield running


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_alpaca_prompt_is_exactly_the_seed_format(keyed_server: RunningServer) -> None:
    messages = [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2"},
    ]
    expected = f"{PREAMBLE}\n\n### Instruction:\nQ1\n\n### Response:\nA1\n\n### Instruction:\nQ2\n\n### Response:\n"
    client = openai.OpenAI(base_url=keyed_server.api_url, api_key=KEYS[0], max_retries=0)
    chat = client.chat.completions.create(model="codebooga", messages=messages, max_tokens=1)
    tokens = httpx.post(f"{keyed_server.base_url}/tokenize", json={"content": expected}, headers=auth(KEYS[0])).json()
    completion = client.completions.create(model="codebooga", prompt=expected, max_tokens=1)
    assert chat.usage.prompt_tokens == len(tokens["tokens"]) == completion.usage.prompt_tokens


def test_alpaca_turn_marker_always_stops_the_reply(keyed_server: RunningServer) -> None:
    client = openai.OpenAI(base_url=keyed_server.api_url, api_key=KEYS[0], max_retries=0)
    response = client.chat.completions.create(
        model="x",
        messages=[{"role": "user", "content": "Repeat exactly: '### Instruction:' then more words"}],
        max_tokens=64,
        temperature=0,
    )
    assert "### Instruction:" not in response.choices[0].message.content


def test_health_reports_the_template_and_stays_open(keyed_server: RunningServer) -> None:
    health = httpx.get(f"{keyed_server.base_url}/health")
    assert health.status_code == 200 and health.json()["chat_template"] == "alpaca"


@pytest.mark.parametrize("headers", [{}, auth("sk-wrong"), {"Authorization": KEYS[0]}, auth(KEYS[1])])
def test_missing_or_wrong_key_is_401_in_openai_shape(keyed_server: RunningServer, headers: dict[str, str]) -> None:
    response = httpx.get(f"{keyed_server.api_url}/models", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_openai_client_with_the_right_key_works_and_wrong_key_raises(keyed_server: RunningServer) -> None:
    good = openai.OpenAI(base_url=keyed_server.api_url, api_key=KEYS[0], max_retries=0)
    assert good.models.list().data
    bad = openai.OpenAI(base_url=keyed_server.api_url, api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])


def test_keys_from_the_environment() -> None:
    with running_server("--ctx-size", "512", "--parallel", "1", env={"CODEBOOGA_API_KEYS": "env-a, env-b"}) as running:
        assert httpx.get(f"{running.api_url}/models", headers=auth("env-b")).status_code == 200
        assert httpx.get(f"{running.api_url}/models", headers=auth("env-c")).status_code == 401


def test_cors_preflight_allows_the_configured_origin_with_the_sdk_headers(keyed_server: RunningServer) -> None:
    url = f"{keyed_server.api_url}/chat/completions"
    allowed = httpx.options(url, headers={**PREFLIGHT, "Origin": ORIGIN})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
    granted = allowed.headers["access-control-allow-headers"].lower()
    assert all(header in granted for header in PREFLIGHT["Access-Control-Request-Headers"].split(","))
    assert "POST" in allowed.headers["access-control-allow-methods"]
    denied = httpx.options(url, headers={**PREFLIGHT, "Origin": "https://elsewhere.example"})
    assert denied.status_code == 400 and "access-control-allow-origin" not in denied.headers
    models = httpx.get(f"{keyed_server.api_url}/models", headers={**auth(KEYS[0]), "Origin": ORIGIN})
    assert models.status_code == 200 and models.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in models.headers["access-control-expose-headers"]


def test_cors_is_off_by_default(server: RunningServer) -> None:
    response = httpx.options(f"{server.api_url}/chat/completions", headers={**PREFLIGHT, "Origin": ORIGIN})
    assert response.status_code == 405 and "access-control-allow-origin" not in response.headers


def test_keys_guard_the_ollama_and_llama_server_routes_too(keyed_server: RunningServer) -> None:
    tags = httpx.get(f"{keyed_server.base_url}/api/tags")
    assert tags.status_code == 401 and "API key" in tags.json()["error"]  # in Ollama's error shape
    assert httpx.get(f"{keyed_server.base_url}/api/tags", headers=auth(KEYS[0])).status_code == 200
    assert httpx.post(f"{keyed_server.base_url}/completion", json={"prompt": "x"}).status_code == 401
    assert httpx.get(f"{keyed_server.base_url}/").text == "Ollama is running"  # open, as /health is
