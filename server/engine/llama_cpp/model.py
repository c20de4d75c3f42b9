"""Loading a GGUF into llama.cpp and the vocabulary operations the engine needs.

Uses llama-cpp-python's low-level ctypes API only (the high-level `Llama` class samples in Python and runs
one sequence at a time). Each of the `n_parallel` sequences gets its own KV stream of `n_ctx_per_seq` cells,
so no sequence can eat another's context, and a sequence's attention never sees another's cells: its greedy
output is the same alone or beside others (a unified pool interleaves cells and changes float summation order).
"""

from __future__ import annotations

import ctypes
import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import llama_cpp as llama
import numpy as np

from codebooga.server.engine.context_size import capped_context
from codebooga.server.engine.llama_cpp.amx_guard import choose_extra_buffer_types

log = logging.getLogger("codebooga.llama_cpp")

_GGML_LOG_LEVEL_WARN = 3
_GGML_LOG_LEVEL_ERROR = 4


_recent_errors: deque[str] = deque(maxlen=1)


@llama.llama_log_callback
def _forward_llama_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    """llama.cpp prints hundreds of lines per load: keep its warnings, demote the rest to debug, and remember
    the last error so a failed load can say why in the one line it reports."""
    message = text.decode("utf-8", errors="replace").rstrip()
    if not message:
        return
    if level == _GGML_LOG_LEVEL_ERROR:
        _recent_errors.append(message)
        log.debug(message)
    elif level == _GGML_LOG_LEVEL_WARN:
        log.warning(message)
    else:
        log.debug(message)


def _last_llama_error() -> str:
    return f" ({_recent_errors[-1]})" if _recent_errors else ""


llama.llama_log_set(_forward_llama_log, ctypes.c_void_p(0))
llama.llama_backend_init()


def system_info() -> str:
    """The loaded llama.cpp build's features, e.g. `CPU : SSE3 = 1 | AVX2 = 1 | ... | REPACK = 1`."""
    return llama.llama_print_system_info().decode("utf-8", errors="replace")


class ModelLoadError(Exception):
    """The model file could not be loaded; the message says which file and why."""


KV_CACHE_TYPES = {"f16": llama.GGML_TYPE_F16, "q8_0": llama.GGML_TYPE_Q8_0, "q4_0": llama.GGML_TYPE_Q4_0}
"""KV cache element types offered: half precision, or quantized to 8 or 4 bits (less memory per slot)."""
_KV_TYPE_BYTES = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}  # ggml's block sizes: 32 values per block
FLASH_ATTENTION = {"auto": llama.LLAMA_FLASH_ATTN_TYPE_AUTO, "on": llama.LLAMA_FLASH_ATTN_TYPE_ENABLED,
                   "off": llama.LLAMA_FLASH_ATTN_TYPE_DISABLED}  # fmt: skip
_UBATCH_WITH_FLASH_ATTENTION = 512
_UBATCH_WITHOUT_FLASH_ATTENTION = 256


@dataclass(frozen=True)
class ContextOptions:
    n_ctx_per_seq: int = 16384
    n_parallel: int = 4
    n_threads: int = 0
    n_batch: int = 512
    n_gpu_layers: int = 0
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    flash_attention: str = "auto"

    def ubatch(self) -> int:
        """Tokens per graph run. Without flash attention each run holds a score matrix of ubatch × context per
        head, which at 512 tokens and a 2.6k-token context outgrows the CPU caches: at 256, 1–2.6k-token files
        read 3–8% faster (SmolLM2-135M on 2 cores; 128 gains nothing more and runs the weights twice as often).
        With flash attention there is no such matrix, and 512 and 256 read alike."""
        limit = _UBATCH_WITHOUT_FLASH_ATTENTION if self.flash_attention == "off" else _UBATCH_WITH_FLASH_ATTENTION
        return min(self.n_batch, limit)


class LlamaCppModel:
    """Owns the llama.cpp model, vocabulary and context handles; frees them in `close`."""

    def __init__(self, path: Path, options: ContextOptions) -> None:
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path}")
        # Again at every load: llama.cpp keeps one log callback per process, and another user of it in this
        # process (the quantizer of `codebooga build`) may have installed its own since the import.
        llama.llama_log_set(_forward_llama_log, ctypes.c_void_p(0))
        model_params = llama.llama_model_default_params()
        model_params.n_gpu_layers = options.n_gpu_layers
        buffer_types = choose_extra_buffer_types(system_info())
        if buffer_types.warning is not None:
            log.warning(buffer_types.warning)
        model_params.use_extra_bufts = buffer_types.enabled
        self.model = llama.llama_model_load_from_file(str(path).encode(), model_params)
        if not self.model:
            raise ModelLoadError(f"llama.cpp could not load {path}: not a GGUF model it supports{_last_llama_error()}")
        self.vocab = llama.llama_model_get_vocab(self.model)
        self.n_vocab = llama.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = llama.llama_model_n_ctx_train(self.model)
        self.n_ctx_per_seq = capped_context(options.n_ctx_per_seq, self.n_ctx_train)
        self.n_parallel = options.n_parallel
        self.n_batch = options.n_batch

        context_params = llama.llama_context_default_params()
        context_params.n_ctx = self.n_ctx_per_seq * options.n_parallel
        context_params.n_batch = options.n_batch
        context_params.n_ubatch = options.ubatch()
        context_params.n_seq_max = options.n_parallel
        context_params.n_threads = options.n_threads
        context_params.n_threads_batch = options.n_threads
        context_params.kv_unified = False
        context_params.no_perf = True
        context_params.type_k = KV_CACHE_TYPES[options.cache_type_k]
        context_params.type_v = KV_CACHE_TYPES[options.cache_type_v]
        context_params.flash_attn_type = FLASH_ATTENTION[options.flash_attention]
        self.context = llama.llama_init_from_model(self.model, context_params)
        if not self.context:
            llama.llama_model_free(self.model)
            quantized_v = options.cache_type_v != "f16"
            hint = "; a quantized V cache needs flash attention (--flash-attn on)" if quantized_v else ""
            raise ModelLoadError(
                f"llama.cpp could not create a context of {context_params.n_ctx} tokens for {path}"
                f"{_last_llama_error()}; lower --ctx-size or --parallel{hint}"
            )
        log.info("flash attention %s, %d tokens per graph run", options.flash_attention, context_params.n_ubatch)
        self.kv_bytes_per_sequence = self._kv_bytes_per_sequence(options)
        self.memory = llama.llama_get_memory(self.context)
        self._pieces: dict[int, bytes] = {}
        self._logits_address = 0
        self._logits_views: dict[int, np.ndarray] = {}
        self._end_of_generation: dict[int, bool] = {}

    def _kv_bytes_per_sequence(self, options: ContextOptions) -> int:
        """The KV cache one slot holds when full: per layer, a key and a value vector per KV head and token."""
        arch = self.metadata("general.architecture") or ""
        n_head = max(llama.llama_model_n_head(self.model), 1)
        head_k = int(self.metadata(f"{arch}.attention.key_length") or llama.llama_model_n_embd(self.model) // n_head)
        head_v = int(self.metadata(f"{arch}.attention.value_length") or head_k)
        per_layer = llama.llama_model_n_head_kv(self.model) * (
            head_k * _KV_TYPE_BYTES[options.cache_type_k] + head_v * _KV_TYPE_BYTES[options.cache_type_v]
        )
        return int(llama.llama_model_n_layer(self.model) * per_layer * self.n_ctx_per_seq)

    def output_logits(self, n_outputs: int) -> np.ndarray:
        """The last decode's logits, one row per token that asked for them, in batch order. A view into
        llama.cpp's buffer: valid until the next decode.

        Views are kept per buffer address and row count: llama.cpp reuses its logits buffer from decode to
        decode, and building a numpy view over a ctypes pointer took ~60 µs of each token's serial time (the
        decode has just pushed Python's objects out of the CPU caches); the address is read every time, so a
        reallocated buffer gets new views."""
        if n_outputs == 0:  # a step of prompt chunks only: nothing to sample, and maybe no buffer yet
            return np.empty((0, self.n_vocab), dtype=np.float32)
        address = ctypes.addressof(llama.llama_get_logits(self.context).contents)
        if address != self._logits_address:
            self._logits_address = address
            self._logits_views = {}
        view = self._logits_views.get(n_outputs)
        if view is None:
            rows = (ctypes.c_float * (n_outputs * self.n_vocab)).from_address(address)
            view = self._logits_views[n_outputs] = np.ctypeslib.as_array(rows).reshape(n_outputs, self.n_vocab)
        return view

    def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (llama.llama_token * capacity)()
        count = llama.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_special, True)
        if count < 0:
            capacity = -count
            tokens = (llama.llama_token * capacity)()
            count = llama.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_special, True)
        return list(tokens[:count])

    def token_bytes(self, token_id: int) -> bytes:
        """Bytes of a token's text; control tokens render as nothing (they are not part of the answer)."""
        piece = self._pieces.get(token_id)
        if piece is None:
            buffer = ctypes.create_string_buffer(64)
            size = llama.llama_token_to_piece(self.vocab, token_id, buffer, 64, 0, False)
            if size < 0:
                buffer = ctypes.create_string_buffer(-size)
                size = llama.llama_token_to_piece(self.vocab, token_id, buffer, -size, 0, False)
            piece = buffer.raw[:size]
            self._pieces[token_id] = piece
        return piece

    def longest_token_bytes(self) -> int:
        """The longest piece of text any token stands for, special tokens' markup included."""
        buffer = ctypes.create_string_buffer(1024)
        longest = 0
        for token_id in range(self.n_vocab):
            size = llama.llama_token_to_piece(self.vocab, token_id, buffer, len(buffer), 0, True)
            longest = max(longest, -size if size < 0 else size)  # negative: the piece needs that many bytes
        return longest

    def token_text(self, token_id: int) -> str:
        """A token's text including special tokens (for chat templates' bos/eos variables)."""
        buffer = ctypes.create_string_buffer(256)
        size = llama.llama_token_to_piece(self.vocab, token_id, buffer, 256, 0, True)
        return buffer.raw[: max(size, 0)].decode("utf-8", errors="replace")

    def is_end_of_generation(self, token_id: int) -> bool:
        ending = self._end_of_generation.get(token_id)
        if ending is None:
            ending = self._end_of_generation[token_id] = bool(llama.llama_vocab_is_eog(self.vocab, token_id))
        return ending

    @property
    def bos_token_id(self) -> int:
        return llama.llama_vocab_bos(self.vocab)

    @property
    def eos_token_id(self) -> int:
        return llama.llama_vocab_eos(self.vocab)

    def metadata(self, key: str) -> str | None:
        buffer = ctypes.create_string_buffer(4096)
        size = llama.llama_model_meta_val_str(self.model, key.encode(), buffer, len(buffer))
        if size < 0:
            return None
        if size >= len(buffer):
            buffer = ctypes.create_string_buffer(size + 1)
            llama.llama_model_meta_val_str(self.model, key.encode(), buffer, len(buffer))
        return buffer.value.decode("utf-8", errors="replace")

    def parameter_count(self) -> int:
        return int(llama.llama_model_n_params(self.model))

    def quantization(self) -> str:
        """The weights' type from llama.cpp's description of the model ("llama 135M Q4_1" → "Q4_1")."""
        buffer = ctypes.create_string_buffer(256)
        llama.llama_model_desc(self.model, buffer, len(buffer))
        words = buffer.value.decode("utf-8", errors="replace").split()
        return words[-1] if len(words) >= 3 else ""

    def chat_template(self) -> str | None:
        template = llama.llama_model_chat_template(self.model, None)
        return template.decode("utf-8", errors="replace") if template else None

    def close(self) -> None:
        if self.context:
            llama.llama_free(self.context)
            self.context = None
        if self.model:
            llama.llama_model_free(self.model)
            self.model = None
