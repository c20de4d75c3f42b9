"""POST /completion: llama-server's text completion, translated to and from an engine request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from codebooga.server.api.errors import APIError
from codebooga.server.api.generation import check_generation_size, llama_cpp_sampling
from codebooga.server.api.llama_server.schemas import CompletionChunk, CompletionRequest, Timings
from codebooga.server.api.streaming import sse_response, unless_disconnected
from codebooga.server.api.timing import GenerationClock
from codebooga.server.engine.chat.types import ResponseFormat
from codebooga.server.engine.engine import Engine
from codebooga.server.engine.structured.answer_grammar import response_format_grammar
from codebooga.server.engine.types import (
    ChoiceFinished,
    EngineEvent,
    GenerationFinished,
    GenerationRequest,
    Grammar,
    TextDelta,
    Usage,
)


async def create_completion(
    engine: Engine, body: CompletionRequest, request: Request, ping_seconds: float
) -> Response:
    clock = GenerationClock()
    if body.n_predict == 0:
        raise APIError(400, "n_predict must be at least 1, or -1 for up to the context", param="n_predict")
    max_tokens = body.n_predict if body.n_predict > 0 else None
    check_generation_size(engine, 1, 1, max_tokens, "n_predict")
    sampling = llama_cpp_sampling(engine, body, None if body.seed == -1 else body.seed)
    tokens = await asyncio.to_thread(engine.text_prompt, body.prompt, "prompt")
    events = await engine.generate(
        GenerationRequest(
            request_id=request.state.request_id,
            prompt_tokens=tokens,
            sampling=sampling,
            max_tokens=max_tokens,
            stop=tuple(stop for stop in body.stop if stop),
            grammar=await asyncio.to_thread(_grammar, body),
        )
    )
    model = engine.info.model_id
    if body.stream:
        return sse_response(_stream(events, clock, model), request, ping_seconds, end_with_done=False)
    text, ending, usage = await unless_disconnected(request, _collect(events, clock))
    answer = _last(model, ending, usage, clock)
    answer.content = text
    return JSONResponse(answer.model_dump(exclude_none=True))


def _grammar(body: CompletionRequest) -> Grammar | None:
    """`grammar` (GBNF, checked by the backend before any work) or `json_schema`, as llama-server takes them."""
    if body.grammar and body.json_schema is not None:
        raise APIError(400, "send either grammar or json_schema, not both", param="grammar")
    if body.grammar:
        return Grammar(body.grammar, param="grammar")
    if body.json_schema is not None:
        return response_format_grammar(ResponseFormat("json_schema", body.json_schema))
    return None


async def _stream(events: AsyncIterator[EngineEvent], clock: GenerationClock, model: str) -> AsyncIterator[str]:
    ending = ChoiceFinished(0, "stop")
    async for event in events:
        if isinstance(event, TextDelta) and event.text:
            clock.token()
            yield CompletionChunk(content=event.text, stop=False).wire()
        elif isinstance(event, ChoiceFinished):
            ending = event
        elif isinstance(event, GenerationFinished):
            clock.end()
            yield _last(model, ending, event.usage, clock).wire()


async def _collect(
    events: AsyncIterator[EngineEvent], clock: GenerationClock
) -> tuple[str, ChoiceFinished, Usage]:
    text, ending = "", ChoiceFinished(0, "stop")
    async for event in events:
        if isinstance(event, TextDelta):
            clock.token()
            text += event.text
        elif isinstance(event, ChoiceFinished):
            ending = event
        elif isinstance(event, GenerationFinished):
            clock.end()
            return text, ending, event.usage
    raise RuntimeError("the generation ended without its closing event")


def _last(model: str, ending: ChoiceFinished, usage: Usage, clock: GenerationClock) -> CompletionChunk:
    """The closing object: why it stopped (end-of-text token, a stop string, `n_predict` or the context), the
    counts, and the timings."""
    if ending.finish_reason == "length":
        stop_type = "limit"
    else:
        stop_type = "word" if ending.by_stop_string else "eos"
    return CompletionChunk(
        content="",
        stop=True,
        model=model,
        tokens_predicted=usage.completion_tokens,
        tokens_evaluated=usage.prompt_tokens,
        stop_type=stop_type,
        stopped_eos=stop_type == "eos",
        stopped_limit=stop_type == "limit",
        stopped_word=stop_type == "word",
        truncated=False,
        tokens_cached=0,
        timings=_timings(usage, clock),
    )


def _timings(usage: Usage, clock: GenerationClock) -> Timings:
    prompt_ms, predicted_ms = clock.prompt_ns / 1e6, clock.generation_ns / 1e6
    return Timings(
        prompt_n=usage.prompt_tokens,
        prompt_ms=prompt_ms,
        prompt_per_token_ms=prompt_ms / max(usage.prompt_tokens, 1),
        prompt_per_second=usage.prompt_tokens / prompt_ms * 1000 if prompt_ms else 0.0,
        predicted_n=usage.completion_tokens,
        predicted_ms=predicted_ms,
        predicted_per_token_ms=predicted_ms / max(usage.completion_tokens, 1),
        predicted_per_second=usage.completion_tokens / predicted_ms * 1000 if predicted_ms else 0.0,
    )
