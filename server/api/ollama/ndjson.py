"""Ollama's framing: one JSON object per line (NDJSON), and errors as `{"error": "message"}`."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse

from codebooga.server.api.errors import SHUTTING_DOWN, APIError, from_engine_error
from codebooga.server.api.streaming import EventStreamResponse
from codebooga.server.engine.errors import EngineError


class NdjsonResponse(EventStreamResponse):
    """The event stream's delivery (hang-up detection cancels the generation, shutdown ends the body with a
    last line), framed as lines of JSON."""

    media_type = "application/x-ndjson"


def ollama_error(error: APIError) -> JSONResponse:
    return JSONResponse({"error": error.detail.message}, status_code=error.status, headers=error.headers)


def _error_line(error: APIError) -> bytes:
    return json.dumps({"error": error.detail.message}).encode() + b"\n"


def ndjson_response(lines: AsyncIterator[str], request: Request) -> NdjsonResponse:
    """Each JSON text as one line; an error once streaming has begun becomes a last `{"error": ...}` line."""

    async def body() -> AsyncGenerator[bytes, None]:
        try:
            async for line in lines:
                yield line.encode() + b"\n"
        except EngineError as error:
            yield _error_line(from_engine_error(error))
        except APIError as error:
            yield _error_line(error)

    return NdjsonResponse(body(), ping_seconds=0, farewell=_error_line(SHUTTING_DOWN))
