"""HTTP routes: parse, delegate, return. All translation lives in chat.py / completions.py.

Bodies are read by `read_body` whatever Content-Type the client sent (curl -d sends a form type); the OpenAPI
document declares them (`request_body`) and every error status a route answers (`error_responses`).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from codebooga.server.api import prometheus
from codebooga.server.api.body import read_body
from codebooga.server.api.chat import create_chat_completion
from codebooga.server.api.completions import create_completion
from codebooga.server.api.errors import APIError
from codebooga.server.api.openapi import error_responses, event_stream_response, request_body
from codebooga.server.api.schemas import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    DetokenizeRequest,
    DetokenizeResponse,
    ErrorResponse,
    HealthStatus,
    ModelCard,
    ModelList,
    PresetCard,
    PresetList,
    TokenizeRequest,
    TokenizeResponse,
)
from codebooga.server.engine.engine import Engine

health_router = APIRouter()
openai_router = APIRouter(responses=error_responses(401, 503))
"""OpenAI's routes, served under /v1 and, for clients that leave the prefix out, at the root (app.py)."""
tokenizer_router = APIRouter(responses=error_responses(401, 503))
_BODY_ERRORS = error_responses(400, 408, 413)


async def engine_of(request: Request) -> Engine:
    engine: Engine | None = request.app.state.engine
    if engine is None:
        raise APIError(503, "the model is still loading; retry shortly", type="server_error", code="model_loading", headers={"Retry-After": "2"})
    return engine


def _ping_seconds(request: Request) -> float:
    return request.app.state.settings.sse_ping


@health_router.get(
    "/health",
    response_model=HealthStatus,
    responses={503: {"model": HealthStatus, "description": "The model is still loading."}},
)
async def health(request: Request) -> JSONResponse:
    engine: Engine | None = request.app.state.engine
    if engine is None:
        return JSONResponse({"status": "loading"}, status_code=503)
    stats = engine.stats()
    return JSONResponse(
        {
            "status": "ok",
            "model": engine.info.model_id,
            "backend": engine.info.backend,
            "context_length": engine.info.context_length,
            "chat_template": engine.chat_template.name,
            "preset": engine.default_preset,
            "slots_total": stats.slots_total,
            "slots_busy": stats.slots_busy,
            "queue_depth": stats.queue_depth,
            **stats.extra,
        }
    )


@health_router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={503: {"model": ErrorResponse, "description": "The model is still loading."}},
)
async def metrics(request: Request) -> PlainTextResponse:
    engine: Engine | None = request.app.state.engine
    if engine is None:
        raise APIError(503, "the model is still loading", type="server_error", code="model_loading")
    text = prometheus.render(engine.metrics, engine.stats(), request.app.state.http_responses)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


def _model_card(request: Request, engine: Engine) -> ModelCard:
    context = engine.info.context_length
    return ModelCard(
        id=engine.info.model_id, created=request.app.state.started, context_length=context, max_model_len=context
    )


@openai_router.get("/models", response_model=ModelList)
async def list_models(request: Request, engine: Engine = Depends(engine_of)) -> ModelList:
    return ModelList(data=[_model_card(request, engine)])


@openai_router.get("/presets", response_model=PresetList)
async def list_presets(engine: Engine = Depends(engine_of)) -> PresetList:
    """The presets a request's `preset` field can name (a codebooga extension); the playground's picker."""
    cards = [
        PresetCard(
            name=preset.name,
            description=preset.description,
            sampling=dict(preset.values),
            default=preset.name == engine.default_preset,
        )
        for preset in map(engine.presets.get, engine.presets.names)
    ]
    return PresetList(default=engine.default_preset, data=cards)


@openai_router.get("/models/{model_id:path}", response_model=ModelCard, responses=error_responses(404))
async def get_model(model_id: str, request: Request, engine: Engine = Depends(engine_of)) -> ModelCard:
    if model_id != engine.info.model_id:
        raise APIError(404, f"model '{model_id}' does not exist; this server serves '{engine.info.model_id}'", param="model", code="model_not_found")
    return _model_card(request, engine)


@openai_router.post(
    "/completions",
    response_model=Completion,
    openapi_extra=request_body(CompletionRequest),
    responses={
        **event_stream_response(Completion, "The completion, or with `stream: true` its chunks as server-sent events."),
        **_BODY_ERRORS,
    },
)
async def completions(request: Request, engine: Engine = Depends(engine_of)) -> Completion | Response:
    body = await read_body(request, CompletionRequest)
    return await create_completion(engine, body, request, _ping_seconds(request))


@openai_router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    openapi_extra=request_body(ChatCompletionRequest),
    responses={
        **event_stream_response(
            ChatCompletionChunk, "The answer, or with `stream: true` its chunks as server-sent events."
        ),
        **_BODY_ERRORS,
    },
)
async def chat_completions(request: Request, engine: Engine = Depends(engine_of)) -> ChatCompletion | Response:
    body = await read_body(request, ChatCompletionRequest)
    return await create_chat_completion(engine, body, request, _ping_seconds(request))


@tokenizer_router.post(
    "/tokenize", response_model=TokenizeResponse, openapi_extra=request_body(TokenizeRequest), responses=_BODY_ERRORS
)
async def tokenize(request: Request, engine: Engine = Depends(engine_of)) -> Response:
    """The model's token ids for a text, as llama-server's /tokenize gives them (for logit_bias and budgets).
    A text no context could hold is refused before it is tokenized, as prompts are."""
    body = await read_body(request, TokenizeRequest)

    def work() -> JSONResponse:  # tokenized and its answer serialized off the event loop
        engine.check_prompt_chars(body.content, "content")
        tokens = engine.backend.tokenize(body.content, add_special=body.add_special)
        return JSONResponse(TokenizeResponse(tokens=tokens).model_dump())

    return await asyncio.to_thread(work)


@tokenizer_router.post(
    "/detokenize",
    response_model=DetokenizeResponse,
    openapi_extra=request_body(DetokenizeRequest),
    responses=_BODY_ERRORS,
)
async def detokenize(request: Request, engine: Engine = Depends(engine_of)) -> Response:
    body = await read_body(request, DetokenizeRequest)

    def work() -> JSONResponse:
        engine.check_token_ids(body.tokens, "tokens")
        return JSONResponse(DetokenizeResponse(content=engine.detokenize(body.tokens)).model_dump())

    return await asyncio.to_thread(work)
