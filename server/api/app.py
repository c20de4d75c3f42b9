"""The FastAPI application: routes, error shapes, request ids, and loading the model in the background.

The port opens before the model loads, so orchestrators see `/health` answer 503 while loading and 200 once
ready; requests that arrive early get an OpenAI-shaped 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from codebooga.server.api.auth import ApiKeyCheck
from codebooga.server.api.errors import install_error_handlers
from codebooga.server.api.middleware import RequestIdMiddleware
from codebooga.server.api.openapi import install_openapi
from codebooga.server.api.routes import health_router, tokenizer_router, v1_router
from codebooga.server.engine.engine import Engine
from codebooga.server.settings import ServeSettings

log = logging.getLogger("codebooga.server")


def create_app(
    settings: ServeSettings, load_engine: Callable[[], Engine], on_load_failure: Callable[[Exception], None]
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(_load(app))
        try:
            yield
        finally:
            loading.cancel()
            engine: Engine | None = app.state.engine
            if engine is not None:
                app.state.engine = None
                await asyncio.to_thread(engine.backend.close)

    async def _load(app: FastAPI) -> None:
        started = time.perf_counter()
        try:
            engine = await asyncio.to_thread(load_engine)
        except Exception as error:  # reported once, then the server shuts down
            on_load_failure(error)
            return
        app.state.max_body_bytes = app.state.limits.body_bytes(engine.info.context_length)
        app.state.engine = engine
        log.info(
            "model %s ready in %.1f s (%s backend, context %d, chat template %s, preset %s)",
            engine.info.model_id,
            time.perf_counter() - started,
            engine.info.backend,
            engine.info.context_length,
            engine.chat_template.name,
            engine.default_preset,
        )
        log.info(
            "limits: bodies up to %d bytes, prompts up to %d characters before tokenizing",
            app.state.max_body_bytes,
            engine.info.context_length * engine.info.longest_token_bytes,
        )

    app = FastAPI(
        title="codebooga",
        summary="OpenAI-compatible server for CodeBooga-style LLaMA models",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.limits = settings.request_limits()
    app.state.engine = None
    app.state.started = int(time.time())
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(health_router)
    requires_key = [Depends(ApiKeyCheck(list(settings.api_keys)))]
    app.include_router(v1_router, dependencies=requires_key)
    app.include_router(tokenizer_router, dependencies=requires_key)
    app.state.http_responses = Counter()
    app.add_middleware(RequestIdMiddleware, responses=app.state.http_responses)
    return app
