"""GGUF → quantized GGUF with llama.cpp's own quantizer (`llama_model_quantize` via llama-cpp-python).

K-quants (Q4_K_M and friends, as TheBloke published CodeBooga) have no numpy implementation; calling the library
keeps the per-tensor type choices of the `_M`/`_S` mixes identical to llama.cpp's `llama-quantize` tool.
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from .atomic import atomic_output
from .errors import GGUFError
from .formats import canonical_type
from .imatrix import imatrix_param, load_imatrix

GGUF_MAGIC = b"GGUF"
_PROGRESS_LINE = re.compile(rb"^\[\s*(\d+)/\s*(\d+)\]")
GGML_LOG_LEVEL_ERROR = 4  # ggml.h; llama-cpp-python's own _logger still uses the older numbering


def _check_gguf(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise GGUFError(f"{path}: cannot read input ({error.strerror})") from None
    if magic != GGUF_MAGIC:
        raise GGUFError(f"{path}: not a GGUF file")


class TensorCallback:
    """Counts quantized tensors into a tqdm bar, sized from llama.cpp's own `[i/n]` log lines."""

    def __init__(self, description: str, show: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(desc=description, unit="tensor", disable=not show)

    def __call__(self, index: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.reset(total=total)
        self.bar.n = index
        self.bar.refresh()

    def __enter__(self) -> TensorCallback:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bar.close()


@contextmanager
def _captured_log(on_tensor: TensorCallback) -> Iterator[list[str]]:
    """Route llama.cpp's log through a callback: progress lines drive `on_tensor`, errors are collected."""
    import llama_cpp
    from llama_cpp import _logger

    errors: list[str] = []

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        match = _PROGRESS_LINE.match(text)
        if match:
            on_tensor(int(match.group(1)), int(match.group(2)))
        elif level == GGML_LOG_LEVEL_ERROR:
            errors.append(text.decode("utf-8", "replace").strip().split(": ", 1)[-1])

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    try:
        yield errors
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


def quantize(
    source: Path,
    target: Path,
    quant_type: str,
    *,
    threads: int = 0,
    imatrix: Path | None = None,
    progress: bool = True,
) -> Path:
    """Quantize `source` (an F32/F16/BF16 GGUF) into `target` as `quant_type`; returns `target`.

    The output appears only when complete (written to a temporary name, then renamed). `threads=0` lets llama.cpp
    use every core.
    """
    import llama_cpp

    quant_type = canonical_type(quant_type)
    _check_gguf(source)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant_type}")
    params.nthread = threads
    entries = load_imatrix(imatrix) if imatrix is not None else None
    matrix = imatrix_param(entries, llama_cpp.llama_model_imatrix_data) if entries else nullcontext(None)
    with atomic_output(target) as partial, matrix as pointer:
        if pointer is not None:
            params.imatrix = pointer
        with TensorCallback(f"quantize {quant_type}", progress) as tracker, _captured_log(tracker) as errors:
            status = llama_cpp.llama_model_quantize(os.fsencode(source), os.fsencode(partial), ctypes.byref(params))
        if status != 0:
            detail = errors[0] if errors else "llama.cpp reported a failure"
            raise GGUFError(f"{source}: quantization to {quant_type} failed: {detail}")
    return target
