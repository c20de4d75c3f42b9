"""What both completion endpoints share: ids, sampling resolution, collecting events into whole choices."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from codebooga.server.api.errors import APIError
from codebooga.server.api.limits import RequestLimits
from codebooga.server.api.llama_sampling import LlamaCppSampling
from codebooga.server.api.schemas import (
    ResponseFormatJsonObject,
    ResponseFormatJsonSchema,
    ResponseFormatText,
    SamplingRequest,
    Usage,
)
from codebooga.server.api.streaming import merge_streams
from codebooga.server.engine.chat.types import ResponseFormat
from codebooga.server.engine.engine import Engine
from codebooga.server.engine.types import (
    ChoiceFinished,
    EngineEvent,
    FinishReason,
    GenerationFinished,
    SamplingParams,
    TextDelta,
    TokenLogprob,
)
from codebooga.server.engine.types import Usage as EngineUsage


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def check_generation_size(engine: Engine, prompts: int, n: int, max_tokens: int | None, param: str) -> None:
    """Refuse up front a request for more tokens than all sequences hold together; an unset max_tokens counts
    as the context (the most one choice can generate). An n above the sequences is left to the backend, whose
    message names --parallel."""
    context = engine.info.context_length
    sequences = engine.stats().slots_total
    if n > sequences:
        return
    most = RequestLimits.generated_tokens(context, sequences)
    choices = prompts * n
    asked = choices * (max_tokens if max_tokens is not None else context)
    if asked > most:
        each = "max_tokens" if max_tokens is not None else f"max_tokens (unset: up to the context, {context})"
        raise APIError(
            400,
            f"{choices} choices × {each} asks for {asked} tokens, more than the {most} that this server's "
            f"{sequences} sequences of {context} tokens hold together; lower max_tokens, n or the number of prompts",
            param=param,
        )


def resolve_sampling(engine: Engine, body: SamplingRequest) -> SamplingParams:
    return engine.sampling(
        body.preset, body.sampling_fields(), seed=body.seed, logit_bias=body.token_bias()
    )


def llama_cpp_sampling(engine: Engine, fields: LlamaCppSampling, seed: int | None) -> SamplingParams:
    """llama.cpp-named fields over the server's preset; `repeat_last_n` -1 is the whole context."""
    last_n = fields.repeat_last_n
    sent = {
        "temperature": fields.temperature,
        "top_k": fields.top_k,
        "top_p": fields.top_p,
        "min_p": fields.min_p,
        "typical_p": fields.typical_p,
        "repetition_penalty": fields.repeat_penalty,
        "penalty_last_n": engine.info.context_length if last_n == -1 else last_n,
        "presence_penalty": fields.presence_penalty,
        "frequency_penalty": fields.frequency_penalty,
    }
    return engine.sampling(None, sent, seed=seed, logit_bias={})


def engine_response_format(
    requested: ResponseFormatText | ResponseFormatJsonObject | ResponseFormatJsonSchema | None,
) -> ResponseFormat | None:
    """`response_format` as the engine takes it; `text` (or nothing) means free text."""
    if isinstance(requested, ResponseFormatJsonObject):
        return ResponseFormat("json_object")
    if isinstance(requested, ResponseFormatJsonSchema):
        return ResponseFormat("json_schema", requested.json_schema.schema_ or {})
    return None


def usage_of(usage: EngineUsage) -> Usage:
    return Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


@dataclass
class CollectedChoice:
    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: FinishReason | None = None


@dataclass
class Collected:
    choices: dict[int, CollectedChoice]
    usage: EngineUsage


async def collect(streams: list[AsyncIterator[EngineEvent]], n: int) -> Collected:
    """Run streams to the end; choice k of stream i becomes choice i*n + k, as OpenAI numbers them."""
    choices: dict[int, CollectedChoice] = {index: CollectedChoice() for index in range(len(streams) * n)}
    prompt_tokens = completion_tokens = 0
    async for stream_index, event in merge_streams(streams):
        if isinstance(event, TextDelta):
            choice = choices[stream_index * n + event.choice]
            choice.text += event.text
            choice.logprobs.extend(event.logprobs)
        elif isinstance(event, ChoiceFinished):
            choices[stream_index * n + event.choice].finish_reason = event.finish_reason
        elif isinstance(event, GenerationFinished):
            prompt_tokens += event.usage.prompt_tokens
            completion_tokens += event.usage.completion_tokens
    return Collected(choices, EngineUsage(prompt_tokens, completion_tokens))
