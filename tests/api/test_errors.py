"""Bad input always gets a 4xx in OpenAI's error shape with a message that says what to fix."""

from __future__ import annotations

import re

import httpx
import pytest

from server_process import RunningServer

CHAT = [{"role": "user", "content": "hi"}]


def post(server: RunningServer, path: str, body: object, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json=body, timeout=60, **kwargs)


def assert_openai_error(response: httpx.Response, status: int, param: str | None = None, words: str = "") -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and isinstance(error["type"], str)
    if param is not None:
        assert error["param"] == param
    assert words.lower() in error["message"].lower()
    return error


def test_malformed_json(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.base_url}/v1/chat/completions", content=b'{"messages": [', headers={"Content-Type": "application/json"}
    )
    assert_openai_error(response, 400, words="not valid JSON")


def test_body_that_is_not_an_object(server: RunningServer) -> None:
    assert_openai_error(post(server, "/v1/completions", ["prompt"]), 400, words="JSON object")


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("temperature", -0.5, "greater than or equal to 0"),
        ("temperature", "hot", "valid number"),
        ("top_p", 0, "greater than 0"),
        ("top_p", 1.5, "less than or equal to 1"),
        ("max_tokens", 0, "greater than or equal to 1"),
        ("max_tokens", 2.5, "integer"),
        ("n", 0, "greater than or equal to 1"),
        ("stream", "maybe", "boolean"),
        ("stop", 42, "stop"),
        ("logit_bias", {"12": 500}, "between -100 and 100"),
    ],
)
def test_chat_field_validation(server: RunningServer, field: str, value: object, words: str) -> None:
    assert_openai_error(post(server, "/v1/chat/completions", {"messages": CHAT, field: value}), 400, field, words)


def test_missing_messages(server: RunningServer) -> None:
    assert_openai_error(post(server, "/v1/chat/completions", {"model": "x"}), 400, "messages", "required")


def test_unknown_role(server: RunningServer) -> None:
    body = {"messages": [{"role": "wizard", "content": "hi"}]}
    assert_openai_error(post(server, "/v1/chat/completions", body), 400, "messages[0].role")


def test_image_content_is_rejected_with_a_reason(server: RunningServer) -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
    assert_openai_error(post(server, "/v1/chat/completions", body), 400, words="text only")


def test_bad_prompt_shape(server: RunningServer) -> None:
    assert_openai_error(post(server, "/v1/completions", {"prompt": [1, "a"]}), 400, "prompt", "list of token ids")


def test_token_id_outside_vocabulary(server: RunningServer) -> None:
    assert_openai_error(post(server, "/v1/completions", {"prompt": [10**7]}), 400, "prompt", "vocabulary")


def test_an_empty_prompt_is_refused_instead_of_waiting_forever(server: RunningServer) -> None:
    # SmolLM2 adds no start token, so "" is no token at all: nothing to decode, no first token to sample (found by
    # fuzzing: the request held its sequence until the client gave up).
    response = httpx.post(f"{server.api_url}/completions", json={"prompt": "", "max_tokens": 2}, timeout=10)
    assert_openai_error(response, 400, "prompt", "empty")


def test_prompt_longer_than_the_context_names_both_numbers(server: RunningServer) -> None:
    response = post(server, "/v1/completions", {"prompt": "word " * 3000, "max_tokens": 4})
    error = assert_openai_error(response, 400, "prompt")
    assert error["code"] == "context_length_exceeded"
    assert re.fullmatch(
        r"This model's maximum context length is 2048 tokens\. However, you requested (\d+) tokens \(3\d\d\d in "
        r"the prompt, 4 in the completion\)\. Please reduce the length of the prompt or completion\.",
        error["message"],
    )


def test_chat_longer_than_the_context_is_openais_overflow_error(server: RunningServer) -> None:
    body = {"messages": [{"role": "user", "content": "word " * 3000}]}
    error = assert_openai_error(post(server, "/v1/chat/completions", body), 400, "messages")
    assert error["code"] == "context_length_exceeded"
    assert error["message"].startswith("This model's maximum context length is 2048 tokens. However, you requested")
    assert "in the messages, 1 in the completion). Please reduce the length of the messages" in error["message"]


def test_suffix_is_refused_because_the_model_cannot_infill(server: RunningServer) -> None:
    body = {"prompt": "def f(", "suffix": "return x"}
    assert_openai_error(post(server, "/v1/completions", body), 400, "suffix", "infilling")


def test_unknown_preset_lists_the_available_ones(server: RunningServer) -> None:
    error = assert_openai_error(post(server, "/v1/chat/completions", {"messages": CHAT, "preset": "spicy"}), 400, "preset")
    assert "divine-intellect" in error["message"] and "greedy" in error["message"]


def test_n_beyond_parallel_sequences(server: RunningServer) -> None:
    assert_openai_error(post(server, "/v1/chat/completions", {"messages": CHAT, "n": 9}), 400, "n", "--parallel")


def test_top_logprobs_without_logprobs(server: RunningServer) -> None:
    body = {"messages": CHAT, "top_logprobs": 2}
    assert_openai_error(post(server, "/v1/chat/completions", body), 400, "top_logprobs")


def test_unknown_route_and_method(server: RunningServer) -> None:
    assert_openai_error(httpx.get(f"{server.base_url}/v1/nothing"), 404)
    assert_openai_error(httpx.get(f"{server.base_url}/v1/chat/completions"), 405)


def test_unknown_fields_are_ignored(server: RunningServer) -> None:
    body = {"messages": CHAT, "max_tokens": 2, "vendor_extension": {"x": 1}, "parallel_tool_calls": False}
    assert post(server, "/v1/chat/completions", body).status_code == 200


def test_form_encoded_curl_style_body_is_still_read_as_json(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.base_url}/v1/completions",
        content=b'{"prompt": "x", "max_tokens": 1}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
