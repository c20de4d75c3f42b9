"""Tool calls and structured output through the client libraries users run, against the embedded model.

The tiny model's *choice* of tool may be poor; the *shape* must always hold: every call names an offered
function with arguments valid against its schema, every structured answer validates against its schema.
"""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest
from langchain_openai import ChatOpenAI
from openai.types.chat.chat_completion import Choice
from pydantic import BaseModel, Field

from sampled import first_finished
from server_process import RunningServer

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
            "additionalProperties": False,
        },
    },
}
RUN_CODE = {
    "type": "function",
    "function": {
        "name": "run_tests",
        "description": "Run a project's tests",
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "verbose": {"type": "boolean"},
                "retries": {"type": "integer"},
                "markers": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                "env": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "value": {"type": ["string", "null"]}},
                    "required": ["name"],
                },
            },
            "required": ["path", "verbose"],
        },
    },
}
TOOLS = [WEATHER, RUN_CODE]
SCHEMAS = {tool["function"]["name"]: tool["function"]["parameters"] for tool in TOOLS}
ASK = [{"role": "user", "content": "What is the weather in Paris? Then run the tests in ./src."}]


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api_url, api_key="unused", max_retries=0)


def assert_valid_call(name: str, arguments: str) -> None:
    assert name in SCHEMAS, f"called an unknown function {name!r}"
    jsonschema.validate(json.loads(arguments), SCHEMAS[name])


def finished_call(client: openai.OpenAI, **fields: object) -> Choice:
    """The first seed's answer that ends its calls (`finish_reason: "tool_calls"`), see `sampled`."""
    return first_finished(
        lambda seed: client.chat.completions.create(model="m", messages=ASK, tools=TOOLS, seed=seed, **fields).choices[0],
        finished=lambda choice: choice.finish_reason == "tool_calls",
        cut_off=lambda choice: choice.finish_reason == "length",
    )


def test_required_calls_are_valid_and_finish_with_tool_calls(client: openai.OpenAI) -> None:
    choice = finished_call(client, tool_choice="required", max_tokens=160)
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls and len({call.id for call in calls}) == len(calls)
    for call in calls:
        assert call.type == "function"
        assert_valid_call(call.function.name, call.function.arguments)


def test_a_named_tool_choice_makes_exactly_one_call_of_it(client: openai.OpenAI) -> None:
    choice = finished_call(client, tool_choice={"type": "function", "function": {"name": "run_tests"}}, max_tokens=160)
    calls = choice.message.tool_calls
    assert [call.function.name for call in calls] == ["run_tests"]
    assert_valid_call("run_tests", calls[0].function.arguments)


def test_without_parallel_calls_there_is_one_call(client: openai.OpenAI) -> None:
    for _ in range(3):
        response = client.chat.completions.create(
            model="m", messages=ASK, tools=TOOLS, tool_choice="required", parallel_tool_calls=False, max_tokens=160
        )
        assert len(response.choices[0].message.tool_calls) == 1


def test_tool_choice_none_and_auto_answer_in_text_or_valid_calls(client: openai.OpenAI) -> None:
    none = client.chat.completions.create(model="m", messages=ASK, tools=TOOLS, tool_choice="none", max_tokens=20)
    assert none.choices[0].message.tool_calls is None and none.choices[0].message.content
    auto = client.chat.completions.create(model="m", messages=ASK, tools=TOOLS, max_tokens=120, n=4)
    for choice in auto.choices:
        if choice.finish_reason == "length":  # a call cut off by max_tokens is incomplete, not invalid
            continue
        for call in choice.message.tool_calls or []:
            assert_valid_call(call.function.name, call.function.arguments)
        assert choice.finish_reason == ("tool_calls" if choice.message.tool_calls else "stop")


def test_streamed_calls_arrive_as_openai_sends_them(client: openai.OpenAI) -> None:
    def streamed_calls(seed: int) -> tuple[str | None, dict[int, dict[str, str]]]:
        stream = client.chat.completions.create(
            model="m", messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=160, stream=True, seed=seed
        )
        calls: dict[int, dict[str, str]] = {}
        finish = None
        for chunk in stream:
            choice = chunk.choices[0]
            finish = choice.finish_reason or finish
            for fragment in choice.delta.tool_calls or []:
                if fragment.index not in calls:  # the first fragment of a call: id, type and name, no arguments yet
                    assert fragment.id and fragment.type == "function" and fragment.function.name
                    assert not fragment.function.arguments
                    calls[fragment.index] = {"id": fragment.id, "name": fragment.function.name, "arguments": ""}
                else:
                    assert fragment.id is None and fragment.function.name is None
                    calls[fragment.index]["arguments"] += fragment.function.arguments
        return finish, calls

    _, calls = first_finished(
        streamed_calls, finished=lambda answer: answer[0] == "tool_calls", cut_off=lambda answer: answer[0] == "length"
    )
    assert calls and sorted(calls) == list(range(len(calls)))
    for call in calls.values():
        assert_valid_call(call["name"], call["arguments"])


@pytest.mark.timeout(900)  # about 20 n=4 requests of up to 200 constrained tokens each
def test_fifty_sampled_calls_at_divine_intellect_are_all_valid(client: openai.OpenAI, server: RunningServer) -> None:
    """The server's default preset (Divine Intellect: temperature 1.31, top-k 49, repetition penalty 1.17)."""
    assert httpx.get(f"{server.base_url}/health").json()["preset"] == "divine-intellect"
    questions = [
        "What is the weather in Paris?",
        "Run the tests in ./pkg verbosely, retry twice.",
        "Is it raining in Tokyo? Use fahrenheit.",
        "Run tests in src/ with the env var CI set to true and markers slow and gpu.",
    ]

    complete: list[tuple[str, str]] = []
    for attempt in range(20):
        if len(complete) >= 50:
            break
        response = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": questions[attempt % len(questions)]}], tools=TOOLS,
            tool_choice="required", parallel_tool_calls=False, max_tokens=200, n=4,
        )
        for choice in response.choices:
            if choice.finish_reason == "tool_calls":  # a call cut off by max_tokens is incomplete, not invalid
                complete += [(call.function.name, call.function.arguments) for call in choice.message.tool_calls]
    assert len(complete) >= 50
    for name, arguments in complete:
        assert_valid_call(name, arguments)


def test_a_full_tool_round_trip(client: openai.OpenAI) -> None:
    messages: list = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(
        model="m", messages=messages, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False, max_tokens=80
    )
    call = first.choices[0].message.tool_calls[0]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 21, "sky": "clear"})})
    final = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER], tool_choice="none", max_tokens=30)
    assert final.choices[0].message.content and final.choices[0].message.tool_calls is None
    assert final.usage.prompt_tokens > first.usage.prompt_tokens + 10  # the call and its result are in the prompt


class Step(BaseModel):
    explanation: str
    output: str


class MathAnswer(BaseModel):
    steps: list[Step] = Field(max_length=3)
    final_answer: str
    confidence: int | None = None


def test_parse_into_a_pydantic_model(client: openai.OpenAI) -> None:
    """Greedy, so the answer (101 tokens) always ends inside `max_tokens`: a sampled one ran past it now and then,
    and the SDK's `parse` raises on a `length` finish."""
    completion = client.beta.chat.completions.parse(
        model="m", messages=[{"role": "user", "content": "Solve 8x + 7 = -23."}], response_format=MathAnswer,
        max_tokens=200, temperature=0,
    )  # fmt: skip
    assert completion.choices[0].finish_reason == "stop"
    assert isinstance(completion.choices[0].message.parsed, MathAnswer)


def test_json_schema_answers_validate_streaming_and_not(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"language": {"type": "string", "enum": ["python", "javascript"]}, "lines": {"type": "integer"},
                       "imports": {"type": "array", "items": {"type": "string"}, "maxItems": 4}},
        "required": ["language", "lines", "imports"],
        "additionalProperties": False,
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "summary", "schema": schema, "strict": True}}
    prompt = [{"role": "user", "content": "Summarize: import os\nprint(os.getcwd())"}]
    whole = client.chat.completions.create(model="m", messages=prompt, response_format=response_format, max_tokens=120, n=4)
    texts = [choice.message.content for choice in whole.choices if choice.finish_reason == "stop"]

    def streamed(seed: int) -> tuple[str | None, str]:
        chunks = list(client.chat.completions.create(
            model="m", messages=prompt, response_format=response_format, max_tokens=120, stream=True, seed=seed
        ))
        finish = next((chunk.choices[0].finish_reason for chunk in reversed(chunks) if chunk.choices), None)
        return finish, "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)

    _, text = first_finished(streamed, finished=lambda answer: answer[0] == "stop", cut_off=lambda answer: answer[0] == "length")
    texts.append(text)
    assert len(texts) >= 3
    for text in texts:
        jsonschema.validate(json.loads(text), schema)


def test_json_object_and_completions_follow_the_format(client: openai.OpenAI, server: RunningServer) -> None:
    chat = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Give me a JSON object about cats."}],
        response_format={"type": "json_object"}, max_tokens=80,
    )
    if chat.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(chat.choices[0].message.content), dict)
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    body = {"prompt": "2 + 2 =", "max_tokens": 20, "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}}
    completion = first_finished(
        lambda seed: httpx.post(f"{server.api_url}/completions", json={**body, "seed": seed}, timeout=60).json()["choices"][0],
        finished=lambda choice: choice["finish_reason"] == "stop",
        cut_off=lambda choice: choice["finish_reason"] == "length",
    )
    jsonschema.validate(json.loads(completion["text"]), schema)


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}}}]},
         "tools[0].function.parameters", "'minimum'"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice", "not among the tools"),
        ({"tool_choice": "required"}, "tool_choice", "at least one tool"),
        ({"tools": [WEATHER], "logprobs": True}, "logprobs", "not supported together with tools"),
        ({"tools": [WEATHER], "response_format": {"type": "json_object"}}, "response_format", "together with tools"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "format": "email"}}}},
         "response_format", "format 'email'"),
        ({"response_format": {"type": "yaml"}}, "response_format", ""),
        ({"functions": [WEATHER["function"]]}, "functions", "send tools instead"),
        ({"function_call": "auto"}, "function_call", "send tool_choice instead"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio", "text only"),
        ({"modalities": ["text", "audio"]}, "modalities", "text modality"),
        ({"web_search_options": {}}, "web_search_options", "not supported"),
        ({"prompt": "def f():", "best_of": 3}, "best_of", "send n instead"),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(server: RunningServer, body: dict, param: str, words: str) -> None:
    route, fields = ("completions", {}) if "prompt" in body else ("chat/completions", {"messages": ASK})
    response = httpx.post(f"{server.api_url}/{route}", json={**fields, "max_tokens": 5, **body}, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and (error["param"] or "").startswith(param) and words in error["message"]


def test_langchain_bind_tools_and_structured_output(server: RunningServer) -> None:
    def llm(seed: int = 1) -> ChatOpenAI:
        return ChatOpenAI(base_url=server.api_url, api_key="unused", model="m", max_tokens=160, max_retries=0, seed=seed)

    def get_weather(city: str, unit: str) -> str:
        """Current weather in a city, in celsius or fahrenheit."""
        return "sunny"

    message = first_finished(
        lambda seed: llm(seed).bind_tools([get_weather], tool_choice="get_weather").invoke("Weather in Oslo?"),
        finished=lambda message: message.response_metadata["finish_reason"] == "tool_calls",
        cut_off=lambda message: message.response_metadata["finish_reason"] == "length",
    )
    assert [call["name"] for call in message.tool_calls] == ["get_weather"]
    assert set(message.tool_calls[0]["args"]) == {"city", "unit"}

    class Verdict(BaseModel):
        correct: bool
        reason: str = Field(max_length=60)  # bounded, so that a rambling sample still ends within max_tokens

    verdict = llm().with_structured_output(Verdict).invoke("Is 17 prime? Answer as the schema says.")
    assert isinstance(verdict, Verdict)
