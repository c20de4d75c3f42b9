"""Every `codebooga serve` option, declared once.

Each field of `ServeSettings` is one option: its name gives the `--flag`, the `CODEBOOGA_*` environment variable
and the config-file key; `option(...)` gives how a value is read, the help text and the docs' default.
`settings_sources` derives the command line, the environment, the config file and the README table from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from codebooga.server.api.limits import RequestLimits
from codebooga.server.options import (
    byte_size,
    gb_per_gpu,
    key_list,
    one_of,
    option,
    seconds,
    text,
    whole_number,
)

EXL2_CACHE_TYPES = ("fp16", "q8", "q6", "q4")  # ExLlamaV2 KV cache: FP16, or quantized to 8/6/4 bits
LLAMA_CACHE_TYPES = ("f16", "q8_0", "q4_0")  # llama.cpp KV cache: half precision, or quantized to 8/4 bits
FLASH_ATTENTION = ("auto", "on", "off")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class ServeSettings:
    model: str | None = option(
        None, text, "GGUF file (llama.cpp) or EXL2 folder (ExLlamaV2) to serve, or a Hugging Face hub repo: "
        "`OWNER/REPO:QUANT` (its GGUF of that quant), `OWNER/REPO/FILE.gguf`, `OWNER/REPO@REVISION` (EXL2); "
        "a local path that exists wins",
        metavar="PATH|REPO", shown_default="embedded SmolLM2-135M",
    )  # fmt: skip
    model_id: str | None = option(
        None, text, "model id reported by the API", metavar="NAME", shown_default="file name"
    )
    host: str = option("127.0.0.1", text, "address to bind", metavar="ADDRESS")
    port: int = option(8000, whole_number(1), "port to bind", metavar="PORT")
    ctx_size: int = option(
        16384, whole_number(0), "context per sequence, capped at the model's training context (0 = all of it)",
        metavar="N",
    )  # fmt: skip
    threads: int = option(
        0, whole_number(0), "llama.cpp CPU threads (0 = one per core)", metavar="N", shown_default="one per core"
    )
    n_gpu_layers: int = option(
        0, whole_number(0), "layers offloaded to the GPU (llama.cpp built with GPU support)", metavar="N"
    )
    parallel: int = option(
        4, whole_number(1), "sequences decoded together in one batch; also the largest `n`", metavar="N"
    )
    batch_size: int = option(
        512, whole_number(1), "most tokens per decode step; long prompts are fed in chunks of this", metavar="N"
    )
    cache_type_k: str = option(
        "f16", one_of(*LLAMA_CACHE_TYPES), "GGUF only: KV cache precision of keys", metavar="|".join(LLAMA_CACHE_TYPES)
    )
    cache_type_v: str = option(
        "f16", one_of(*LLAMA_CACHE_TYPES), "GGUF only: KV cache precision of values (quantized needs flash attention)",
        metavar="|".join(LLAMA_CACHE_TYPES),
    )  # fmt: skip
    flash_attn: str = option(
        "auto", one_of(*FLASH_ATTENTION),
        "GGUF only: flash attention (`auto`: where the backend supports it; `off`: 256 tokens a graph run)",
        metavar="|".join(FLASH_ATTENTION),
    )  # fmt: skip
    cache_ram: int = option(
        8192, whole_number(0), "GGUF only: MiB of host memory for prompt states saved from overwritten slots "
        "(`0` disables)", metavar="MIB",
    )  # fmt: skip
    cache_dir: str | None = option(
        None, text, "GGUF only: folder the prompt cache is written to when the server stops and read from when it "
        "starts, so a restart keeps warm caches (one subfolder per model file and KV layout)", metavar="PATH",
        shown_default="none",
    )  # fmt: skip
    cache_type: str = option(
        "fp16", one_of(*EXL2_CACHE_TYPES), "EXL2 only: KV cache precision", metavar="|".join(EXL2_CACHE_TYPES)
    )
    gpu_split: tuple[float, ...] | None = option(
        None, gb_per_gpu, "EXL2 only: GB of weights per GPU, or fill GPUs in turn",
        metavar="auto|GB,GB,...", shown_default="`auto`",
    )  # fmt: skip
    max_queue: int = option(
        64, whole_number(1), "requests that may wait for a free sequence; beyond it, 503 + `Retry-After`",
        metavar="N",
    )  # fmt: skip
    queue_timeout: float = option(
        60.0, seconds(positive=True), "a request that waited this long (seconds) for a sequence gets 503",
        metavar="S",
    )  # fmt: skip
    chat_template: str = option(
        "auto", text, "`auto`: the GGUF's own template, else Alpaca", metavar="auto|alpaca|model|PATH"
    )
    preset: str = option(
        "divine-intellect", text, "sampling preset for fields a request leaves out (`presets/*.yaml`)",
        metavar="NAME",
    )  # fmt: skip
    api_keys: tuple[str, ...] = option(
        (), key_list,
        "require `Authorization: Bearer KEY` on every API route (`/health`, `/`, `/api/version` stay open)",
        metavar="KEY", shown_default="none", flag="--api-key", repeatable=True, secret=True,
    )  # fmt: skip
    cors_origins: tuple[str, ...] = option(
        (), key_list, "let web pages from ORIGIN (`https://app.example`, or `*` for any) call the API; "
        "preflight `OPTIONS` answered", metavar="ORIGIN", shown_default="none (CORS off)", flag="--cors-origin",
        repeatable=True,
    )  # fmt: skip
    sse_ping: float = option(
        0.0, seconds(), "SSE comment pings this often (seconds) while streaming", metavar="S",
        shown_default="`0` (off)",
    )  # fmt: skip
    shutdown_grace: float = option(
        5.0, seconds(), "on SIGTERM/Ctrl-C, running requests get S seconds; then streams end with a "
        "`server_shutting_down` error event", metavar="S",
    )  # fmt: skip
    log_level: str = option("info", one_of(*LOG_LEVELS), "log verbosity", metavar="|".join(LOG_LEVELS))
    max_body_size: int = option(
        0, byte_size, "largest request body (`512K`, `8M`, ...); larger gets 413 before it is read; `0` sizes it "
        "from the context: 512 bytes per token, at least 4 MiB", metavar="BYTES", shown_default="`0` (from the context)",
    )  # fmt: skip
    max_connections: int = option(
        512, whole_number(1), "open HTTP connections, idle ones included; one more gets 503 and is closed", metavar="N"
    )
    header_timeout: float = option(
        10.0, seconds(positive=True), "seconds a connection may take to send a request's headers; then it is closed",
        metavar="S",
    )  # fmt: skip
    body_timeout: float = option(
        60.0, seconds(positive=True), "seconds a request's body may take to arrive; then 408", metavar="S"
    )

    def request_limits(self) -> RequestLimits:
        """The limits the HTTP layer enforces (server/api/limits.py documents each)."""
        return RequestLimits(
            max_body_bytes=self.max_body_size,
            max_connections=self.max_connections,
            header_timeout_seconds=self.header_timeout,
            body_timeout_seconds=self.body_timeout,
        )


def default_threads() -> int:
    """One llama.cpp thread per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
