"""`Backend` implementation over exllamav2: a loaded EXL2 folder, its vocabulary and the generator loop."""

from __future__ import annotations

from pathlib import Path

from codebooga.server.engine.exllamav2.model import Exl2Model, Exl2Options
from codebooga.server.engine.exllamav2.scheduler import Scheduler
from codebooga.server.engine.job_stream import ThreadedJobStream
from codebooga.server.engine.exllamav2.vocab import HfVocabulary
from codebooga.server.engine.errors import InvalidRequest
from codebooga.server.engine.types import BackendJob, BackendStats, Grammar, ModelInfo


class Exl2Backend:
    def __init__(
        self, folder: Path, options: Exl2Options, model_id: str, max_queue: int = 64, queue_timeout: float = 60.0
    ) -> None:
        self._vocab = HfVocabulary(folder)
        self._model = Exl2Model(folder, options, self._vocab.end_of_generation_ids)
        self._scheduler = Scheduler(
            self._model.generator,
            self._model.make_job,
            slots=self._model.slots,
            vocab_size=self._model.vocab_size,
            max_queue=max_queue,
            queue_timeout=queue_timeout,
        )
        vocab = self._vocab
        self._info = ModelInfo(
            model_id=model_id,
            context_length=self._model.max_seq_len,
            vocab_size=self._model.vocab_size,
            chat_template=vocab.chat_template(folder),
            bos_token=vocab.token_text(vocab.bos_token_id),
            eos_token=vocab.token_text(vocab.eos_token_id),
            backend="exllamav2",
            longest_token_bytes=vocab.longest_token_bytes(),
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        return self._vocab.tokenize(text, add_special=add_special)

    def token_bytes(self, token_id: int) -> bytes:
        return self._vocab.token_bytes(token_id)

    def check_grammar(self, grammar: Grammar) -> None:
        raise InvalidRequest(
            f"{grammar.param} needs grammar-constrained generation, which the ExLlamaV2 backend does not offer "
            "yet; serve a GGUF (llama.cpp backend) for tool calls and structured output",
            param=grammar.param,
        )

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
