"""codebooga on Ray Serve: replicas of the FastAPI app `codebooga serve` runs, each with its own engine.

`serve run deploy/ray/serve.yaml` imports `build_app`, which reads the application's `args` as `codebooga serve`
options. Ray sends a replica traffic only once its constructor has returned, so the constructor loads the model
(the part `codebooga serve` does in the background while /health answers 503), and `__serve_build_asgi_app__`
(Ray's late-bound `@serve.ingress()`) then hands Ray the unchanged app from `create_app` around that engine.
With `prefix_affinity` the replicas sit behind a second tier instead (ray_affinity.py). Only public Ray Serve APIs
are used (`serve.deployment`, `serve.ingress`, `check_health`, application builders, handles, request routers).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from ray import serve
from ray.serve import Application
from ray.serve.config import RequestRouterConfig
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codebooga.merge.shared.cli_error import CliError
from codebooga.server.api.app import create_app
from codebooga.server.ray_affinity import AffinityIngress, run_asgi
from codebooga.server.serve_command import check_choices, resolve_model
from codebooga.server.settings import ServeSettings, default_threads
from codebooga.server.settings_sources import SERVE_OPTIONS, resolve_settings

if TYPE_CHECKING:
    from codebooga.server.engine.engine import Engine

log = logging.getLogger("codebooga.server")

# Application args that shape the Ray deployment rather than codebooga: GPUs per replica (EXL2, CUDA llama.cpp).
# prefix_affinity: true puts `AffinityIngress` and `PrefixAffinityRouter` in front of the replicas.
_RAY_ARGS = ("num_gpus", "prefix_affinity")


class CodeboogaReplica:
    """One replica: one engine, loaded on the node Ray placed the replica on (the model path or hub download is
    resolved there, so nodes need only the model, not the machine that ran `serve run`)."""

    def __init__(self, settings: ServeSettings) -> None:
        # as in `codebooga serve`: the decode thread must get the GIL back at once after each llama.cpp call
        sys.setswitchinterval(0.0002)
        settings, model = resolve_model(settings)
        path = model.path()
        self._settings = replace(settings, model=str(path))
        self._engine = _load_engine(path, self._settings)

    def __serve_build_asgi_app__(self) -> ASGIApp:
        return self._build_app()

    def _build_app(self) -> ReplicaHeader:
        engine = self._engine
        app = create_app(self._settings, lambda: engine, _report_load_failure)
        return ReplicaHeader(app, serve.get_replica_context().replica_id.unique_id)

    def check_health(self) -> None:
        """Ray's health check: raising makes Serve stop routing here and replace the replica. The backend is
        dead once its compute thread ended or the app's shutdown closed it."""
        if not self._engine.backend.alive:
            raise RuntimeError(f"codebooga replica: the engine for {self._settings.model} has stopped")


PREFIX_AFFINITY = RequestRouterConfig(request_router_class="codebooga.server.ray_affinity:PrefixAffinityRouter")
"""The engine deployment's router behind `AffinityIngress`."""

class EngineReplica(CodeboogaReplica):
    """The engine tier behind `AffinityIngress` (ray_affinity.py): the same replica, called through a handle
    instead of Ray's proxy (Ray allows one ingress per application), running each request through its app."""

    async def __init__(self, settings: ServeSettings) -> None:
        super().__init__(settings)
        self._app = self._build_app()
        # what Ray's ingress wrapper does for `Codebooga`: the app's lifespan, which puts the engine in its state
        self._lifespan = self._app.app.router.lifespan_context(self._app.app)
        await self._lifespan.__aenter__()
        while self._app.app.state.engine is None:
            await asyncio.sleep(0.01)

    async def __del__(self) -> None:
        """Ray calls this when it stops the replica gracefully: the app's shutdown closes the engine, as at the end
        of `codebooga serve`."""
        lifespan = getattr(self, "_lifespan", None)
        if lifespan is not None:
            await lifespan.__aexit__(None, None, None)

    async def forward(self, routing_key: str, request: dict[str, Any], body: bytes) -> AsyncIterator[Message]:
        """One HTTP request through this replica's app. `routing_key` is for the router, which sees only a call's
        arguments."""
        async for message in run_asgi(self._app, request, body):
            yield message


Codebooga = serve.deployment(name="codebooga", health_check_period_s=10, health_check_timeout_s=30)(
    serve.ingress()(CodeboogaReplica)
)
"""The deployment: `CodeboogaReplica` with Ray's late-bound ingress, configured further by `build_app`."""

CodeboogaEngine = serve.deployment(
    name="codebooga", health_check_period_s=10, health_check_timeout_s=30, request_router_config=PREFIX_AFFINITY
)(EngineReplica)
"""The engine deployment behind `AffinityIngress`, routed by `PrefixAffinityRouter`."""


class ReplicaHeader:
    """Adds `x-codebooga-replica` to every response, so a client (and the tests) can see which replica answered,
    e.g. whether follow-ups land where their prefix is cached. A plain ASGI wrapper: streams pass untouched."""

    def __init__(self, app: FastAPI, replica: str) -> None:
        self.app = app
        self._header = (b"x-codebooga-replica", replica.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self._header]}
            await send(message)

        await self.app(scope, receive, send_with_header)


def _load_engine(path: Path, settings: ServeSettings) -> "Engine":
    from codebooga.server.engine.loader import load_engine

    return load_engine(path, settings)


def _report_load_failure(error: Exception) -> None:
    """The engine is loaded before the app exists, so the app's own background load cannot fail; kept for its
    signature and to log should that ever change."""
    log.error("codebooga replica: %s", error)


def build_app(args: Mapping[str, Any]) -> Application:
    """The application builder `serve.yaml`'s `import_path` names: `args` are `codebooga serve` options by
    their config-file keys (`ctx_size: 2048`), plus `config` (a YAML settings file) and `num_gpus` per replica.
    Bad options fail here, before any replica starts, with the same one-line messages as the command."""
    try:
        gpus = float(args.get("num_gpus", 0))
    except (TypeError, ValueError):
        raise CliError(f"codebooga's Ray app: num_gpus must be a number, got {args['num_gpus']!r}") from None
    unknown = sorted(set(args) - {item.name for item in SERVE_OPTIONS} - {"config", *_RAY_ARGS})
    if unknown:
        raise CliError(f"codebooga's Ray app: unknown args {', '.join(unknown)} (use `codebooga serve` option "
                       "names with underscores, e.g. ctx_size, or num_gpus)")
    options = {key: value for key, value in args.items() if key not in ("config", *_RAY_ARGS)}
    config = Path(str(args["config"])) if args.get("config") else None
    settings = resolve_settings(options, os.environ, config)
    check_choices(settings)
    threads = settings.threads or default_threads()
    options = dict(
        # what the scheduler reserves per replica: llama.cpp's threads, and GPUs for EXL2 / CUDA builds
        ray_actor_options={"num_cpus": threads, "num_gpus": gpus},
        # a replica decodes `parallel` sequences at once and queues the rest: scale out once it queues
        max_ongoing_requests=settings.parallel * 2,
        autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": settings.parallel},
    )
    deployment = (CodeboogaEngine if args.get("prefix_affinity") else Codebooga).options(**options)
    engine = deployment.bind(replace(settings, threads=threads))
    return AffinityIngress.bind(engine) if args.get("prefix_affinity") else engine
