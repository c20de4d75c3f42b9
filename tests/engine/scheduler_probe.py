"""What the scheduler tests share: a small real model, greedy jobs that never end early, and a record of every
batch the scheduler hands to llama.cpp."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import llama_cpp as llama
import pytest

from codebooga.server.embedded_model import embedded_model_path
from codebooga.server.engine.job_stream import ThreadedJobStream
from codebooga.server.engine.llama_cpp import scheduler as scheduler_module
from codebooga.server.engine.llama_cpp.model import ContextOptions, LlamaCppModel
from codebooga.server.engine.types import BackendJob, SampledToken, SamplingParams

N_BATCH = 64
"""Small enough that a prompt of a few hundred tokens takes several steps."""


@contextmanager
def loaded_model(n_parallel: int) -> Iterator[LlamaCppModel]:
    """The embedded model with `n_parallel` slots of 512 tokens, 2 threads and batches of `N_BATCH`."""
    options = ContextOptions(n_ctx_per_seq=512, n_parallel=n_parallel, n_threads=2, n_batch=N_BATCH)
    loaded = LlamaCppModel(embedded_model_path(), options)
    try:
        yield loaded
    finally:
        loaded.close()


def greedy_job(model: LlamaCppModel, name: str, prompt: str, tokens: int, n: int = 1) -> BackendJob:
    """A greedy job with end-of-generation tokens banned, so it yields exactly `tokens` tokens per choice."""
    never_ending = tuple((token, -100.0) for token in range(model.n_vocab) if model.is_end_of_generation(token))
    ids = tuple(model.tokenize(prompt, add_special=True))
    sampling = SamplingParams(temperature=0.0, logit_bias=never_ending)
    return BackendJob(request_id=name, prompt_tokens=ids, sampling=sampling, max_new_tokens=tokens, n=n)


async def sampled_count(stream: ThreadedJobStream) -> int:
    """How many tokens the job's stream carries, read to its end."""
    return len([event async for event in stream if isinstance(event, SampledToken)])


def record_batches(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[int, bool]]]:
    """From now on, every batch handed to llama.cpp, as (sequence id, logits wanted) per token."""
    batches: list[list[tuple[int, bool]]] = []
    real_decode = llama.llama_decode

    def recording_decode(context: llama.llama_context_p, batch: llama.llama_batch) -> int:
        batches.append([(batch.seq_id[index][0], bool(batch.logits[index])) for index in range(batch.n_tokens)])
        return real_decode(context, batch)

    monkeypatch.setattr(scheduler_module.llama, "llama_decode", recording_decode)
    return batches
