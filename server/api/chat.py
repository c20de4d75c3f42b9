"""POST /v1/chat/completions: messages through the chat template, answers in the chat shapes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable

from fastapi import Request
from fastapi.responses import Response

from codebooga.server.api.errors import APIError
from codebooga.server.api.generation import check_generation_size, collect, new_id, resolve_sampling, usage_of
from codebooga.server.api.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChatLogprobs,
    ChatTokenLogprob,
    TopLogprob,
)
from codebooga.server.api.streaming import chunk_json, sse_response, unless_disconnected
from codebooga.server.engine.engine import Engine
from codebooga.server.engine.types import (
    ChoiceFinished,
    EngineEvent,
    GenerationFinished,
    GenerationRequest,
    TextDelta,
    TokenLogprob,
)
from codebooga.server.engine.types import Usage as EngineUsage


def _chat_logprobs(entries: Iterable[TokenLogprob]) -> ChatLogprobs:
    return ChatLogprobs(
        content=[
            ChatTokenLogprob(
                token=entry.token,
                logprob=entry.logprob,
                bytes=list(entry.token_bytes),
                top_logprobs=[
                    TopLogprob(token=top.token, logprob=top.logprob, bytes=list(top.token_bytes)) for top in entry.top
                ],
            )
            for entry in entries
        ]
    )


async def create_chat_completion(
    engine: Engine, body: ChatCompletionRequest, request: Request, ping_seconds: float
) -> ChatCompletion | Response:
    if body.top_logprobs is not None and not body.logprobs:
        raise APIError(400, "top_logprobs requires logprobs to be true", param="top_logprobs")
    messages = [
        {"role": "system" if message.role == "developer" else message.role, "content": message.text()}
        for message in body.messages
    ]
    check_generation_size(engine, 1, body.n, body.token_limit, _token_limit_param(body))
    sampling = resolve_sampling(engine, body)
    prompt = await asyncio.to_thread(engine.chat_prompt, messages)
    events = await engine.generate(
        GenerationRequest(
            request_id=request.state.request_id,
            prompt_tokens=prompt.tokens,
            sampling=sampling,
            max_tokens=body.token_limit,
            stop=prompt.stop + body.stop_strings(),
            n=body.n,
            top_logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        ),
        prompt_param="messages",
    )
    completion_id, created, model = new_id("chatcmpl"), int(time.time()), engine.info.model_id
    if body.stream:
        chunks = _stream_chunks(events, body, completion_id, created, model)
        return sse_response(chunks, request, ping_seconds)

    collected = await unless_disconnected(request, collect([events], body.n))
    choices = [
        ChatChoice(
            index=index,
            message=AssistantMessage(content=choice.text),
            logprobs=_chat_logprobs(choice.logprobs) if body.logprobs else None,
            finish_reason=choice.finish_reason,
        )
        for index, choice in sorted(collected.choices.items())
    ]
    return ChatCompletion(id=completion_id, created=created, model=model, choices=choices, usage=usage_of(collected.usage))


def _token_limit_param(body: ChatCompletionRequest) -> str:
    return "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"


async def _stream_chunks(
    events: AsyncIterator[EngineEvent], body: ChatCompletionRequest, completion_id: str, created: int, model: str
) -> AsyncIterator[str]:
    def chunk(choices: list[ChatChunkChoice], usage: EngineUsage | None = None) -> str:
        completion = ChatCompletionChunk(
            id=completion_id, created=created, model=model, choices=choices, usage=usage_of(usage) if usage else None
        )
        return chunk_json(completion, body.include_usage)

    for index in range(body.n):
        yield chunk([ChatChunkChoice(index=index, delta=ChatDelta(role="assistant", content=""))])
    async for event in events:
        if isinstance(event, TextDelta):
            logprobs = _chat_logprobs(event.logprobs) if body.logprobs else None
            if event.text or logprobs:
                yield chunk([ChatChunkChoice(index=event.choice, delta=ChatDelta(content=event.text), logprobs=logprobs)])
        elif isinstance(event, ChoiceFinished):
            yield chunk([ChatChunkChoice(index=event.choice, delta=ChatDelta(), finish_reason=event.finish_reason)])
        elif isinstance(event, GenerationFinished) and body.include_usage:
            yield chunk([], event.usage)
