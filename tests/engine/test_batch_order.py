"""A step's tokens reach llama.cpp in KV-stream order: with a stream per sequence, llama.cpp runs each group of
consecutive sequence ids as its own ubatch (one graph run), so order decides how many runs a step costs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from scheduler_probe import greedy_job, loaded_model, record_batches, sampled_count

from codebooga.server.engine.llama_cpp.model import LlamaCppModel
from codebooga.server.engine.llama_cpp.scheduler import Scheduler


@pytest.fixture()
def model() -> Iterator[LlamaCppModel]:
    with loaded_model(n_parallel=3) as loaded:
        yield loaded


def test_a_prompt_between_two_generating_sequences_is_placed_between_them(
    model: LlamaCppModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = record_batches(monkeypatch)

    async def run() -> None:
        scheduler = Scheduler(model)
        try:
            streams = [scheduler.submit(greedy_job(model, name, f"Question {name}: what is a list?", tokens))
                       for name, tokens in (("a", 60), ("b", 2), ("c", 60))]
            for stream in streams:
                await stream.started()
            short = await sampled_count(streams[1])  # the middle slot frees up while the others generate
            long_prompt = " ".join(f"item {index}," for index in range(80))
            late = scheduler.submit(greedy_job(model, "d", long_prompt, 2))
            counts = await asyncio.gather(sampled_count(streams[0]), sampled_count(streams[2]), sampled_count(late))
            assert (short, *counts) == (2, 60, 60, 2)
        finally:
            scheduler.close()

    asyncio.run(run())
    batches = [[seq_id for seq_id, _ in batch] for batch in recorded]
    assert all(seq_ids == sorted(seq_ids) for seq_ids in batches), [b for b in batches if b != sorted(b)]
    bridged = [seq_ids for seq_ids in batches if seq_ids[0] == 0 and seq_ids[-1] == 2 and seq_ids.count(1) > 1]
    assert bridged, "no step carried the late prompt's chunk between the two generating sequences"
