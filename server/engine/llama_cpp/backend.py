"""`Backend` implementation over llama.cpp: a loaded GGUF plus its decode-loop scheduler."""

from __future__ import annotations

from pathlib import Path

from codebooga.server.engine.errors import InvalidRequest
from codebooga.server.engine.job_stream import ThreadedJobStream
from codebooga.server.engine.llama_cpp.model import ContextOptions, LlamaCppModel, ModelLoadError
from codebooga.server.engine.llama_cpp.prompt_cache_files import CacheDirError, cache_folder
from codebooga.server.engine.llama_cpp.sampling import GrammarError, NativeGrammar
from codebooga.server.engine.llama_cpp.scheduler import Scheduler
from codebooga.server.engine.types import BackendJob, BackendStats, Grammar, ModelInfo


class LlamaCppBackend:
    def __init__(
        self,
        path: Path,
        options: ContextOptions,
        model_id: str,
        max_queue: int = 64,
        queue_timeout: float = 60.0,
        prompt_cache_bytes: int = 0,
        prompt_cache_dir: Path | None = None,
    ) -> None:
        folder = None
        if prompt_cache_dir is not None:
            if prompt_cache_bytes == 0:
                raise ModelLoadError("--cache-dir keeps the prompt cache, which --cache-ram 0 turns off")
            layout = (
                f"ctx {options.n_ctx_per_seq}, K {options.cache_type_k}, V {options.cache_type_v}, "
                f"flash attention {options.flash_attention}"
            )
            try:
                folder = cache_folder(prompt_cache_dir, path, layout)
            except CacheDirError as error:
                raise ModelLoadError(str(error)) from error
        self._model = LlamaCppModel(path, options)
        self._scheduler = Scheduler(
            self._model,
            max_queue=max_queue,
            queue_timeout=queue_timeout,
            prompt_cache_bytes=prompt_cache_bytes,
            prompt_cache_folder=folder,
        )
        model = self._model
        self._info = ModelInfo(
            model_id=model_id,
            context_length=model.n_ctx_per_seq,
            vocab_size=model.n_vocab,
            chat_template=model.chat_template(),
            bos_token=model.token_text(model.bos_token_id),
            eos_token=model.token_text(model.eos_token_id),
            backend="llama.cpp",
            longest_token_bytes=model.longest_token_bytes(),
            architecture=model.metadata("general.architecture") or "llama",
            parameter_count=model.parameter_count(),
            quantization=model.quantization(),
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        return self._model.tokenize(text, add_special=add_special)

    def token_bytes(self, token_id: int) -> bytes:
        return self._model.token_bytes(token_id)

    def check_grammar(self, grammar: Grammar) -> None:
        try:
            NativeGrammar(self._model.vocab, grammar).check()
        except GrammarError as error:
            raise InvalidRequest(f"{grammar.param}: {error}", param=grammar.param) from error

    def submit(self, job: BackendJob) -> ThreadedJobStream:
        return self._scheduler.submit(job)

    def stats(self) -> BackendStats:
        return self._scheduler.stats()

    @property
    def alive(self) -> bool:
        return self._scheduler.alive

    def close(self) -> None:
        self._scheduler.close()
        self._model.close()
