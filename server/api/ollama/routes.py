"""Ollama's routes: parse, delegate to the engine, answer in Ollama's shapes (translate.py does the mapping).

Every error these routes answer is Ollama's `{"error": "message"}` with the status the OpenAI routes would
give; answers stream as NDJSON unless the request says `stream: false`. They are left out of /openapi.json:
Ollama documents its API itself, and the document describes the OpenAI API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from codebooga.server.api.body import read_body
from codebooga.server.api.errors import APIError, from_engine_error
from codebooga.server.api.ollama import translate
from codebooga.server.api.ollama.ndjson import ndjson_response, ollama_error
from codebooga.server.api.ollama.schemas import (
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    GenerateChunk,
    GenerateRequest,
    LoadedModel,
    LoadedModelList,
    ModelList,
    ShowRequest,
    ShowResponse,
    ToolCall,
    Version,
)
from codebooga.server.api.routes import engine_of
from codebooga.server.api.streaming import unless_disconnected
from codebooga.server.api.timing import GenerationClock
from codebooga.server.engine.chat import types as chat
from codebooga.server.engine.chat.session import start_chat
from codebooga.server.engine.engine import Engine
from codebooga.server.engine.errors import EngineError, InvalidRequest
from codebooga.server.engine.structured.answer_grammar import response_format_grammar
from codebooga.server.engine.types import EngineEvent, GenerationRequest, Grammar

OLLAMA_VERSION = "0.12.0"
"""The Ollama release whose API this imitates; clients refuse servers older than they need (Copilot: 0.6.4)."""


class OllamaRoute(APIRoute):
    """Errors as Ollama words them, whatever raised them (the body reader, the engine, a dependency)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except EngineError as error:
                return ollama_error(from_engine_error(error))
            except APIError as error:
                return ollama_error(error)

        return answer


root_router = APIRouter(route_class=OllamaRoute, include_in_schema=False)
"""`GET /`, `/api/version`: open, as /health is, so clients can find the server before they have a key."""
api_router = APIRouter(prefix="/api", route_class=OllamaRoute, include_in_schema=False)


@root_router.api_route("/", methods=["GET", "HEAD"])
async def is_running(request: Request) -> Response:
    """Ollama clients probe `GET /`; a browser (it asks for HTML) is sent on to the playground instead."""
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/ui", status_code=307)
    return PlainTextResponse("Ollama is running")


@root_router.get("/api/version")
async def version() -> JSONResponse:
    return JSONResponse(Version(version=OLLAMA_VERSION).wire())


def _model_path(request: Request) -> Path:
    return Path(request.app.state.settings.model)


@api_router.get("/tags")
async def tags(request: Request, engine: Engine = Depends(engine_of)) -> JSONResponse:
    entry = await asyncio.to_thread(translate.model_entry, engine, _model_path(request))
    return JSONResponse(ModelList(models=[entry]).wire())


@api_router.get("/ps")
async def loaded(request: Request, engine: Engine = Depends(engine_of)) -> JSONResponse:
    """The one model, loaded for as long as the server runs (`keep_alive` is ignored)."""
    entry = await asyncio.to_thread(translate.model_entry, engine, _model_path(request))
    running = LoadedModel(**entry.model_dump(), expires_at="9999-12-31T23:59:59Z", size_vram=0)
    return JSONResponse(LoadedModelList(models=[running]).wire())


@api_router.post("/show")
async def show(request: Request, engine: Engine = Depends(engine_of)) -> JSONResponse:
    """Any model name describes the served model, as the chat routes answer with it whatever name they get."""
    await read_body(request, ShowRequest)
    entry = await asyncio.to_thread(translate.model_entry, engine, _model_path(request))
    capabilities = ["completion"]
    if await asyncio.to_thread(_constrains_generation, engine):
        capabilities.append("tools")
    answer = ShowResponse(
        modelfile=f"# served by codebooga\nFROM {_model_path(request)}\n",
        parameters=translate.parameters(engine),
        template=engine.chat_template.source,
        details=entry.details,
        model_info=translate.model_info(engine),
        capabilities=capabilities,
        modified_at=entry.modified_at,
    )
    return JSONResponse(answer.wire())


def _constrains_generation(engine: Engine) -> bool:
    """Tool calls are listed only where the backend constrains generation with a grammar (what keeps every
    call valid); ExLlamaV2 does not yet."""
    try:
        engine.backend.check_grammar(Grammar('root ::= "{}"', param="tools"))
    except InvalidRequest:
        return False
    return True


@api_router.post("/chat")
async def chat_route(request: Request, engine: Engine = Depends(engine_of)) -> Response:
    clock = GenerationClock()
    body = await read_body(request, ChatRequest)
    translate.refuse_unsupported(body.model, body.think, None)
    model = translate.ollama_name(engine)
    if not body.messages:  # how clients load a model: nothing to generate
        return _loaded(body.stream, ChatChunk(model=model, created_at=translate.now(), message=AssistantMessage()))
    settings = translate.generation(engine, body.options)
    tools = translate.tool_functions(body.tools)
    if body.tool_choice == "required" and not tools:
        raise APIError(400, "tool_choice 'required' needs at least one tool in tools")
    events = await start_chat(
        engine,
        chat.ChatRequest(
            request_id=request.state.request_id,
            messages=translate.template_messages(body.messages),
            sampling=settings.sampling,
            max_tokens=settings.max_tokens,
            stop=settings.stop,
            tools=tools,
            tool_choice=body.tool_choice if tools else "none",
            response_format=translate.response_format(body.format),
        ),
    )
    pieces = translate.answer_pieces(events, clock)

    def chunk(piece: translate.Piece) -> ChatChunk:
        if isinstance(piece, str):
            return ChatChunk(model=model, created_at=translate.now(), message=AssistantMessage(content=piece))
        if isinstance(piece, list):
            return ChatChunk(model=model, created_at=translate.now(), message=AssistantMessage(tool_calls=piece))
        return ChatChunk(
            model=model,
            created_at=translate.now(),
            message=AssistantMessage(),
            **translate.final_counters(piece, clock),
        )

    if body.stream:
        return ndjson_response(_lines(pieces, chunk), request)
    text, calls, finished = await unless_disconnected(request, _collect(pieces))
    answer = chunk(finished)
    answer.message = AssistantMessage(content=text, tool_calls=calls or None)
    return JSONResponse(answer.wire())


@api_router.post("/generate")
async def generate_route(request: Request, engine: Engine = Depends(engine_of)) -> Response:
    clock = GenerationClock()
    body = await read_body(request, GenerateRequest)
    translate.refuse_unsupported(body.model, body.think, body.images)
    if body.suffix:
        raise APIError(
            400, "suffix (fill-in-the-middle) is not supported: this model family was not trained for infilling"
        )
    if body.template:
        raise APIError(400, "template is not supported; format the prompt yourself and send raw: true")
    if body.context:
        raise APIError(
            400, "context (the token ids of an earlier answer) is not supported; send the conversation to /api/chat"
        )
    model = translate.ollama_name(engine)
    if not body.prompt:  # how clients load a model: nothing to generate
        return _loaded(body.stream, GenerateChunk(model=model, created_at=translate.now()))
    settings = translate.generation(engine, body.options)
    requested_format = translate.response_format(body.format)
    if body.raw:
        events = await _raw_generation(engine, body, settings, requested_format, request.state.request_id)
    else:
        messages = ([{"role": "system", "content": body.system}] if body.system else []) + [
            {"role": "user", "content": body.prompt}
        ]
        events = await start_chat(
            engine,
            chat.ChatRequest(
                request_id=request.state.request_id,
                messages=tuple(messages),
                sampling=settings.sampling,
                max_tokens=settings.max_tokens,
                stop=settings.stop,
                tool_choice="none",
                response_format=requested_format,
            ),
        )
    pieces = translate.answer_pieces(events, clock)

    def chunk(piece: translate.Piece) -> GenerateChunk:
        if isinstance(piece, translate.Finished):
            return GenerateChunk(model=model, created_at=translate.now(), **translate.final_counters(piece, clock))
        return GenerateChunk(model=model, created_at=translate.now(), response=piece if isinstance(piece, str) else "")

    if body.stream:
        return ndjson_response(_lines(pieces, chunk), request)
    text, _, finished = await unless_disconnected(request, _collect(pieces))
    answer = chunk(finished)
    answer.response = text
    return JSONResponse(answer.wire())


async def _raw_generation(
    engine: Engine,
    body: GenerateRequest,
    settings: translate.Generation,
    requested_format: chat.ResponseFormat | None,
    request_id: str,
) -> AsyncGenerator[EngineEvent, None]:
    """`raw: true`: the prompt goes to the model as it is, without the chat template."""
    tokens = await asyncio.to_thread(engine.text_prompt, body.prompt, "prompt")
    grammar = await asyncio.to_thread(response_format_grammar, requested_format) if requested_format else None
    return await engine.generate(
        GenerationRequest(
            request_id=request_id,
            prompt_tokens=tokens,
            sampling=settings.sampling,
            max_tokens=settings.max_tokens,
            stop=settings.stop,
            grammar=grammar,
        )
    )


def _loaded(stream: bool, answer: ChatChunk | GenerateChunk) -> Response:
    """The answer to a request with nothing to generate: the model is loaded (it always is)."""
    answer.done, answer.done_reason = True, "load"
    if stream:
        return PlainTextResponse(answer.model_dump_json(exclude_none=True) + "\n", media_type="application/x-ndjson")
    return JSONResponse(answer.wire())


async def _lines(
    pieces: AsyncIterator[translate.Piece], chunk: Callable[[translate.Piece], ChatChunk | GenerateChunk]
) -> AsyncIterator[str]:
    async for piece in pieces:
        yield chunk(piece).model_dump_json(exclude_none=True)


async def _collect(pieces: AsyncIterator[translate.Piece]) -> tuple[str, list[ToolCall], translate.Finished]:
    text, calls = "", []
    async for piece in pieces:
        if isinstance(piece, str):
            text += piece
        elif isinstance(piece, list):
            calls.extend(piece)
        else:
            return text, calls, piece
    raise RuntimeError("the generation ended without its closing event")
