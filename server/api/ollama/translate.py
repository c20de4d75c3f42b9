"""Ollama's requests as engine requests, and the engine's events back as Ollama's answers."""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from codebooga.server.api.errors import APIError
from codebooga.server.api.generation import check_generation_size, llama_cpp_sampling
from codebooga.server.api.ollama.schemas import (
    CalledFunction,
    Format,
    Message,
    ModelDetails,
    ModelEntry,
    Options,
    ToolCall,
)
from codebooga.server.api.schemas import Tool
from codebooga.server.api.timing import GenerationClock
from codebooga.server.engine.chat import types as chat
from codebooga.server.engine.engine import Engine
from codebooga.server.engine.types import (
    ChoiceFinished,
    EngineEvent,
    GenerationFinished,
    SamplingParams,
    TextDelta,
    Usage,
)

DoneReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Generation:
    """What `options` asks of the engine."""

    sampling: SamplingParams
    max_tokens: int | None
    stop: tuple[str, ...]


def generation(engine: Engine, options: Options | None) -> Generation:
    """`options` mapped to the engine's sampling fields over the server's preset; `num_predict` -1/-2 (and
    unset) mean up to the context."""
    options = options or Options()
    if options.num_predict == 0:
        raise APIError(400, "options.num_predict must be at least 1, or -1 for up to the context", param="options")
    max_tokens = options.num_predict if options.num_predict is not None and options.num_predict > 0 else None
    check_generation_size(engine, 1, 1, max_tokens, "options.num_predict")
    stops = [options.stop] if isinstance(options.stop, str) else options.stop or []
    sampling = llama_cpp_sampling(engine, options, options.seed)
    return Generation(sampling, max_tokens, tuple(stop for stop in stops if stop))


def response_format(requested: Format | None) -> chat.ResponseFormat | None:
    """`format`: "json" is any JSON object, an object is the JSON schema the answer must satisfy."""
    if isinstance(requested, dict):
        return chat.ResponseFormat("json_schema", requested)
    return chat.ResponseFormat("json_object") if requested == "json" else None


def refuse_unsupported(model: str, think: bool | str | None, images: Sequence[str] | None) -> None:
    """Fields that would change the answer and that this model cannot honour: a 400, never silently dropped."""
    if think not in (None, False, "", "false"):
        raise APIError(400, f'"{model}" does not support thinking; leave think out or set it to false')
    if images:
        raise APIError(400, "images are not supported; this model reads text only")


def template_messages(messages: Sequence[Message]) -> tuple[dict[str, Any], ...]:
    """The messages as chat templates read them. Ollama's calls have no ids and its tool results name only the
    function, so calls get ids here and each result answers the oldest call not yet answered."""
    rendered: list[dict[str, Any]] = []
    unanswered: deque[tuple[str, str]] = deque()
    for position, message in enumerate(messages):
        if message.images:
            raise APIError(400, f"messages[{position}].images: images are not supported; this model reads text only")
        entry: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            if message.role != "assistant":
                raise APIError(400, f"messages[{position}]: only assistant messages carry tool_calls")
            entry["tool_calls"] = []
            for index, call in enumerate(message.tool_calls):
                call_id = f"call_{position}_{index}"
                function = {"name": call.function.name, "arguments": call.function.arguments}
                entry["tool_calls"].append({"id": call_id, "type": "function", "function": function})
                unanswered.append((call_id, call.function.name))
        if message.role == "tool":
            call_id, name = unanswered.popleft() if unanswered else ("", "")
            entry["tool_call_id"] = call_id
            if message.tool_name or name:
                entry["name"] = message.tool_name or name
        rendered.append(entry)
    return tuple(rendered)


def tool_functions(tools: Sequence[Tool] | None) -> tuple[chat.ToolFunction, ...]:
    return tuple(
        chat.ToolFunction(
            name=tool.function.name,
            description=tool.function.description,
            parameters=tool.function.parameters or {"type": "object", "properties": {}},
        )
        for tool in tools or ()
    )


# --- answers ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    reason: DoneReason
    usage: Usage


Piece = str | list[ToolCall] | Finished
"""Answer text, the calls the model made (once, whole, as Ollama sends them), then how it ended."""


async def answer_pieces(
    events: AsyncIterator[chat.ChatEvent] | AsyncIterator[EngineEvent], clock: GenerationClock
) -> AsyncIterator[Piece]:
    """One choice's events as Ollama answers them: text as it comes, the calls once the choice ends (their
    arguments as objects), then `Finished`."""
    calls: list[chat.ToolCall] = []
    reason: DoneReason = "stop"
    async for event in events:
        if isinstance(event, TextDelta):
            clock.token()
            if event.text:
                yield event.text
        elif isinstance(event, chat.ToolCallDelta):
            clock.token()
            if event.index == len(calls):
                calls.append(chat.ToolCall(id=event.id or "", name=event.name or "", arguments=""))
            calls[event.index].arguments += event.arguments
        elif isinstance(event, chat.ChatChoiceFinished | ChoiceFinished):
            reason = "length" if event.finish_reason == "length" else "stop"
            whole = _whole_calls(calls)
            if whole:
                yield whole
        elif isinstance(event, GenerationFinished):
            clock.end()
            yield Finished(reason, event.usage)


def _whole_calls(calls: list[chat.ToolCall]) -> list[ToolCall]:
    """The calls with their arguments as objects; a call cut short by `num_predict` is incomplete JSON and
    left out (the answer then ends with `done_reason: "length"`)."""
    whole = []
    for call in calls:
        try:
            arguments = json.loads(call.arguments)
        except json.JSONDecodeError:
            continue
        whole.append(ToolCall(function=CalledFunction(index=len(whole), name=call.name, arguments=arguments)))
    return whole


def final_counters(finished: Finished, clock: GenerationClock) -> dict[str, Any]:
    """The `done` object's fields: why it ended, tokens in and out, and the durations in nanoseconds."""
    return {
        "done": True,
        "done_reason": finished.reason,
        "total_duration": clock.total_ns,
        "load_duration": 0,
        "prompt_eval_count": finished.usage.prompt_tokens,
        "prompt_eval_duration": clock.prompt_ns,
        "eval_count": finished.usage.completion_tokens,
        "eval_duration": clock.generation_ns,
    }


def now() -> str:
    return _timestamp(datetime.now(UTC))


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- the model ----------------------------------------------------------------------------------------------


def ollama_name(engine: Engine) -> str:
    """The model's id with a tag, as Ollama names models (`name:tag`) and its clients expect."""
    model_id = engine.info.model_id
    return model_id if ":" in model_id else f"{model_id}:latest"


def model_entry(engine: Engine, path: Path) -> ModelEntry:
    files = [path] if path.is_file() else [item for item in path.rglob("*") if item.is_file()]
    size = sum(item.stat().st_size for item in files)
    modified = max((item.stat().st_mtime for item in files), default=0.0)
    # Ollama's digest names its manifest; hashing gigabytes of weights per request is out of the question, so
    # this one names the file by its path, size and modification time.
    digest = hashlib.sha256(f"{path.resolve()}:{size}:{modified}".encode()).hexdigest()
    name = ollama_name(engine)
    return ModelEntry(
        name=name,
        model=name,
        modified_at=_timestamp(datetime.fromtimestamp(modified, UTC)),
        size=size,
        digest=digest,
        details=model_details(engine),
    )


def model_details(engine: Engine) -> ModelDetails:
    info = engine.info
    return ModelDetails(
        format="gguf" if info.backend == "llama.cpp" else "exl2",
        family=info.architecture,
        families=[info.architecture],
        parameter_size=_parameter_size(info.parameter_count),
        quantization_level=info.quantization,
    )


def _parameter_size(count: int) -> str:
    """134515008 → "134.52M", as Ollama writes it; empty when unknown."""
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.2f}".rstrip("0").rstrip(".") + unit
    return str(count) if count else ""


def model_info(engine: Engine) -> dict[str, Any]:
    """`model_info` as /api/show gives it; `<arch>.context_length` is the context this server serves per
    request (clients size their prompts by it), not the training context."""
    info = engine.info
    return {
        "general.architecture": info.architecture,
        "general.parameter_count": info.parameter_count,
        f"{info.architecture}.context_length": info.context_length,
    }


def parameters(engine: Engine) -> str:
    """The server's default sampling and context as Modelfile `PARAMETER` lines."""
    defaults = engine.sampling(None, {}, seed=None, logit_bias={})
    lines = {
        "num_ctx": engine.info.context_length,
        "temperature": defaults.temperature,
        "top_p": defaults.top_p,
        "top_k": defaults.top_k,
        "min_p": defaults.min_p,
        "repeat_penalty": defaults.repetition_penalty,
        "repeat_last_n": defaults.penalty_last_n,
    }
    shown = {key: f"{value:g}" if isinstance(value, float) else str(value) for key, value in lines.items()}
    return "\n".join(f"{key:<15} {value}" for key, value in shown.items())
