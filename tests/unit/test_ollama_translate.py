"""Ollama's request shapes as the engine takes them: history with calls and results, formats, sizes."""

from __future__ import annotations

from codebooga.server.api.ollama import translate
from codebooga.server.api.ollama.schemas import Message
from codebooga.server.engine.chat.types import ResponseFormat


def test_calls_get_ids_and_each_result_answers_the_oldest_open_call() -> None:
    history = [
        Message.model_validate({"role": "user", "content": "weather in Paris and Rome?"}),
        Message.model_validate(
            {
                "role": "assistant",
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    {"function": {"name": "get_time", "arguments": {"city": "Rome"}}},
                ],
            }
        ),
        Message.model_validate({"role": "tool", "content": "18 degrees"}),
        Message.model_validate({"role": "tool", "content": "noon", "tool_name": "get_time"}),
    ]
    rendered = translate.template_messages(history)
    calls = rendered[1]["tool_calls"]
    assert [call["function"] for call in calls] == [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_time", "arguments": {"city": "Rome"}},
    ]
    assert rendered[2] == {
        "role": "tool", "content": "18 degrees", "tool_call_id": calls[0]["id"], "name": "get_weather"
    }
    assert rendered[3]["tool_call_id"] == calls[1]["id"] and rendered[3]["name"] == "get_time"


def test_format_json_and_schema() -> None:
    assert translate.response_format(None) is None and translate.response_format("") is None
    assert translate.response_format("json") == ResponseFormat("json_object")
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert translate.response_format(schema) == ResponseFormat("json_schema", schema)
