"""The SSE response on its own, driven as ASGI: framing, pings, and a hang-up ending the event generator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from codebooga.server.api.streaming import EventStreamResponse

SCOPE = {"type": "http", "asgi": {"spec_version": "2.3"}}


class Client:
    """Records what the response sends; `hang_up` makes the next `receive` report a disconnect."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self._gone = asyncio.Event()

    async def send(self, message: dict) -> None:
        self.messages.append(message)

    async def receive(self) -> dict:
        await self._gone.wait()
        return {"type": "http.disconnect"}

    def hang_up(self) -> None:
        self._gone.set()

    @property
    def body(self) -> bytes:
        return b"".join(message.get("body", b"") for message in self.messages[1:])


async def test_events_are_sent_in_order_and_the_body_is_closed() -> None:
    async def events() -> AsyncGenerator[bytes, None]:
        for text in (b"data: 1\n\n", b"data: 2\n\n"):
            yield text

    client = Client()
    await EventStreamResponse(events(), ping_seconds=0)(SCOPE, client.receive, client.send)
    start = client.messages[0]
    assert start["status"] == 200
    assert dict(start["headers"])[b"content-type"].startswith(b"text/event-stream")
    assert b"content-length" not in dict(start["headers"])
    assert client.body == b"data: 1\n\ndata: 2\n\n"
    assert client.messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_pings_are_sent_while_no_event_is_due() -> None:
    client = Client()

    async def slow_events() -> AsyncGenerator[bytes, None]:
        while client.body.count(b": ping\n\n") < 2:
            await asyncio.sleep(0.01)
        yield b"data: late\n\n"

    response = EventStreamResponse(slow_events(), ping_seconds=0.05)
    await asyncio.wait_for(response(SCOPE, client.receive, client.send), timeout=10)
    assert client.body.endswith(b": ping\n\n: ping\n\ndata: late\n\n")


async def test_a_hang_up_closes_the_generator_while_it_waits() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncGenerator[bytes, None]:
        try:
            yield b"data: first\n\n"
            await asyncio.Event().wait()  # a long prefill: nothing to send
            yield b"data: never\n\n"
        finally:
            closed.set()

    client = Client()
    response = asyncio.create_task(EventStreamResponse(endless(), ping_seconds=0)(SCOPE, client.receive, client.send))
    await asyncio.sleep(0.05)
    client.hang_up()
    await asyncio.wait_for(response, timeout=2)
    assert closed.is_set()
    assert client.body == b"data: first\n\n"
