"""Choosing and loading a backend for a model path (GGUF → llama.cpp, EXL2 folder → ExLlamaV2), wrapped in an
`Engine` with its template and presets."""

from __future__ import annotations

from pathlib import Path

from codebooga.merge.shared.model_format import ModelFormat, detect_format
from codebooga.presets import preset_folder
from codebooga.server.engine.backend import Backend
from codebooga.server.engine.chat_template import choose_template
from codebooga.server.engine.engine import Engine
from codebooga.server.engine.presets import PresetBook
from codebooga.server.settings import ServeSettings, default_threads


def load_engine(model_path: Path, settings: ServeSettings) -> Engine:
    """Load the model (slow: call it off the event loop) and assemble the engine around it."""
    if detect_format(model_path) is ModelFormat.EXL2:
        backend = _exl2_backend(model_path, settings)
    else:
        backend = _llama_cpp_backend(model_path, settings)
    try:
        template = choose_template(settings.chat_template, backend.info.chat_template)
        return Engine(backend, template, PresetBook.load(preset_folder()), settings.preset)
    except Exception:
        backend.close()
        raise


def _llama_cpp_backend(model_path: Path, settings: ServeSettings) -> Backend:
    from codebooga.server.engine.llama_cpp.backend import LlamaCppBackend
    from codebooga.server.engine.llama_cpp.model import ContextOptions

    return LlamaCppBackend(
        model_path,
        ContextOptions(
            n_ctx_per_seq=settings.ctx_size,
            n_parallel=settings.parallel,
            n_threads=settings.threads or default_threads(),
            n_batch=settings.batch_size,
            n_gpu_layers=settings.n_gpu_layers,
            cache_type_k=settings.cache_type_k,
            cache_type_v=settings.cache_type_v,
            flash_attention=settings.flash_attn,
        ),
        model_id=settings.model_id or model_path.name.removesuffix(".gguf"),
        max_queue=settings.max_queue,
        queue_timeout=settings.queue_timeout,
        prompt_cache_bytes=settings.cache_ram * 2**20,
        prompt_cache_dir=Path(settings.cache_dir) if settings.cache_dir else None,
    )


def _exl2_backend(model_folder: Path, settings: ServeSettings) -> Backend:
    """exllamav2 (CUDA only): imported here so that nothing else in codebooga loads it or torch."""
    from codebooga.server.engine.exllamav2.backend import Exl2Backend
    from codebooga.server.engine.exllamav2.model import Exl2Options

    return Exl2Backend(
        model_folder,
        Exl2Options(
            max_seq_len=settings.ctx_size,
            cache_type=settings.cache_type,
            gpu_split=settings.gpu_split,
            parallel=settings.parallel,
        ),
        model_id=settings.model_id or model_folder.name,
        max_queue=settings.max_queue,
        queue_timeout=settings.queue_timeout,
    )
