"""Running a chat request: plan the prompt, generate, and turn each choice's text into content and tool calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from codebooga.server.engine.chat.types import (
    ChatChoiceFinished,
    ChatChoiceResult,
    ChatEvent,
    ChatRequest,
    ChatResult,
    ToolCall,
    ToolCallDelta,
)
from codebooga.server.engine.engine import Engine
from codebooga.server.engine.types import ChoiceFinished, GenerationFinished, GenerationRequest, TextDelta, Usage


async def start_chat(engine: Engine, request: ChatRequest) -> AsyncIterator[ChatEvent]:
    """Validate and queue the request (raising `InvalidRequest`/`Overloaded` before any output), then return
    its events: `TextDelta` for content, `ToolCallDelta` for calls, `ChatChoiceFinished` per choice and one
    `GenerationFinished`. Closing the iterator cancels the generation."""
    prompt = await asyncio.to_thread(engine.chat_prompt, request.messages)
    events = await engine.generate(
        GenerationRequest(
            request_id=request.request_id,
            prompt_tokens=prompt.tokens,
            sampling=request.sampling,
            max_tokens=request.max_tokens,
            stop=prompt.stop + request.stop,
            n=request.n,
            top_logprobs=request.top_logprobs,
        ),
        prompt_param="messages",
    )
    return _chat_events(events)


async def _chat_events(events: AsyncIterator[object]) -> AsyncIterator[ChatEvent]:
    async for event in events:
        if isinstance(event, ChoiceFinished):
            yield ChatChoiceFinished(event.choice, event.finish_reason)
        elif isinstance(event, (TextDelta, GenerationFinished)):
            yield event


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
