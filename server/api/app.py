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
from fastapi.middleware.cors import CORSMiddleware

from codebooga.server.api.auth import ApiKeyCheck
from codebooga.server.api.errors import install_error_handlers
from codebooga.server.api.middleware import RequestIdMiddleware
from codebooga.server.api.openapi import install_openapi
from codebooga.server.api.llama_server.routes import router as llama_server_router
from codebooga.server.api.ollama.routes import api_router as ollama_router
from codebooga.server.api.ollama.routes import root_router as ollama_root_router
from codebooga.server.api.routes import health_router, openai_router, tokenizer_router
from codebooga.server.engine.engine import Engine
from codebooga.server.settings import ServeSettings
from codebooga.server.ui.routes import install_ui

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
        docs_url=None,  # install_ui serves /docs from the package; ReDoc, CDN-only, is left out
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.limits = settings.request_limits()
    app.state.engine = None
    app.state.started = int(time.time())
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(health_router)
    app.include_router(ollama_root_router)
    requires_key = [Depends(ApiKeyCheck(list(settings.api_keys)))]
    app.include_router(openai_router, prefix="/v1", dependencies=requires_key)
    # the same routes for clients configured with a base URL without /v1 (llama-server answers both)
    app.include_router(openai_router, dependencies=requires_key, include_in_schema=False)
    app.include_router(tokenizer_router, dependencies=requires_key)
    app.include_router(llama_server_router, dependencies=requires_key)
    app.include_router(ollama_router, dependencies=requires_key)
    install_ui(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
            allow_headers=["*"],  # the openai SDK's x-stainless-* headers, authorization, content-type, ...
            expose_headers=["x-request-id", "retry-after"],
            max_age=600,
        )
    app.state.http_responses = Counter()
    app.add_middleware(RequestIdMiddleware, responses=app.state.http_responses)
    return app
