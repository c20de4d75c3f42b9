"""The chat request and its events, as the engine sees them: free of any wire protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from codebooga.server.engine.types import GenerationFinished, SamplingParams, TextDelta, TokenLogprob, Usage

ChatFinishReason = Literal["stop", "length", "tool_calls"]


@dataclass(frozen=True)
class ToolFunction:
    """A function the model may call; `parameters` is the JSON schema its arguments must satisfy."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class NamedToolChoice:
    """`tool_choice` naming one function: the answer is exactly one call of it."""

    name: str


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


@dataclass(frozen=True)
class ResponseFormat:
    """`json_object`: any JSON object; `json_schema`: JSON valid against `schema`."""

    kind: Literal["json_object", "json_schema"]
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ChatRequest:
    """One chat generation. `messages` are template-ready mappings: `role`, `content` (text), and for assistant
    turns `tool_calls` ([{"id", "type": "function", "function": {"name", "arguments": <object>}}]), for tool
    results `tool_call_id` and `name`."""

    request_id: str
    messages: tuple[Mapping[str, Any], ...]
    sampling: SamplingParams
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    n: int = 1
    top_logprobs: int | None = None
    tools: tuple[ToolFunction, ...] = ()
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None


@dataclass(frozen=True)
class ToolCallDelta:
    """Part of a tool call, streamed as OpenAI streams it: the first delta of call `index` carries its `id` and
    `name` (and no arguments), later ones carry fragments of the arguments' JSON text."""

    choice: int
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class ChatChoiceFinished:
    choice: int
    finish_reason: ChatFinishReason


ChatEvent = TextDelta | ToolCallDelta | ChatChoiceFinished | GenerationFinished


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str
    """The arguments as JSON text, exactly as generated (always a JSON object valid against the tool's schema)."""


@dataclass
class ChatChoiceResult:
    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: ChatFinishReason | None = None


@dataclass
class ChatResult:
    choices: dict[int, ChatChoiceResult]
    usage: Usage
