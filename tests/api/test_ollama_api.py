"""The ollama Python package (what Ollama clients build on) against the real server's /api/* routes."""

from __future__ import annotations

import httpx
import jsonschema
import ollama
import pytest
from pydantic import BaseModel

from sampled import first_finished
from server_process import RunningServer

MODEL = "SmolLM2-135M-Instruct.Q4_1:latest"
QUESTION = [{"role": "user", "content": "Write a Python function that returns the square of a number."}]
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]
GREEDY = {"temperature": 0, "num_predict": 12}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}


class City(BaseModel):
    name: str
    country: str
    population: int


@pytest.fixture(scope="module")
def client(server: RunningServer) -> ollama.Client:
    return ollama.Client(host=server.base_url, timeout=120)


def test_root_and_version_answer_as_ollama_does(server: RunningServer, client: ollama.Client) -> None:
    root = httpx.get(server.base_url)
    assert root.text == "Ollama is running" and root.headers["content-type"].startswith("text/plain")
    assert httpx.head(server.base_url).status_code == 200
    version = httpx.get(f"{server.base_url}/api/version").json()["version"]
    assert tuple(int(part) for part in version.split(".")) >= (0, 6, 4)  # what Copilot's Ollama provider needs


def test_list_and_show_describe_the_served_model(client: ollama.Client) -> None:
    [model] = client.list().models
    assert model.model == MODEL and model.size > 0 and model.details.format == "gguf"
    assert model.details.family == "llama" and model.details.quantization_level == "Q4_1"
    shown = client.show(MODEL)
    assert set(shown.capabilities) == {"completion", "tools"}  # grammar-constrained calls on llama.cpp
    assert shown.modelinfo["llama.context_length"] == 2048
    assert "<|im_start|>" in shown.template


def test_chat_streaming_and_not_give_the_same_greedy_answer(client: ollama.Client) -> None:
    # unknown options (num_ctx, mirostat) are ignored, as Ollama's clients send many
    options = {**GREEDY, "num_ctx": 4096, "mirostat": 0}
    whole = client.chat(model=MODEL, messages=QUESTION, options=options, keep_alive="5m")
    assert whole.done and whole.done_reason in ("stop", "length") and whole.message.content
    assert 0 < whole.eval_count <= 12 and whole.prompt_eval_count > 10
    assert whole.total_duration >= whole.prompt_eval_duration > 0 and whole.eval_duration > 0
    chunks = list(client.chat(model=MODEL, messages=QUESTION, options=options, stream=True))
    assert all(not chunk.done for chunk in chunks[:-1]) and chunks[-1].done
    assert "".join(chunk.message.content for chunk in chunks) == whole.message.content
    assert chunks[-1].eval_count == whole.eval_count and chunks[-1].done_reason == whole.done_reason


def test_generate_applies_the_template_unless_raw(client: ollama.Client) -> None:
    answer = client.generate(model=MODEL, prompt="Say hello.", system="Be brief.", options=GREEDY)
    assert answer.done and answer.response and answer.prompt_eval_count > 10
    raw = list(client.generate(model=MODEL, prompt="def square(x):", raw=True, options=GREEDY, stream=True))
    assert raw[-1].done and raw[-1].prompt_eval_count < 8 and "".join(part.response for part in raw)


def test_chat_format_schema_answer_validates(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "Describe Paris as JSON."}]
    answer = first_finished(
        lambda seed: client.chat(
            model=MODEL, messages=messages, format=City.model_json_schema(), options={"num_predict": 80, "seed": seed}
        ),
        finished=lambda answer: answer.done_reason == "stop",
        cut_off=lambda answer: answer.done_reason == "length",
    )
    City.model_validate_json(answer.message.content)
    json_answer = client.chat(model=MODEL, messages=messages, format="json", options={"num_predict": 4})
    assert json_answer.message.content.startswith("{")


def test_chat_with_tools_answers_text_or_valid_calls(client: ollama.Client) -> None:
    """Ollama lets the model choose; whatever it chooses, a call it makes is well-formed."""
    answer = client.chat(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER], options={"num_predict": 16, "seed": 1})
    assert answer.message.content or answer.message.tool_calls
    for call in answer.message.tool_calls or []:
        assert call.function.name == "get_weather"
        jsonschema.validate(dict(call.function.arguments), WEATHER["function"]["parameters"])


@pytest.mark.parametrize("stream", [False, True])
def test_forced_tool_calls_parse_as_ollama_answers_and_results_go_back(
    server: RunningServer, client: ollama.Client, stream: bool
) -> None:
    """The tiny model seldom chooses a call, so codebooga's `tool_choice: "required"` forces one; the answer
    is read with the ollama package's own response model."""
    body = {"model": MODEL, "messages": ASK_WEATHER, "tools": [WEATHER], "tool_choice": "required", "stream": stream}

    def answers_and_calls(seed: int) -> tuple[list[ollama.ChatResponse], list[ollama.Message.ToolCall]]:
        options = {"num_predict": 40, "seed": seed}
        response = httpx.post(f"{server.base_url}/api/chat", json={**body, "options": options}, timeout=120)
        assert response.headers["content-type"] == ("application/x-ndjson" if stream else "application/json")
        answers = [ollama.ChatResponse.model_validate_json(line) for line in response.text.splitlines()]
        assert answers[-1].done
        return answers, [call for answer in answers for call in answer.message.tool_calls or []]

    answers, calls = first_finished(  # one call or more: a second may be cut short by num_predict and left out
        answers_and_calls, finished=lambda got: bool(got[1]), cut_off=lambda got: got[0][-1].done_reason == "length"
    )
    for call in calls:
        assert call.function.name == "get_weather"
        jsonschema.validate(dict(call.function.arguments), WEATHER["function"]["parameters"])
    if stream:
        return
    answer = answers[-1]
    result = {"role": "tool", "content": "18 degrees, sunny", "tool_name": "get_weather"}
    history = [*ASK_WEATHER, answer.message, result]
    final = client.chat(model=MODEL, messages=history, tools=[WEATHER], options={"num_predict": 8})
    assert final.prompt_eval_count > answer.prompt_eval_count + 10  # the call and its result are in the prompt


def test_invalid_options_and_overflow_are_ollama_errors(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as bad:
        client.chat(model=MODEL, messages=QUESTION, options={"temperature": -1})
    assert bad.value.status_code == 400 and "options.temperature" in bad.value.error
    with pytest.raises(ollama.ResponseError) as long:
        client.generate(model=MODEL, prompt="word " * 3000)
    assert long.value.status_code == 400 and "maximum context length is 2048 tokens" in long.value.error
    with pytest.raises(ollama.ResponseError) as thinking:
        client.chat(model=MODEL, messages=QUESTION, think=True)
    assert thinking.value.status_code == 400 and "thinking" in thinking.value.error


def test_a_request_without_messages_just_loads_the_model(client: ollama.Client) -> None:
    loaded = client.generate(model=MODEL, prompt="", keep_alive=-1)
    assert loaded.done and loaded.done_reason == "load"
