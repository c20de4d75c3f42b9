"""Running a chat request: plan the prompt and grammar, generate, and turn each choice's text into content and
tool calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from codebooga.server.engine.chat.tool_calls import ToolCallReader
from codebooga.server.engine.chat.tool_prompt import fold_tools, template_tools
from codebooga.server.engine.chat.types import (
    ChatChoiceFinished,
    ChatChoiceResult,
    ChatEvent,
    ChatRequest,
    ChatResult,
    ToolCall,
    ToolCallDelta,
)
from codebooga.server.engine.engine import ChatPrompt, Engine
from codebooga.server.engine.errors import InvalidRequest
from codebooga.server.engine.structured.answer_grammar import chat_grammar
from codebooga.server.engine.types import (
    ChoiceFinished,
    EngineEvent,
    GenerationFinished,
    GenerationRequest,
    Grammar,
    TextDelta,
    Usage,
)


@dataclass(frozen=True)
class _Plan:
    prompt: ChatPrompt
    grammar: Grammar | None
    reads_calls: bool
    content_first: bool


def _plan(engine: Engine, request: ChatRequest) -> _Plan:
    """Prompt and grammar for the request: CPU work proportional to it, run off the event loop."""
    calls_possible = bool(request.tools) and request.tool_choice != "none"
    if calls_possible and request.top_logprobs is not None:
        raise InvalidRequest("logprobs are not supported together with tools; drop logprobs", param="logprobs")
    grammar = chat_grammar(request.tools, request.tool_choice, request.parallel_tool_calls, request.response_format)
    if engine.chat_template.describes_tools:
        prompt = engine.chat_prompt(request.messages, template_tools(request.tools))
    else:
        prompt = engine.chat_prompt(fold_tools(request.messages, request.tools))
    return _Plan(
        prompt=prompt,
        grammar=grammar,
        reads_calls=calls_possible,
        content_first=request.tool_choice == "auto",
    )


async def start_chat(engine: Engine, request: ChatRequest) -> AsyncIterator[ChatEvent]:
    """Validate and queue the request (raising `InvalidRequest`/`Overloaded` before any output), then return
    its events: `TextDelta` for content, `ToolCallDelta` for calls, `ChatChoiceFinished` per choice and one
    `GenerationFinished`. Closing the iterator cancels the generation."""
    plan = await asyncio.to_thread(_plan, engine, request)
    events = await engine.generate(
        GenerationRequest(
            request_id=request.request_id,
            prompt_tokens=plan.prompt.tokens,
            sampling=request.sampling,
            max_tokens=request.max_tokens,
            stop=plan.prompt.stop + request.stop,
            n=request.n,
            top_logprobs=request.top_logprobs,
            grammar=plan.grammar,
        ),
        prompt_param="messages",
    )
    if plan.reads_calls:
        return _with_tool_calls(events, request.n, plan.content_first)
    return _plain(events)


async def _plain(events: AsyncGenerator[EngineEvent, None]) -> AsyncIterator[ChatEvent]:
    try:
        async for event in events:
            if isinstance(event, ChoiceFinished):
                yield ChatChoiceFinished(event.choice, event.finish_reason)
            else:
                yield event
    finally:
        await events.aclose()  # closing this stream cancels the generation at once


async def _with_tool_calls(
    events: AsyncGenerator[EngineEvent, None], n: int, content_first: bool
) -> AsyncIterator[ChatEvent]:
    readers = [ToolCallReader(choice, content_first) for choice in range(n)]
    try:
        async for event in events:
            if isinstance(event, TextDelta):
                for output in readers[event.choice].feed(event.text):
                    yield output
            elif isinstance(event, ChoiceFinished):
                reader = readers[event.choice]
                for output in reader.finish():
                    yield output
                ended_by_model = event.finish_reason == "stop" and reader.completed_calls
                yield ChatChoiceFinished(event.choice, "tool_calls" if ended_by_model else event.finish_reason)
            else:
                yield event
    finally:
        await events.aclose()


async def collect_chat(events: AsyncIterator[ChatEvent], n: int) -> ChatResult:
    """Run a chat's events to the end into whole choices (content, logprobs, tool calls, finish reason)."""
    choices = {index: ChatChoiceResult() for index in range(n)}
    usage = Usage(0, 0)
    async for event in events:
        if isinstance(event, TextDelta):
            choice = choices[event.choice]
            choice.text += event.text
            choice.logprobs.extend(event.logprobs)
        elif isinstance(event, ToolCallDelta):
            calls = choices[event.choice].tool_calls
            if event.index == len(calls):
                calls.append(ToolCall(id=event.id or "", name=event.name or "", arguments=""))
            calls[event.index].arguments += event.arguments
        elif isinstance(event, ChatChoiceFinished):
            choices[event.choice].finish_reason = event.finish_reason
        elif isinstance(event, GenerationFinished):
            usage = event.usage
    return ChatResult(choices, usage)
