"""Server settings: every `codebooga serve` option, each also settable as a `CODEBOOGA_*` environment variable."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from server.api.limits import RequestLimits

EXL2_CACHE_TYPES = ("fp16", "q8", "q6", "q4")  # ExLlamaV2 KV cache: FP16, or quantized to 8/6/4 bits


@dataclass(frozen=True)
class ServeSettings:
    model: Path | None = None
    model_id: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    ctx_size: int = 4096
    threads: int = 0
    n_gpu_layers: int = 0
    parallel: int = 4
    batch_size: int = 512
    cache_type: str = "fp16"  # EXL2 only: fp16 | q8 | q6 | q4
    gpu_split: tuple[float, ...] | None = None  # EXL2 only: GB of weights per GPU; None = autosplit
    max_queue: int = 64
    queue_timeout_seconds: float = 60.0
    chat_template: str = "auto"
    preset: str = "divine-intellect"
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    sse_ping_seconds: float = 0.0
    shutdown_grace_seconds: float = 5.0
    log_level: str = "info"
    # Request and connection limits (server/api/limits.py documents each).
    max_body_bytes: int = RequestLimits.max_body_bytes
    max_connections: int = RequestLimits.max_connections
    header_timeout_seconds: float = RequestLimits.header_timeout_seconds
    body_timeout_seconds: float = RequestLimits.body_timeout_seconds

    def request_limits(self) -> RequestLimits:
        return RequestLimits(
            max_body_bytes=self.max_body_bytes,
            max_connections=self.max_connections,
            header_timeout_seconds=self.header_timeout_seconds,
            body_timeout_seconds=self.body_timeout_seconds,
        )


def default_threads() -> int:
    """One llama.cpp thread per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def api_keys_from_environment() -> tuple[str, ...]:
    """CODEBOOGA_API_KEYS holds one or more keys separated by commas."""
    return tuple(key.strip() for key in os.environ.get("CODEBOOGA_API_KEYS", "").split(",") if key.strip())
