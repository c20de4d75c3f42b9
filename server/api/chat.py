"""POST /v1/chat/completions: OpenAI's chat shapes translated to a `ChatRequest` and its events back."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from codebooga.server.api.errors import APIError
from codebooga.server.api.generation import (
    check_generation_size,
    engine_response_format,
    new_id,
    resolve_sampling,
    usage_of,
)
from codebooga.server.api.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChatLogprobs,
    ChatMessage,
    ChatTokenLogprob,
    FunctionCallDelta,
    NamedToolChoice,
    ResponseFunctionCall,
    ResponseToolCall,
    ToolCallChunk,
    TopLogprob,
)
from codebooga.server.api.streaming import TextChunks, chunk_json, sse_response, unless_disconnected
from codebooga.server.engine.chat import types as chat
from codebooga.server.engine.chat.session import collect_chat, start_chat
from codebooga.server.engine.engine import Engine
from codebooga.server.engine.types import GenerationFinished, TextDelta, TokenLogprob
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
    check_generation_size(engine, 1, body.n, body.token_limit, _token_limit_param(body))
    chat_request = chat.ChatRequest(
        request_id=request.state.request_id,
        messages=template_messages(body.messages),
        sampling=resolve_sampling(engine, body),
        max_tokens=body.token_limit,
        stop=body.stop_strings(),
        n=body.n,
        top_logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        **tool_fields(body),
        response_format=engine_response_format(body.response_format),
    )
    events = await start_chat(engine, chat_request)
    completion_id, created, model = new_id("chatcmpl"), int(time.time()), engine.info.model_id
    if body.stream:
        chunks = _stream_chunks(events, body, completion_id, created, model)
        return sse_response(chunks, request, ping_seconds)

    result = await unless_disconnected(request, collect_chat(events, body.n))
    choices = [
        ChatChoice(
            index=index,
            message=AssistantMessage(
                content=choice.text if choice.text or not choice.tool_calls else None,
                tool_calls=[
                    ResponseToolCall(id=call.id, function=ResponseFunctionCall(name=call.name, arguments=call.arguments))
                    for call in choice.tool_calls
                ]
                or None,
            ),
            logprobs=_chat_logprobs(choice.logprobs) if body.logprobs else None,
            finish_reason=choice.finish_reason,
        )
        for index, choice in sorted(result.choices.items())
    ]
    return ChatCompletion(id=completion_id, created=created, model=model, choices=choices, usage=usage_of(result.usage))


def template_messages(messages: list[ChatMessage]) -> tuple[dict[str, Any], ...]:
    """The messages as chat templates read them: `developer` is a system turn, content is text, an earlier
    call's arguments are an object (templates write them with `tojson`), a tool result names its function."""
    rendered: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for position, message in enumerate(messages):
        entry: dict[str, Any] = {
            "role": "system" if message.role == "developer" else message.role,
            "content": message.text(),
        }
        if message.tool_calls:
            if message.role != "assistant":
                raise APIError(400, "only assistant messages carry tool_calls", param=f"messages[{position}].tool_calls")
            entry["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.function.name,
                        "arguments": _call_arguments(call.function.arguments, f"messages[{position}].tool_calls[{index}]"),
                    },
                }
                for index, call in enumerate(message.tool_calls)
            ]
            call_names.update((call.id, call.function.name) for call in message.tool_calls)
        if message.role == "tool":
            entry["tool_call_id"] = message.tool_call_id
            name = message.name or call_names.get(message.tool_call_id or "")
            if name:
                entry["name"] = name
        rendered.append(entry)
    return tuple(rendered)


def _call_arguments(arguments: str, param: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError as error:
        raise APIError(400, f"the call's arguments are not valid JSON: {error}", param=f"{param}.function.arguments") from error
    if not isinstance(value, dict):
        raise APIError(400, "the call's arguments must be a JSON object", param=f"{param}.function.arguments")
    return value


def tool_fields(body: ChatCompletionRequest) -> dict[str, Any]:
    """`tools`, `tool_choice` and `parallel_tool_calls` as the engine takes them; a choice naming a function
    that is not among the tools, or demanding a call without tools, is refused."""
    tools = tuple(
        chat.ToolFunction(
            name=tool.function.name,
            description=tool.function.description,
            parameters=tool.function.parameters or {"type": "object", "properties": {}},
        )
        for tool in body.tools or ()
    )
    choice = body.tool_choice or ("auto" if tools else "none")
    if isinstance(choice, NamedToolChoice):
        names = [tool.name for tool in tools]
        if choice.function.name not in names:
            raise APIError(
                400,
                f"tool_choice names '{choice.function.name}', which is not among the tools ({', '.join(names) or 'none sent'})",
                param="tool_choice",
            )
        return {"tools": tools, "tool_choice": chat.NamedToolChoice(choice.function.name), "parallel_tool_calls": body.parallel_tool_calls}
    if choice == "required" and not tools:
        raise APIError(400, "tool_choice 'required' needs at least one tool in tools", param="tool_choice")
    return {"tools": tools, "tool_choice": choice, "parallel_tool_calls": body.parallel_tool_calls}


def _token_limit_param(body: ChatCompletionRequest) -> str:
    return "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"


async def _stream_chunks(
    events: AsyncIterator[chat.ChatEvent], body: ChatCompletionRequest, completion_id: str, created: int, model: str
) -> AsyncIterator[str]:
    def chunk(choices: list[ChatChunkChoice], usage: EngineUsage | None = None) -> str:
        completion = ChatCompletionChunk(
            id=completion_id, created=created, model=model, choices=choices, usage=usage_of(usage) if usage else None
        )
        return chunk_json(completion, body.include_usage)

    def text_chunks(index: int) -> TextChunks:
        return TextChunks(lambda text: chunk([ChatChunkChoice(index=index, delta=ChatDelta(content=text))]))

    plain_text = {index: text_chunks(index) for index in range(body.n)}
    for index in range(body.n):
        yield chunk([ChatChunkChoice(index=index, delta=ChatDelta(role="assistant", content=""))])
    async for event in events:
        if isinstance(event, TextDelta):
            if body.logprobs:
                logprobs = _chat_logprobs(event.logprobs)
                yield chunk([ChatChunkChoice(index=event.choice, delta=ChatDelta(content=event.text), logprobs=logprobs)])
            elif event.text:
                yield plain_text[event.choice](event.text)
        elif isinstance(event, chat.ToolCallDelta):
            call = ToolCallChunk(
                index=event.index,
                id=event.id,
                type="function" if event.id else None,
                function=FunctionCallDelta(name=event.name, arguments=event.arguments if event.id is None else ""),
            )
            yield chunk([ChatChunkChoice(index=event.choice, delta=ChatDelta(tool_calls=[call]))])
        elif isinstance(event, chat.ChatChoiceFinished):
            yield chunk([ChatChunkChoice(index=event.choice, delta=ChatDelta(), finish_reason=event.finish_reason)])
        elif isinstance(event, GenerationFinished) and body.include_usage:
            yield chunk([], event.usage)
