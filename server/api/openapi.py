"""The OpenAPI 3.1 document at /openapi.json: every request and response schema, every error the API answers.

Request bodies are read by `api/body.py` (size limit, strict JSON, off the event loop), not by FastAPI, so the
routes declare them here: each body is a `$ref` into `components/schemas`, where the request models' schemas
(and the models they nest) are added next to FastAPI's response models, with the chat stream's chunk. Left to
itself FastAPI inlines such a schema with its own `$defs`, whose `#/$defs/...` references dangle at the document
root; schema-driven clients, fuzzers and /docs then see nothing. FastAPI's 422 validation-error responses are dropped: this API answers
bad input with 400 in OpenAI's error shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from codebooga.server.api.schemas import REQUEST_MODELS, ChatCompletionChunk, ErrorResponse

_SCHEMAS = "#/components/schemas/"

_ERROR_MEANINGS = {
    400: "The request is malformed or asks for something this server cannot do; the message says what to fix.",
    401: "An API key is required (`Authorization: Bearer KEY`) and was missing or wrong.",
    404: "No such model.",
    408: "The request body did not arrive within --body-timeout.",
    413: "The request body is larger than --max-body-size.",
    503: "The model is still loading, the queue is full, or the server is shutting down; retry (see Retry-After).",
}


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route whose JSON body is `model` (one of `REQUEST_MODELS`)."""
    schema = {"$ref": f"{_SCHEMAS}{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses` for a route that can answer these error statuses, all in OpenAI's error shape."""
    return {status: {"model": ErrorResponse, "description": _ERROR_MEANINGS[status]} for status in statuses}


def event_stream_response(chunk: type[BaseModel], description: str) -> dict[int | str, dict[str, Any]]:
    """The 200 of a completion route also comes as server-sent events when the request says `stream: true`.

    Before OpenAPI 3.2's `itemSchema`, an event stream's `schema` describes one event, as schemathesis and other
    tools read it: its `data` is a `chunk` as JSON, or an error that ends the stream, or the final `[DONE]`.
    """
    payload = {"anyOf": [{"$ref": f"{_SCHEMAS}{chunk.__name__}"}, {"$ref": f"{_SCHEMAS}ErrorResponse"}]}
    event = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {
                "anyOf": [
                    {"const": "[DONE]"},
                    {"type": "string", "contentMediaType": "application/json", "contentSchema": payload},
                ]
            }
        },
    }
    return {200: {"description": description, "content": {"text/event-stream": {"schema": event}}}}


def install_openapi(app: FastAPI) -> None:
    """Replace FastAPI's document builder with `build_document`, built once on first request."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build_document(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    requests = _definitions([(model, "validation") for model in REQUEST_MODELS])
    clash = requests.keys() & schemas.keys()
    if clash:
        raise RuntimeError(f"request and response models share the names {sorted(clash)}; rename one of each")
    schemas.update(requests)
    for name, schema in _definitions([(ChatCompletionChunk, "serialization")]).items():
        schemas.setdefault(name, schema)  # the models it shares with FastAPI's responses are there already
    for path in document["paths"].values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def _definitions(models: list[tuple[type[BaseModel], Any]]) -> dict[str, Any]:
    _, definitions = models_json_schema(models, ref_template=_SCHEMAS + "{model}")
    return definitions.get("$defs", {})
