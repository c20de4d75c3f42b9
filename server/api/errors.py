"""Every error leaves the server in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

Bad input is a 4xx with a message that says what to fix, never FastAPI's `{"detail": ...}` 422 and never a
500. Only a genuine server fault is a 5xx, logged with its request id.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from codebooga.server.api.schemas import ErrorDetail, ErrorResponse
from codebooga.server.engine.errors import ContextOverflow, EngineError, GenerationFailed, Overloaded

log = logging.getLogger("codebooga.api")


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = ErrorDetail(message=message, type=type, param=param, code=code)
        self.headers = headers

    def response(self) -> JSONResponse:
        return JSONResponse(
            ErrorResponse(error=self.detail).model_dump(), status_code=self.status, headers=self.headers
        )


SHUTTING_DOWN = APIError(
    503, "the server is shutting down; retry the request", type="server_error", code="server_shutting_down"
)


def from_engine_error(error: EngineError) -> APIError:
    if isinstance(error, Overloaded):
        return APIError(
            503,
            error.message,
            type="server_overloaded",
            code="server_overloaded",
            headers={"Retry-After": str(error.retry_after)},
        )
    if isinstance(error, GenerationFailed):
        return APIError(503, error.message, type="server_error", code="generation_failed")
    if isinstance(error, ContextOverflow):
        return APIError(400, error.message, param=error.param, code="context_length_exceeded")
    return APIError(400, error.message, param=error.param)


def parameter_path(location: tuple[int | str, ...]) -> str:
    """("messages", 0, "content") → "messages[0].content", the way OpenAI names nested parameters."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def from_validation_error(error: ValidationError | RequestValidationError) -> APIError:
    first = error.errors()[0]
    location = tuple(part for part in first.get("loc", ()) if part != "body")
    if first.get("type") == "json_invalid":
        return APIError(400, "the request body is not valid JSON", code="invalid_json")
    param = parameter_path(location) or None
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    if "input" in first and first.get("type") != "missing" and "got " not in message:
        shown = json.dumps(first["input"], default=str)
        if len(shown) <= 80:
            message = f"{message} (got {shown})"
    return APIError(400, f"{param}: {message}" if param else message, param=param)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, error: APIError) -> JSONResponse:
        return error.response()

    @app.exception_handler(EngineError)
    async def _engine_error(_: Request, error: EngineError) -> JSONResponse:
        return from_engine_error(error).response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return from_validation_error(error).response()

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, error: HTTPException) -> JSONResponse:
        message = str(error.detail) if error.detail else "request failed"
        if error.status_code == 404:
            message = "no such endpoint; see /docs for the API"
        elif error.status_code == 405:
            message = "this endpoint does not accept that HTTP method"
        return APIError(error.status_code, message, headers=getattr(error, "headers", None)).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("request %s failed", getattr(request.state, "request_id", "-"))
        return APIError(500, "internal server error", type="server_error").response()
