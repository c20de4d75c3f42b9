"""Plumbing between engine event streams and HTTP: merging streams, SSE framing, hang-up detection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel
from sse_starlette import EventSourceResponse

from server.api.errors import APIError, from_engine_error
from server.api.schemas import ErrorResponse
from server.engine.errors import EngineError
from server.engine.types import EngineEvent

log = logging.getLogger("codebooga.api")

T = TypeVar("T")
_DONE = object()


async def merge_streams(streams: Sequence[AsyncIterator[EngineEvent]]) -> AsyncIterator[tuple[int, EngineEvent]]:
    """Interleave several requests' events as they come, tagged with the stream's index."""
    if len(streams) == 1:
        async for event in streams[0]:
            yield 0, event
        return
    queue: asyncio.Queue[tuple[int, object]] = asyncio.Queue()

    async def pump(index: int, stream: AsyncIterator[EngineEvent]) -> None:
        try:
            async for event in stream:
                await queue.put((index, event))
        except Exception as error:  # handed to the consumer, which re-raises it
            await queue.put((index, error))
        finally:
            await queue.put((index, _DONE))

    tasks = [asyncio.create_task(pump(index, stream)) for index, stream in enumerate(streams)]
    try:
        remaining = len(tasks)
        while remaining:
            index, item = await queue.get()
            if item is _DONE:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield index, item  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()


async def unless_disconnected(request: Request, work: Awaitable[T], poll_seconds: float = 0.25) -> T:
    """Await `work`, cancelling it as soon as the client hangs up (non-streaming requests)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll_seconds)
            if done:
                return task.result()
            if await request.is_disconnected():
                log.info("request %s: client disconnected; cancelling", request.state.request_id)
                task.cancel()
                raise APIError(499, "client closed the request", code="client_closed_request")
    finally:
        task.cancel()


def sse_response(chunks: AsyncIterator[str], request: Request, ping_seconds: float) -> EventSourceResponse:
    """Frame JSON chunks as SSE `data:` events ending with `data: [DONE]`; errors mid-stream become an event."""

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            async for chunk in chunks:
                yield {"data": chunk}
        except EngineError as error:
            yield {"data": _error_json(from_engine_error(error))}
        except APIError as error:
            yield {"data": _error_json(error)}
        yield {"data": "[DONE]"}
        log.debug("request %s: stream complete", request.state.request_id)

    return EventSourceResponse(
        events(),
        ping=ping_seconds,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _error_json(error: APIError) -> str:
    return ErrorResponse(error=error.detail).model_dump_json()


def chunk_json(chunk: BaseModel, include_usage: bool) -> str:
    """Chunks carry `usage` (null until the last) only when the client asked for it: others choke on it."""
    return chunk.model_dump_json(exclude=None if include_usage else {"usage"})
