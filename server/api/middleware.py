"""Request ids and one log line per request, as plain ASGI so streaming and hang-up detection stay intact."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import secrets
import time
from collections import Counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codebooga.server.api.errors import SHUTTING_DOWN

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
log = logging.getLogger("codebooga.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every log record, so concurrent requests' lines can be told apart."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class RequestIdMiddleware:
    """Tags each request with an id (the client's X-Request-Id when sane), logs it, and counts responses."""

    def __init__(self, app: ASGIApp, responses: Counter[tuple[str, int]]) -> None:
        self.app = app
        self.responses = responses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        offered = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if _SAFE_ID.match(offered) else f"req-{secrets.token_hex(8)}"
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            # uvicorn cancels requests still running when the shutdown grace runs out. Streams have said so
            # already; anything else gets a 503 instead of uvicorn's bare 500, and no traceback is logged.
            log.warning("request cut short: the server is shutting down")
            if not status:
                await SHUTTING_DOWN.response()(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            self.responses[(getattr(route, "path", "unmatched"), status or 499)] += 1
            log.info(
                "%s %s -> %s in %.0f ms",
                scope["method"],
                scope["path"],
                status or "disconnected",
                (time.perf_counter() - started) * 1000,
            )
            request_id_var.reset(token)
