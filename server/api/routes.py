"""HTTP routes: parse, delegate, return. All translation lives in chat.py / completions.py."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ValidationError

from codebooga.server.api.chat import create_chat_completion
from codebooga.server.api.completions import create_completion
from codebooga.server.api import prometheus
from codebooga.server.api.errors import APIError, from_validation_error
from codebooga.server.api.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    DetokenizeRequest,
    DetokenizeResponse,
    ModelCard,
    ModelList,
    TokenizeRequest,
    TokenizeResponse,
)
from codebooga.server.engine.engine import Engine

RequestModel = TypeVar("RequestModel", bound=BaseModel)

health_router = APIRouter()
v1_router = APIRouter(prefix="/v1")
tokenizer_router = APIRouter()


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The request schema for /docs (bodies are parsed by `read_body`, which owns the error messages)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


async def read_body(request: Request, model: type[RequestModel]) -> RequestModel:
    """Parse a JSON body whatever Content-Type the client sent (curl -d sends a form type)."""
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise APIError(400, f"the request body is not valid JSON ({error})", code="invalid_json") from error
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise from_validation_error(error) from error


async def engine_of(request: Request) -> Engine:
    engine: Engine | None = request.app.state.engine
    if engine is None:
        raise APIError(503, "the model is still loading; retry shortly", type="server_error", code="model_loading", headers={"Retry-After": "2"})
    return engine


def _ping_seconds(request: Request) -> float:
    return request.app.state.settings.sse_ping


@health_router.get("/health")
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


@health_router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    engine: Engine | None = request.app.state.engine
    if engine is None:
        raise APIError(503, "the model is still loading", type="server_error", code="model_loading")
    text = prometheus.render(engine.metrics, engine.stats(), request.app.state.http_responses)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


@v1_router.get("/models", response_model=ModelList)
async def list_models(request: Request, engine: Engine = Depends(engine_of)) -> ModelList:
    return ModelList(data=[ModelCard(id=engine.info.model_id, created=request.app.state.started)])


@v1_router.get("/models/{model_id:path}", response_model=ModelCard)
async def get_model(model_id: str, request: Request, engine: Engine = Depends(engine_of)) -> ModelCard:
    if model_id != engine.info.model_id:
        raise APIError(404, f"model '{model_id}' does not exist; this server serves '{engine.info.model_id}'", param="model", code="model_not_found")
    return ModelCard(id=engine.info.model_id, created=request.app.state.started)


@v1_router.post("/completions", response_model=Completion, openapi_extra=body_schema(CompletionRequest))
async def completions(request: Request, engine: Engine = Depends(engine_of)) -> Completion | Response:
    body = await read_body(request, CompletionRequest)
    return await create_completion(engine, body, request, _ping_seconds(request))


@v1_router.post("/chat/completions", response_model=ChatCompletion, openapi_extra=body_schema(ChatCompletionRequest))
async def chat_completions(request: Request, engine: Engine = Depends(engine_of)) -> ChatCompletion | Response:
    body = await read_body(request, ChatCompletionRequest)
    return await create_chat_completion(engine, body, request, _ping_seconds(request))



@tokenizer_router.post("/tokenize", response_model=TokenizeResponse, openapi_extra=body_schema(TokenizeRequest))
async def tokenize(request: Request, engine: Engine = Depends(engine_of)) -> TokenizeResponse:
    """The model's token ids for a text, as llama-server's /tokenize gives them (for logit_bias and budgets)."""
    body = await read_body(request, TokenizeRequest)
    return TokenizeResponse(tokens=engine.backend.tokenize(body.content, add_special=body.add_special))


@tokenizer_router.post("/detokenize", response_model=DetokenizeResponse, openapi_extra=body_schema(DetokenizeRequest))
async def detokenize(request: Request, engine: Engine = Depends(engine_of)) -> DetokenizeResponse:
    body = await read_body(request, DetokenizeRequest)
    engine.check_token_ids(body.tokens, "tokens")
    return DetokenizeResponse(content=engine.detokenize(body.tokens))
