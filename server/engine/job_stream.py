"""The asyncio side of a job run by a backend's own thread (llama.cpp decode loop, ExLlamaV2 generator loop).

The thread pushes lists of events in with `deliver`; the request handler iterates them. Implements
`server.engine.backend.JobStream`; free of backend imports so it is tested without a model or a GPU.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from codebooga.server.engine.types import BackendEvent, BackendJob

END_OF_JOB = object()


class ThreadedJobStream:
    def __init__(self, spec: BackendJob, wake: Callable[[], None]) -> None:
        self.spec = spec
        self.cancelled = False
        self.stopped_choices: set[int] = set()
        self.enqueued_at = time.monotonic()
        self._wake = wake
        self._loop = asyncio.get_running_loop()
        self._buffer: deque[object] = deque()
        # One reader: a bare future it waits on when the buffer is empty (an asyncio.Queue's bookkeeping was a
        # tenth of the event loop's work per streamed token).
        self._arrived: asyncio.Future[None] | None = None
        self._started: asyncio.Future[None] = self._loop.create_future()

    def __aiter__(self) -> ThreadedJobStream:
        return self

    async def __anext__(self) -> BackendEvent:
        while not self._buffer:
            self._arrived = self._loop.create_future()
            try:
                await self._arrived
            finally:
                self._arrived = None
        item = self._buffer.popleft()
        if item is END_OF_JOB:
            self._buffer.appendleft(item)
            raise StopAsyncIteration
        return item  # type: ignore[return-value]

    def _receive(self, events: list[object]) -> None:
        """In the event loop: buffer the events and wake the reader."""
        self._buffer.extend(events)
        arrived = self._arrived
        if arrived is not None and not arrived.done():
            arrived.set_result(None)

    async def started(self) -> None:
        await self._started

    def stop_choice(self, choice: int) -> None:
        self.stopped_choices.add(choice)
        self._wake()

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._wake()

    def __del__(self) -> None:
        # A stream dropped unread (its request vanished before reading) must not keep generating.
        self.cancel()

    # --- called from the backend's thread -------------------------------------------------------------------

    def mark_started(self, error: Exception | None = None) -> None:
        """The job got its sequences, or (with `error`) never will."""
        self._call_in_loop(self._resolve_started, error)

    def deliver(self, events: list[object]) -> None:
        self._call_in_loop(self._receive, events)

    def _resolve_started(self, error: Exception | None) -> None:
        if self._started.done():
            return
        if error is None:
            self._started.set_result(None)
        else:
            self._started.set_exception(error)

    def _call_in_loop(self, function: Callable[[Any], None], argument: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(function, argument)
        except RuntimeError:  # the event loop is gone (server shutting down): nobody is listening
            pass


def deliver_all(deliveries: list[tuple[ThreadedJobStream, list[object]]]) -> None:
    """From a backend's thread: hand one step's events to their streams with one wake-up per event loop (not one
    per stream), which keeps the event loop from competing with the compute threads for CPU."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[ThreadedJobStream, list[object]]]] = {}
    for stream, events in deliveries:
        by_loop.setdefault(stream._loop, []).append((stream, events))
    for loop, batch in by_loop.items():
        try:
            loop.call_soon_threadsafe(_receive_all, batch)
        except RuntimeError:  # the event loop is gone (server shutting down): nobody is listening
            pass


def _receive_all(batch: list[tuple[ThreadedJobStream, list[object]]]) -> None:
    for stream, events in batch:
        stream._receive(events)
