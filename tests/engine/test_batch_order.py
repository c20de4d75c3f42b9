"""A step's tokens reach llama.cpp in KV-stream order: with a stream per sequence, llama.cpp runs each group of
consecutive sequence ids as its own ubatch (one graph run), so order decides how many runs a step costs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import llama_cpp as llama
import pytest

from codebooga.server.embedded_model import embedded_model_path
from codebooga.server.engine.job_stream import ThreadedJobStream
from codebooga.server.engine.llama_cpp import scheduler as scheduler_module
from codebooga.server.engine.llama_cpp.model import ContextOptions, LlamaCppModel
from codebooga.server.engine.llama_cpp.scheduler import Scheduler
from codebooga.server.engine.types import BackendJob, SampledToken, SamplingParams


@pytest.fixture()
def model() -> Iterator[LlamaCppModel]:
    loaded = LlamaCppModel(embedded_model_path(), ContextOptions(n_ctx_per_seq=512, n_parallel=3, n_threads=2, n_batch=64))
    try:
        yield loaded
    finally:
        loaded.close()


def test_a_prompt_between_two_generating_sequences_is_placed_between_them(
    model: LlamaCppModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[list[int]] = []
    real_decode = llama.llama_decode

    def recording_decode(context: llama.llama_context_p, batch: llama.llama_batch) -> int:
        batches.append([batch.seq_id[index][0] for index in range(batch.n_tokens)])
        return real_decode(context, batch)

    monkeypatch.setattr(scheduler_module.llama, "llama_decode", recording_decode)
    never_ending = tuple((token, -100.0) for token in range(model.n_vocab) if model.is_end_of_generation(token))
    greedy = SamplingParams(temperature=0.0, logit_bias=never_ending)

    async def run() -> None:
        scheduler = Scheduler(model)
        try:
            def job(name: str, prompt: str, tokens: int) -> BackendJob:
                ids = tuple(model.tokenize(prompt, add_special=True))
                return BackendJob(request_id=name, prompt_tokens=ids, sampling=greedy, max_new_tokens=tokens)

            async def drain(stream: ThreadedJobStream) -> int:
                return len([event async for event in stream if isinstance(event, SampledToken)])

            streams = [scheduler.submit(job(name, f"Question {name}: what is a list?", tokens))
                       for name, tokens in (("a", 60), ("b", 2), ("c", 60))]
            for stream in streams:
                await stream.started()
            short = await drain(streams[1])  # the middle slot frees up while the others generate
            long_prompt = " ".join(f"item {index}," for index in range(80))
            late = scheduler.submit(job("d", long_prompt, 2))
            counts = await asyncio.gather(drain(streams[0]), drain(streams[2]), drain(late))
            assert (short, *counts) == (2, 60, 60, 2)
        finally:
            scheduler.close()

    asyncio.run(run())
    assert all(seq_ids == sorted(seq_ids) for seq_ids in batches), [b for b in batches if b != sorted(b)]
    bridged = [seq_ids for seq_ids in batches if seq_ids[0] == 0 and seq_ids[-1] == 2 and seq_ids.count(1) > 1]
    assert bridged, "no step carried the late prompt's chunk between the two generating sequences"
