"""Choosing and loading a backend for a model path, wrapped in an `Engine` with its template and presets."""

from __future__ import annotations

from pathlib import Path

from server.engine.chat_template import choose_template
from server.engine.engine import Engine
from server.engine.presets import PresetBook
from server.resources import PRESETS_DIR
from server.settings import ServeSettings, default_threads


def load_engine(model_path: Path, settings: ServeSettings) -> Engine:
    """Load the model (slow: call it off the event loop) and assemble the engine around it."""
    from server.engine.llama_cpp.backend import LlamaCppBackend
    from server.engine.llama_cpp.model import ContextOptions

    backend = LlamaCppBackend(
        model_path,
        ContextOptions(
            n_ctx_per_seq=settings.ctx_size,
            n_parallel=settings.parallel,
            n_threads=settings.threads or default_threads(),
            n_batch=settings.batch_size,
            n_gpu_layers=settings.n_gpu_layers,
        ),
        model_id=settings.model_id or model_path.name.removesuffix(".gguf"),
        max_queue=settings.max_queue,
        queue_timeout=settings.queue_timeout_seconds,
    )
    try:
        template = choose_template(settings.chat_template, backend.info.chat_template)
        return Engine(backend, template, PresetBook.load(PRESETS_DIR), settings.preset)
    except Exception:
        backend.close()
        raise
