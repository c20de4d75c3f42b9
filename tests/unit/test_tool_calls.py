"""Reading tool calls out of streamed text: the same calls and content however the text is split."""

from __future__ import annotations

import json

import pytest

from codebooga.server.engine.chat.tool_calls import ToolCallReader
from codebooga.server.engine.chat.types import ToolCallDelta
from codebooga.server.engine.types import TextDelta

TWO_CALLS = (
    '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}</tool_call>\n'
    '<tool_call>{"name":"search","arguments": {"query": "braces } and ] and \\" and </tool_call> in a string",'
    ' "filters": [{"a": [1, 2]}, {}]}}</tool_call>'
)


def read(text: str, pieces: list[int], content_first: bool) -> tuple[str, list[dict[str, str]], int, list[ToolCallDelta]]:
    """Feed `text` cut at `pieces`; returns content, whole calls, completed count and the raw call deltas."""
    reader = ToolCallReader(0, content_first)
    events = []
    start = 0
    for end in [*pieces, len(text)]:
        events.extend(reader.feed(text[start:end]))
        start = end
    events.extend(reader.finish())
    content = "".join(event.text for event in events if isinstance(event, TextDelta))
    deltas = [event for event in events if isinstance(event, ToolCallDelta)]
    calls: list[dict[str, str]] = []
    for delta in deltas:
        if delta.id is not None:
            calls.append({"id": delta.id, "name": delta.name or "", "arguments": ""})
        else:
            calls[delta.index]["arguments"] += delta.arguments
    return content, calls, reader.completed_calls, deltas


@pytest.mark.parametrize("cut", range(1, len(TWO_CALLS)))
def test_calls_read_the_same_at_every_split(cut: int) -> None:
    content, calls, completed, deltas = read(TWO_CALLS, [cut], content_first=False)
    assert content == "" and completed == 2
    assert [call["name"] for call in calls] == ["get_weather", "search"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris", "unit": "c"}
    assert json.loads(calls[1]["arguments"])["query"] == 'braces } and ] and " and </tool_call> in a string'
    assert calls[0]["id"] != calls[1]["id"] and all(call["id"].startswith("call_") for call in calls)
    first_deltas = [delta for delta in deltas if delta.id is not None]
    assert all(delta.arguments == "" and delta.name for delta in first_deltas)  # id and name come first, alone


def test_token_by_token_streaming_matches_whole_text() -> None:
    whole = read(TWO_CALLS, [], content_first=False)
    one_by_one = read(TWO_CALLS, list(range(1, len(TWO_CALLS))), content_first=False)
    assert [(c["name"], c["arguments"]) for c in whole[1]] == [(c["name"], c["arguments"]) for c in one_by_one[1]]


@pytest.mark.parametrize("cut", range(1, 40))
def test_content_before_a_call_is_kept_and_a_partial_opening_held_back(cut: int) -> None:
    text = 'Let me check. <tool_ <tool_call>{"name": "f", "arguments": {}}</tool_call>'
    content, calls, completed, _ = read(text, [cut], content_first=True)
    assert content == "Let me check. <tool_ " and completed == 1
    assert calls[0]["name"] == "f" and calls[0]["arguments"] == "{}"


def test_plain_text_answer_with_a_lookalike_ending_is_all_content() -> None:
    content, calls, completed, _ = read("No call needed: <tool_", [5, 18], content_first=True)
    assert content == "No call needed: <tool_" and calls == [] and completed == 0


def test_a_cut_off_call_is_not_counted_as_completed() -> None:
    _, calls, completed, _ = read('<tool_call>{"name": "f", "arguments": {"x": "abc', [], content_first=False)
    assert completed == 0 and calls[0]["arguments"] == '{"x": "abc'


def test_escaped_names_are_decoded() -> None:
    _, calls, _, _ = read('<tool_call>{"name": "a\\u0062c", "arguments": {}}</tool_call>', [], content_first=False)
    assert calls[0]["name"] == "abc"
