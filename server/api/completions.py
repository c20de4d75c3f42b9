"""POST /v1/completions: OpenAI's legacy text completion, translated to and from engine requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response

from codebooga.server.api.errors import APIError
from codebooga.server.api.generation import (
    check_generation_size,
    collect,
    engine_response_format,
    new_id,
    resolve_sampling,
    usage_of,
)
from codebooga.server.api.schemas import Completion, CompletionChoice, CompletionLogprobs, CompletionRequest
from codebooga.server.api.streaming import TextChunks, chunk_json, merge_streams, sse_response, unless_disconnected
from codebooga.server.engine.engine import Engine
from codebooga.server.engine.structured.answer_grammar import response_format_grammar
from codebooga.server.engine.types import (
    ChoiceFinished,
    EngineEvent,
    GenerationFinished,
    GenerationRequest,
    TextDelta,
    TokenLogprob,
    Usage,
)


@dataclass(frozen=True)
class _Prompt:
    tokens: tuple[int, ...]
    text: str


def _prompts(engine: Engine, prompt: str | list[str] | list[int] | list[list[int]], echo: bool) -> list[_Prompt]:
    """Tokenize (or check) every prompt; CPU work proportional to the request, so run it off the event loop."""
    if isinstance(prompt, str):
        return [_Prompt(engine.text_prompt(prompt, "prompt"), prompt)]
    if all(isinstance(item, str) for item in prompt):
        return [_Prompt(engine.text_prompt(text, "prompt"), text) for text in prompt]  # type: ignore[arg-type]
    token_lists = [prompt] if all(isinstance(item, int) for item in prompt) else prompt
    prompts = []
    for tokens in token_lists:
        checked = engine.token_prompt(tokens, "prompt")  # type: ignore[arg-type]
        prompts.append(_Prompt(checked, engine.detokenize(checked) if echo else ""))
    return prompts


class _LogprobTable:
    """Builds the completions-shaped logprobs (tokens, token_logprobs, top_logprobs, text_offset)."""

    def __init__(self, start_offset: int) -> None:
        self.offset = start_offset

    def rows(self, entries: tuple[TokenLogprob, ...] | list[TokenLogprob]) -> CompletionLogprobs:
        table = CompletionLogprobs()
        for entry in entries:
            table.tokens.append(entry.token)
            table.token_logprobs.append(entry.logprob)
            top = {alternative.token: alternative.logprob for alternative in entry.top}
            top.setdefault(entry.token, entry.logprob)
            table.top_logprobs.append(top)
            table.text_offset.append(self.offset)
            self.offset += len(entry.token)
        return table


async def create_completion(engine: Engine, body: CompletionRequest, request: Request, ping_seconds: float) -> Completion | Response:
    if body.echo and body.logprobs is not None:
        raise APIError(400, "echo together with logprobs is not supported; drop one of them", param="echo")
    check_generation_size(engine, body.prompt_count, body.n, body.max_tokens, "max_tokens")
    sampling = resolve_sampling(engine, body)
    prompts = await asyncio.to_thread(_prompts, engine, body.prompt, body.echo)
    requested_format = engine_response_format(body.response_format)
    grammar = await asyncio.to_thread(response_format_grammar, requested_format) if requested_format else None
    request_id: str = request.state.request_id
    streams = [
        await engine.generate(
            GenerationRequest(
                request_id=request_id,
                prompt_tokens=prompt.tokens,
                sampling=sampling,
                max_tokens=body.max_tokens,
                stop=body.stop_strings(),
                n=body.n,
                top_logprobs=body.logprobs,
                grammar=grammar,
            )
        )
        for prompt in prompts
    ]
    completion_id, created = new_id("cmpl"), int(time.time())
    model = engine.info.model_id
    echoes = [prompt.text if body.echo else "" for prompt in prompts]
    if body.stream:
        chunks = _stream_chunks(streams, body, echoes, completion_id, created, model)
        return sse_response(chunks, request, ping_seconds)

    collected = await unless_disconnected(request, collect(streams, body.n))
    choices = []
    for index, choice in sorted(collected.choices.items()):
        echo = echoes[index // body.n]
        logprobs = _LogprobTable(len(echo)).rows(choice.logprobs) if body.logprobs is not None else None
        choices.append(
            CompletionChoice(index=index, text=echo + choice.text, logprobs=logprobs, finish_reason=choice.finish_reason)
        )
    return Completion(id=completion_id, created=created, model=model, choices=choices, usage=usage_of(collected.usage))


async def _stream_chunks(
    streams: list[AsyncIterator[EngineEvent]],
    body: CompletionRequest,
    echoes: list[str],
    completion_id: str,
    created: int,
    model: str,
) -> AsyncIterator[str]:
    def chunk(choices: list[CompletionChoice], usage: Usage | None = None) -> str:
        completion = Completion(
            id=completion_id,
            created=created,
            model=model,
            choices=choices,
            usage=usage_of(usage) if usage else None,
        )
        return chunk_json(completion, body.include_usage)

    def text_chunks(index: int) -> TextChunks:
        return TextChunks(lambda text: chunk([CompletionChoice(index=index, text=text)]))

    tables = {
        index: _LogprobTable(len(echoes[index // body.n])) for index in range(len(streams) * body.n)
    }
    plain_text = {index: text_chunks(index) for index in tables}
    for index in tables:
        if echoes[index // body.n]:
            yield chunk([CompletionChoice(index=index, text=echoes[index // body.n])])
    prompt_tokens = completion_tokens = 0
    async for stream_index, event in merge_streams(streams):
        if isinstance(event, TextDelta):
            index = stream_index * body.n + event.choice
            if body.logprobs is not None:
                logprobs = tables[index].rows(event.logprobs)
                yield chunk([CompletionChoice(index=index, text=event.text, logprobs=logprobs)])
            else:
                yield plain_text[index](event.text)
        elif isinstance(event, ChoiceFinished):
            index = stream_index * body.n + event.choice
            yield chunk([CompletionChoice(index=index, text="", finish_reason=event.finish_reason)])
        elif isinstance(event, GenerationFinished):
            prompt_tokens += event.usage.prompt_tokens
            completion_tokens += event.usage.completion_tokens
    if body.include_usage:
        yield chunk([], Usage(prompt_tokens, completion_tokens))
