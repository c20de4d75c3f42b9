"""uvicorn's httptools protocol plus what it lacks against slow, idle and too many clients.

uvicorn times out only idle keep-alive connections: a client that opens a connection and sends nothing, or sends
its headers a byte at a time, holds it forever, and `--limit-concurrency` answers in plain text. This protocol

- refuses a connection beyond `max_connections` with a 503 in OpenAI's error shape and closes it;
- gives every request `header_timeout_seconds` for its headers (a silent idle connection is closed, a started
  request gets 408);
- closes the connection after any response sent before the request body was read to the end (401, 413, 408,
  503 while loading), so the client cannot keep trickling a body nobody reads;
- answers unparseable HTTP (a `Content-Length` that lies short leaves garbage behind) in OpenAI's shape too.

The body's own deadline and size limit are enforced where it is read (`api/body.py`), as OpenAI-shaped 408/413.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from codebooga.server.api.errors import APIError
from codebooga.server.api.limits import RequestLimits

log = logging.getLogger("codebooga.api")

_TOO_MANY_CONNECTIONS = APIError(
    503,
    "too many open connections to this server; retry shortly, or raise --max-connections",
    type="server_overloaded",
    code="too_many_connections",
    headers={"Retry-After": "1"},
)


def _header_timeout(seconds: float) -> APIError:
    return APIError(
        408, f"the request headers did not arrive within {seconds:g} s (--header-timeout)", code="request_timeout"
    )


def _unparseable(reason: str) -> APIError:
    return APIError(400, f"the request is not valid HTTP/1.1 ({reason})", code="invalid_http")


def _raw_response(error: APIError) -> bytes:
    """A complete HTTP/1.1 response for `error` that closes the connection, for answers given outside ASGI."""
    response = error.response()
    lines = [f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}".encode()]
    lines += [name + b": " + value for name, value in response.raw_headers]
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + response.body


class GuardedHttpProtocol(HttpToolsProtocol):
    """Built by uvicorn once per connection; `limits` is bound with `functools.partial` (see `serve_command`)."""

    def __init__(self, *args: Any, limits: RequestLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._header_timer: asyncio.TimerHandle | None = None
        self._request_begun = False
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self._limits.max_connections:
            self._refused = True
            log.warning("refused a connection: %d are open (--max-connections)", len(self.connections))
            transport.write(_raw_response(_TOO_MANY_CONNECTIONS))
            transport.close()
            return
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True
        if self._header_timer is None:
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        self._request_begun = False
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        body_unread = self.cycle is not None and self.cycle.more_body and not self.cycle.disconnected
        super().on_response_complete()
        if body_unread and not self.transport.is_closing():
            self.transport.close()

    def send_400_response(self, msg: str) -> None:  # uvicorn has logged the warning
        self.transport.write(_raw_response(_unparseable(msg.rstrip("."))))
        self.transport.close()

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self._limits.header_timeout_seconds, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_header_timer()  # a pipelined request waits behind a running response: never cut that one
            return
        if self._request_begun:
            log.info("closed a connection whose request headers took over %g s", self._limits.header_timeout_seconds)
            self.transport.write(_raw_response(_header_timeout(self._limits.header_timeout_seconds)))
        self.transport.close()
