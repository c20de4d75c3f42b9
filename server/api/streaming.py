"""Plumbing between engine event streams and HTTP: merging streams, SSE framing, hang-up detection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import TypeVar

import anyio
from fastapi import Request
from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from codebooga.server.api.errors import SHUTTING_DOWN, APIError, from_engine_error
from codebooga.server.api.schemas import ErrorResponse
from codebooga.server.engine.errors import EngineError
from codebooga.server.engine.types import EngineEvent

log = logging.getLogger("codebooga.api")

T = TypeVar("T")
_DONE = object()
_DONE_EVENT = b"data: [DONE]\n\n"


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


class EventStreamResponse(Response):
    """A `text/event-stream` ASGI response: one `data:` event per chunk, optional `: ping` comments.

    Every token of every stream passes through here, so a chunk costs one ASGI send and nothing else (no
    per-send timeout scopes). A second task waits for the client to hang up and cancels the stream at once,
    even while no token is due (a long prefill), which closes the chunk iterator and so cancels the generation.
    """

    media_type = "text/event-stream"

    def __init__(self, events: AsyncGenerator[bytes, None], ping_seconds: float, farewell: bytes = b"") -> None:
        """`farewell` is sent, ending the body, when the server stops before the events run out."""
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no"})  # no body: no content-length
        self._events = events
        self._ping_seconds = ping_seconds
        self._farewell = farewell

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        cut_by_shutdown = False
        try:
            await self._stream(receive, send)
        except asyncio.CancelledError:  # the server is stopping and its shutdown grace has run out
            cut_by_shutdown = True
            raise
        finally:
            with anyio.CancelScope(shield=True):
                ending = self._farewell if cut_by_shutdown else b""
                await send({"type": "http.response.body", "body": ending, "more_body": False})

    async def _stream(self, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def stream_then_stop() -> None:
                try:
                    async for event in self._events:
                        await send({"type": "http.response.body", "body": event, "more_body": True})
                finally:
                    with anyio.CancelScope(shield=True):
                        await self._events.aclose()  # cancelled mid-send: still end the generation now
                group.cancel_scope.cancel()

            async def stop_on_hang_up() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(stream_then_stop)
            group.start_soon(stop_on_hang_up)
            if self._ping_seconds > 0:
                group.start_soon(self._ping, send)

    async def _ping(self, send: Send) -> None:
        while True:
            await anyio.sleep(self._ping_seconds)
            await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})


def sse_response(
    chunks: AsyncIterator[str], request: Request, ping_seconds: float, end_with_done: bool = True
) -> EventStreamResponse:
    """Frame JSON chunks as SSE `data:` events ending with `data: [DONE]` (OpenAI's streams; llama-server's
    /completion ends without it); errors mid-stream become an event."""
    done = _DONE_EVENT if end_with_done else b""

    async def events() -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in chunks:
                yield _data_event(chunk)
        except EngineError as error:
            yield _data_event(_error_json(from_engine_error(error)))
        except APIError as error:
            yield _data_event(_error_json(error))
        if done:
            yield done
        log.debug("request %s: stream complete", request.state.request_id)

    return EventStreamResponse(events(), ping_seconds, farewell=_data_event(_error_json(SHUTTING_DOWN)) + done)


def _data_event(data: str) -> bytes:
    return b"data: " + data.encode() + b"\n\n"


def _error_json(error: APIError) -> str:
    return ErrorResponse(error=error.detail).model_dump_json()



def chunk_json(chunk: BaseModel, include_usage: bool) -> str:
    """Chunks carry `usage` (null until the last) only when the client asked for it: others choke on it."""
    return chunk.model_dump_json(exclude=None if include_usage else {"usage"})


class TextChunks:
    """The JSON of a stream's text chunks for one choice, which differ only by their text: rendered by the
    chunk's Pydantic model once, with a marker for the text, then filled in per token. Building and serializing
    the same chunk model again was ~40% of the event loop's work per streamed token, and on a machine with as
    many cores as decode threads that CPU comes out of the decode. JSON escaping is Pydantic's (serde_json's):
    quotes, backslashes and control characters, UTF-8 left as is, which `json.dumps(ensure_ascii=False)` matches;
    its string encoder is called directly (`json.dumps` with options builds a new encoder at every call)."""

    _MARKER = "codebooga-chunk-text-5c1e"

    def __init__(self, render: Callable[[str], str]) -> None:
        self._render = render
        quoted = encode_basestring(self._MARKER)
        sample = render(self._MARKER)
        # a marker also found elsewhere (a model named after it) leaves every chunk to the model
        self._parts = sample.split(quoted) if sample.count(quoted) == 1 else None

    def __call__(self, text: str) -> str:
        if self._parts is None:
            return self._render(text)
        before, after = self._parts
        return before + encode_basestring(text) + after
