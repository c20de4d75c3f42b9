"""Reading a request body: size limit and deadline while it arrives, strict JSON, large bodies parsed off the loop.

The body is refused with 413 from its `Content-Length` before a byte is read, or as soon as what arrived passes
the limit, so no more than the limit is ever held. JSON is read strictly, as OpenAI reads it: UTF-8 only, no
`NaN`/`Infinity`, no duplicate keys (two parsers reading different values for one key is how requests get
smuggled past proxies), no lone UTF-16 surrogates (they cannot be encoded back to UTF-8 for the tokenizer); the
request models then validate without type coercion (api/schemas.py). Parsing and validating a large body takes
milliseconds of CPU, so above `OFF_LOOP_BYTES` it runs in a worker thread while the event loop serves others.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from codebooga.server.api.errors import APIError, from_validation_error
from codebooga.server.api.limits import RequestLimits

RequestModel = TypeVar("RequestModel", bound=BaseModel)

OFF_LOOP_BYTES = 64 * 1024
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


async def read_body(request: Request, model: type[RequestModel]) -> RequestModel:
    """The request body as `model`, or an `APIError` saying what to fix (400, 408, 413)."""
    limits: RequestLimits = request.app.state.limits
    limit: int = request.app.state.max_body_bytes  # sized from the model's context once it is loaded
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(f"of {int(declared)} bytes is", limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.body_timeout_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large("is", limit)
                chunks.append(chunk)
    except TimeoutError:
        raise APIError(
            408,
            f"the request body did not arrive within {limits.body_timeout_seconds:g} s (--body-timeout); "
            f"{size} bytes came",
            code="request_timeout",
        ) from None
    except ClientDisconnect:
        raise APIError(499, "client closed the request", code="client_closed_request") from None
    raw = b"".join(chunks)
    if size > OFF_LOOP_BYTES:
        return await asyncio.to_thread(parse_body, raw, model)
    return parse_body(raw, model)


def _too_large(body: str, limit: int) -> APIError:
    return APIError(
        413,
        f"the request body {body} over this server's limit of {limit} bytes (--max-body-size), which is far more "
        "than a prompt filling the model's context needs; shorten the prompt or the messages",
        code="request_too_large",
    )


def parse_body(raw: bytes, model: type[RequestModel]) -> RequestModel:
    """Strict JSON → `model`; every way it can fail is a 400 naming the problem."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _invalid_json(f"not UTF-8: byte {error.start} is {raw[error.start:error.start + 1]!r}") from None
    try:
        data = json.loads(text, object_pairs_hook=_object_without_duplicates, parse_constant=_no_constants)
    except json.JSONDecodeError as error:
        raise _invalid_json(f"{error.msg} at line {error.lineno} column {error.colno}") from None
    except _Refused as error:
        raise _invalid_json(str(error)) from None
    except RecursionError:
        raise _invalid_json("nested too deeply") from None
    except ValueError:  # Python refuses to convert integers of more than 4300 digits
        raise _invalid_json("a number has thousands of digits") from None
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(data):
        raise _invalid_json("a \\u escape is half of a UTF-16 surrogate pair")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise from_validation_error(error) from None


def _invalid_json(reason: str) -> APIError:
    return APIError(400, f"the request body is not valid JSON: {reason}", code="invalid_json")


class _Refused(ValueError):
    """JSON that Python's parser takes but this API does not; the message says why."""


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"the key {json.dumps(key)} appears twice in one object; send each field once")
            seen.add(key)
    return result


def _no_constants(name: str) -> None:
    raise _Refused(f"{name} is not a JSON number; send a finite number")


def _has_lone_surrogate(value: Any) -> bool:
    """json.loads joins escaped surrogate pairs into one character; any surrogate left is half of a pair."""
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(key) or _has_lone_surrogate(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False
